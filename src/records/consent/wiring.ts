import type { Adapter } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { ConsentService } from './consent-service.js';
import { ConsentStore } from './consent-store.js';
import type { AuditRecorder } from '../audit/trail.js';

export interface ConsentWiringDeps {
  config: Config;
  redis: RedisClient;
  keyspace: Keyspace;
  /** The app's model adapters (app.ts `modelAdapter`). */
  adapters: (model: string) => Adapter;
  /** The launch context kept beside each grant: it goes with the grant. */
  grantContexts?: { delete(grantId: string): Promise<void> };
  /**
   * The provider, once it is built (the service is made before it so the provider configuration
   * can use it): its `grant.revoked` listeners hear of every grant a withdrawal ends.
   */
  provider?: () => Provider | undefined;
  logger?: Logger;
  audit?: AuditRecorder;
}

/** The ConsentService of one app: Redis store (outbox on when a FHIR server is configured) and grant revocation. */
export function createConsentService(deps: ConsentWiringDeps): ConsentService {
  const store = new ConsentStore(deps.redis, deps.keyspace, { outbox: Boolean(deps.config.consents.fhirServer) });
  const grants = deps.adapters('Grant');
  return new ConsentService({
    store,
    issuer: deps.config.issuer,
    logger: deps.logger,
    ...(deps.audit ? { audit: deps.audit } : {}),
    async revokeGrant(grantId) {
      // Destroying the Grant empties its token index first (access, refresh, codes, JWT markers:
      // the same teardown revokeByGrantId does) and then marks the grant dead, so writes already
      // in flight for it fail too.
      await grants.destroy(grantId);
      await deps.grantContexts?.delete(grantId);
      try {
        // No request context here: listeners get `undefined` where oidc-provider passes its ctx.
        deps.provider?.()?.emit('grant.revoked', undefined, grantId);
      } catch (err) {
        deps.logger?.warn({ err, grantId }, 'a grant.revoked listener failed for a grant ended by a consent withdrawal');
      }
    },
  });
}
