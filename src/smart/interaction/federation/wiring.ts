import type { Logger } from 'pino';
import type { Config } from '../../../platform/config/schema.js';
import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import { UpstreamLinks } from '../../../records/directory/upstream-links.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { AfterFirstFactor } from '../login/first-factor.js';
import { UpstreamLinker } from './linking.js';
import type { FederationDeps } from './routes.js';
import { FederationStates } from './sign-in-state.js';
import { upstreamProviders } from './upstream-provider.js';

/**
 * Federated sign-in as the app builds it from `federation.providers` (with none, its routes answer
 * 404 for every provider). Key files are read here, at start-up.
 */
export function federationFor(deps: {
  config: Config;
  redis: RedisClient;
  keyspace: Keyspace;
  users: Pick<UserStore, 'findBy' | 'create' | 'get'>;
  logger?: Logger;
  /** Where a verified upstream sign-in goes on: a second factor here, or the end of the sign-in. */
  afterFirstFactor: AfterFirstFactor;
}): FederationDeps {
  const { config, redis, keyspace, users } = deps;
  return {
    providers: upstreamProviders(config.federation.providers, config.issuer),
    states: new FederationStates(redis, keyspace),
    linker: new UpstreamLinker({ users, links: new UpstreamLinks(redis, keyspace, async (id) => Boolean(await users.get(id))) }),
    afterFirstFactor: deps.afterFirstFactor,
    ...(deps.logger ? { logger: deps.logger } : {}),
  };
}
