import type { Adapter, AdapterPayload } from 'oidc-provider';
import { hashClientSecret, isHashedClientSecret } from './secrets.js';

/**
 * Wraps the storage adapter of the `Client` model so no plaintext client secret reaches storage.
 * Dynamic registration hands `upsert` the freshly generated secret in plaintext (oidc-provider has
 * already put it in the registration response, its only appearance); the stored copy is a hash.
 * The payload is copied, not changed, because oidc-provider still uses it for that response.
 */
export function wrapClientAdapter(base: Adapter): Adapter {
  return {
    upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
      const secret = payload.client_secret;
      if (typeof secret === 'string' && !isHashedClientSecret(secret)) {
        return base.upsert(id, { ...payload, client_secret: hashClientSecret(secret) }, expiresIn);
      }
      return base.upsert(id, payload, expiresIn);
    },
    find: (id) => base.find(id),
    findByUserCode: (code) => base.findByUserCode(code),
    findByUid: (uid) => base.findByUid(uid),
    consume: (id) => base.consume(id),
    destroy: (id) => base.destroy(id),
    revokeByGrantId: (grantId) => base.revokeByGrantId(grantId),
  };
}
