/**
 * Whether a PostgreSQL error means "the database cannot answer right now" (down, restarting,
 * unreachable, out of connections, a statement that ran out of time) rather than a bug or a
 * refused entry: readers answer 503 + Retry-After, the shipper waits and tries again.
 */
const SQLSTATE_OUTAGE = /^(08|57P0[1-3]|53300|57014|40001|40P01)/;

const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

const MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /^Client has encountered a connection error/,
  /^Cannot use a pool after calling end/,
  /Connection terminated due to connection timeout/,
];

export function isPgOutage(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (NODE_CODES.has(code) || SQLSTATE_OUTAGE.test(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isPgOutage);
  return typeof message === 'string' && MESSAGES.some((re) => re.test(message));
}
