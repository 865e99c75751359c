/**
 * Rules for the public keys a client registers for private_key_jwt (SMART asymmetric auth):
 * - only RSA (modulus of 2048 bits or more) and EC P-256/P-384 keys; no symmetric or OKP keys;
 * - no private members: a client that pastes its private key must be stopped, and the error names
 *   the offending member but never echoes its value;
 * - every key has a unique `kid` (SMART: the assertion header's `kid` selects the key);
 * - `alg`, when given, is an allowed client-auth algorithm matching the key; `use`, when given, is
 *   `sig`; and each key must be usable with at least one allowed algorithm.
 * Problems are returned as sentences starting with the field path, for InvalidClientMetadata.
 */

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
const MIN_RSA_BITS = 2048;
const MAX_KEYS = 20;

/** Which key an algorithm needs: `RSA`, or `EC` with the given curve. */
function keyTypeForAlg(alg: string): { kty: 'RSA' } | { kty: 'EC'; crv: string } | undefined {
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return { kty: 'RSA' };
  const ec = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg];
  return ec ? { kty: 'EC', crv: ec } : undefined;
}

function fits(alg: string, kty: string, crv: unknown): boolean {
  const need = keyTypeForAlg(alg);
  if (!need || need.kty !== kty) return false;
  return need.kty === 'RSA' || need.crv === crv;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** Bit length of a base64url big-endian unsigned integer (leading zero octets ignored). */
export function modulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

function keyProblem(jwk: unknown, path: string, allowedAlgs: readonly string[]): string | undefined {
  if (!isObject(jwk)) return `${path} must be a JSON object`;
  const { kty, crv } = jwk;
  if (kty === 'oct') return `${path} is a symmetric (oct) key; only RSA and EC public keys are accepted`;
  const privateMember = PRIVATE_MEMBERS.find((m) => jwk[m] !== undefined);
  if (privateMember) {
    return `${path} contains private key material ("${privateMember}"); register the public key only`;
  }
  if (kty === 'OKP') return `${path} is an OKP key; only RSA and EC public keys are accepted`;
  if (kty !== 'RSA' && kty !== 'EC') return `${path}.kty must be "RSA" or "EC"`;
  if (!nonEmptyString(jwk.kid)) return `${path}.kid is required (SMART selects the key by kid)`;

  if (kty === 'RSA') {
    if (!nonEmptyString(jwk.n) || !nonEmptyString(jwk.e)) return `${path} must have n and e (RSA public key members)`;
    if (!/^[A-Za-z0-9_-]+$/.test(jwk.n)) return `${path}.n must be base64url`;
    const bits = modulusBits(jwk.n);
    if (bits < MIN_RSA_BITS) return `${path} RSA modulus is ${bits} bits; at least ${MIN_RSA_BITS} are required`;
  } else {
    if (crv !== 'P-256' && crv !== 'P-384') return `${path}.crv must be "P-256" or "P-384"`;
    if (!nonEmptyString(jwk.x) || !nonEmptyString(jwk.y)) return `${path} must have x and y (EC public key members)`;
  }

  if (jwk.use !== undefined && jwk.use !== 'sig') return `${path}.use must be "sig" if given`;
  if (jwk.key_ops !== undefined) {
    if (!Array.isArray(jwk.key_ops) || jwk.key_ops.some((op) => op !== 'verify')) {
      return `${path}.key_ops may only contain "verify"`;
    }
  }
  const describe = kty === 'EC' ? `EC ${String(crv)}` : 'RSA';
  if (jwk.alg !== undefined) {
    if (typeof jwk.alg !== 'string' || !allowedAlgs.includes(jwk.alg)) {
      return `${path}.alg must be one of ${allowedAlgs.join(', ')}`;
    }
    if (!fits(jwk.alg, kty, crv)) return `${path}.alg ${jwk.alg} does not fit an ${describe} key`;
  } else if (!allowedAlgs.some((alg) => fits(alg, kty, crv))) {
    return `${path} is an ${describe} key but none of the allowed algorithms (${allowedAlgs.join(', ')}) uses it`;
  }
  return undefined;
}

/** Returns a sentence describing the first problem with a client JWKS, or undefined when valid. */
export function clientJwksProblem(jwks: unknown, allowedAlgs: readonly string[]): string | undefined {
  if (!isObject(jwks) || !Array.isArray(jwks.keys)) return 'jwks must be a JSON Web Key Set: an object with a "keys" array';
  if (jwks.keys.length === 0) return 'jwks.keys must contain at least one key';
  if (jwks.keys.length > MAX_KEYS) return `jwks.keys may hold at most ${MAX_KEYS} keys`;
  const kids = new Set<string>();
  for (const [i, jwk] of jwks.keys.entries()) {
    const problem = keyProblem(jwk, `jwks.keys[${i}]`, allowedAlgs);
    if (problem) return problem;
    const kid = (jwk as { kid: string }).kid;
    if (kids.has(kid)) return `jwks.keys[${i}].kid "${kid}" is used by another key; kids must be unique`;
    kids.add(kid);
  }
  return undefined;
}

/** One line per key, for people: `kid (RSA 2048)`, `kid (EC P-384)`. */
export function describeJwks(jwks: unknown): string[] {
  if (!isObject(jwks) || !Array.isArray(jwks.keys)) return [];
  return jwks.keys.map((k: unknown) => {
    if (!isObject(k)) return '(invalid key)';
    const type = k.kty === 'RSA' && typeof k.n === 'string' ? `RSA ${modulusBits(k.n)}` : `${String(k.kty)} ${String(k.crv ?? '')}`.trim();
    return `${String(k.kid ?? '(no kid)')} (${type}${typeof k.alg === 'string' ? `, ${k.alg}` : ''})`;
  });
}
