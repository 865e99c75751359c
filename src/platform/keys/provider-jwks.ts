import type { JWK } from 'jose';
import type { KeyStatus, SigningKeyInfo } from './types.js';

export interface ProviderJwks {
  keys: JWK[];
}

const ORDER: Record<KeyStatus, number> = { current: 0, next: 1, retired: 2 };

/**
 * The `jwks` option for oidc-provider. Every key is published at /jwks (so a token signed by any
 * instance, before or after a rotation, verifies everywhere), but only `current` keys may sign:
 * oidc-provider's KeyStore.selectForSign skips a key whose `key_ops` lacks "sign", while
 * selectForVerify still accepts `key_ops: ["verify"]`, which is also what the public key is for.
 *
 * RSA keys carry no `alg`: pinning one would restrict the key to it, and the same key serves RS256
 * id_tokens (SMART) and RS384/PS256 where clients or resource servers ask for them. EC P-384 can
 * only do ES384. `use: "sig"` keeps the keys out of encryption if that feature is ever enabled.
 */
export function toProviderJwks(keys: Array<{ info: SigningKeyInfo; jwk: JWK }>): ProviderJwks {
  // Same order on every instance, so their /jwks documents are identical.
  const sorted = [...keys].sort(
    (a, b) =>
      ORDER[a.info.status] - ORDER[b.info.status] ||
      a.info.createdAt.localeCompare(b.info.createdAt) ||
      a.info.kid.localeCompare(b.info.kid),
  );
  return {
    keys: sorted.map(({ info, jwk }) => ({
      ...jwk,
      kid: info.kid,
      use: 'sig',
      ...(info.kty === 'EC' ? { alg: 'ES384' } : {}),
      ...(info.status === 'current' ? {} : { key_ops: ['verify'] }),
    })),
  };
}
