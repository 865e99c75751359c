import crypto from 'node:crypto';

/**
 * Client secrets are generated here (256 random bits), shown once, and stored only as a SHA-256
 * hash. A slow password hash buys nothing against guessing a 256-bit random value and would sit on
 * the token and introspection hot path, so a fast hash is the right tool.
 *
 * `crypto.timingSafeEqual` is called through the module object on purpose: it keeps the comparison
 * observable in tests.
 */

const PREFIX = 'sha256$';
const HASHED = /^sha256\$[A-Za-z0-9_-]{43}$/;

export function generateClientSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function hashClientSecret(plain: string): string {
  return PREFIX + crypto.createHash('sha256').update(plain, 'utf8').digest('base64url');
}

export function isHashedClientSecret(value: unknown): value is string {
  return typeof value === 'string' && HASHED.test(value);
}

/** Constant-time check of a presented secret against a stored hash; plaintext stored values never match. */
export function verifyClientSecret(stored: unknown, presented: unknown): boolean {
  if (!isHashedClientSecret(stored) || typeof presented !== 'string') return false;
  const expected = Buffer.from(stored.slice(PREFIX.length), 'base64url');
  const actual = crypto.createHash('sha256').update(presented, 'utf8').digest();
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}
