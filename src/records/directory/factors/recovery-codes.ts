import { hash, randomInt } from 'node:crypto';

/**
 * One-time recovery codes: 10 characters of Crockford's base32 (50 random bits), shown as
 * `xxxxx-xxxxx`. The alphabet has no I, L, O or U, and what people type for them (i, l → 1, o → 0)
 * is read as meant; case, spaces and hyphens do not matter. Only a SHA-256 of each code is kept:
 * 50 random bits need no salt or slow hash to resist reversal, and a plain hash lets one SREM both
 * check and use up a code atomically.
 */

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const LENGTH = 10;
const GROUP = 5;
const SHAPE = new RegExp(`^[${ALPHABET}]{${LENGTH}}$`);

export function newRecoveryCode(): string {
  let code = '';
  for (let i = 0; i < LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return `${code.slice(0, GROUP)}-${code.slice(GROUP)}`;
}

/** The code as stored (lower case, no separators), or undefined when it cannot be one. */
export function normaliseRecoveryCode(input: string): string | undefined {
  if (input.length > 64) return undefined;
  const code = input
    .toLowerCase()
    .replace(/[\s-]+/g, '')
    .replace(/[il]/g, '1')
    .replace(/o/g, '0');
  return SHAPE.test(code) ? code : undefined;
}

export function recoveryCodeHash(normalised: string): string {
  return hash('sha256', normalised, 'base64url');
}
