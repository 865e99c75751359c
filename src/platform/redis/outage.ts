/** How long a client is told to wait (Retry-After) before retrying a request the store could not serve. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/**
 * Whether an error means "the data store cannot answer right now" rather than a bug: the request
 * should get 503 + Retry-After, and the client may retry. Redis Cluster mid-failover answers
 * CLUSTERDOWN, MOVED or TRYAGAIN and drops connections while the client stays "ready", so the
 * client's status alone does not tell; the error itself does.
 */
const REPLY_PREFIXES = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|READONLY|MASTERDOWN|NOREPLICAS|BUSY)\b/;

const CLIENT_MESSAGES = [
  /^Too many Cluster redirections/,
  /^Connection is closed/,
  /^Command timed out/,
  /^Stream isn't writeable/,
  /^Failed to refresh slots cache/,
  /^Cluster is ended/,
  /^None of startup nodes is available/,
  /max retries per request/i,
  /^All (the )?keys in (the|a) pipeline/,
];

const CLIENT_ERROR_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError', 'AbortError', 'StoreUnavailableError']);

export function isRedisOutage(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const { name, message, stack } = err as { name?: unknown; message?: unknown; stack?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (typeof name === 'string' && CLIENT_ERROR_NAMES.has(name)) return true;
  if (REPLY_PREFIXES.test(text) || CLIENT_MESSAGES.some((re) => re.test(text))) return true;
  // A TypeError raised inside the Redis client itself (e.g. "pipeline[functionName] is not a
  // function" from auto-pipelining) is the client failing, not this request's input.
  return err instanceof TypeError && typeof stack === 'string' && /[\\/]node_modules[\\/]ioredis[\\/]/.test(stack.split('\n')[1] ?? '');
}
