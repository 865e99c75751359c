import type { Adapter, Client, JWKS } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../platform/config/schema.js';
import type { RedisClient } from '../platform/redis/connection.js';
import type { Keyspace } from '../platform/redis/keyspace.js';
import type { Metrics } from '../platform/ops/metrics.js';
import { connectionHealth, type StoreHealth } from '../platform/redis/circuit-breaker.js';
import { redisAdapterFactory } from '../platform/storage/redis-adapter.js';
import { wrapClientAdapter } from '../oauth/clients/client-adapter.js';
import { ClientCache } from '../oauth/clients/client-cache.js';
import { invalidationFeedFor, type InvalidationFeed } from '../platform/redis/invalidation.js';
import { JwksFetcher } from '../oauth/backend/jwks-fetch.js';
import { JWT_MARKER_MODEL } from '../oauth/introspection/token-lookup.js';
import { GrantContextStore } from '../oauth/tokens/grant-context.js';
import { LoginLockout } from '../records/directory/lockout.js';
import { createUserStore, type UserStore } from '../records/directory/user-store.js';
import { createSecondFactors, type SecondFactors } from '../records/directory/factors/second-factors.js';
import { createGroupStore, type GroupStore } from '../records/directory/group-store.js';
import { findAccount } from '../records/directory/accounts.js';
import { createConsentService } from '../records/consent/wiring.js';
import type { ConsentService } from '../records/consent/consent-service.js';
import { createAuditTrail, type AuditTrail } from '../records/audit/trail.js';
import type { AuditHome } from '../records/audit/lane.js';
import { AuditStore } from '../records/audit/store.js';
import { BreakTheGlassAlerts } from '../domain/hcs/break-the-glass.js';
import { LaunchStore } from '../smart/launch/launch-store.js';
import { GrantUsage } from '../smart/launch/grant-usage.js';
import { ContextRecorder } from '../smart/interaction/record-context/context-recorder.js';
import { ehrLaunchDefaults } from '../smart/discovery/smart-style.js';
import { defineLuaScripts } from './lua-scripts.js';
import { SignInProgressStore } from '../smart/interaction/login/sign-in-progress.js';

/** What the process hands the app: configuration, connections, keys and the long-lived parts. */
export interface AppDeps {
  config: Config;
  logger: Logger;
  redis: RedisClient;
  keyspace: Keyspace;
  metrics: Metrics;
  jwks: JWKS;
  cookieKeys: string[];
  isShuttingDown?: () => boolean;
  /** Shared across provider rebuilds so its cache survives key rotation. */
  jwksFetcher?: JwksFetcher;
  /** The audit trail; main.ts passes one shared across provider rebuilds. */
  audit?: AuditTrail;
  /** Where the trail lives for good when Redis is only its intake (PostgreSQL); reads merge it in. */
  auditHome?: AuditHome;
  /** Whether Redis may be used now; main.ts passes its circuit breaker (platform/redis/circuit-breaker.ts). */
  storeHealth?: StoreHealth;
}

/**
 * The service graph: every store and long-lived helper the endpoints share, made once per app.
 * Nothing here handles a request; app/provider.ts adapts oidc-provider to these services and
 * app/pipeline.ts puts them on the HTTP path.
 */
export interface Services {
  deps: AppDeps;
  storeHealth: StoreHealth;
  audit: AuditTrail;
  auditStore: AuditStore;
  adapters: (name: string) => Adapter;
  /** Revocable markers of JWT access tokens, one per jti. */
  jwtMarkers: Adapter;
  jwksFetcher: JwksFetcher;
  /** Announcements of changed records (client writes), one subscription per Redis connection. */
  invalidations: InvalidationFeed;
  /** Clients built by oidc-provider, kept per instance and dropped on every instance when one changes. */
  clients: ClientCache<Client>;
  lockout: LoginLockout;
  /** TOTP, WebAuthn and recovery codes; `verify` shares the account's lock-out with the password. */
  factors: SecondFactors;
  /** Sign-ins between their first factor and their second, one per interaction. */
  signInProgress: SignInProgressStore;
  users: UserStore;
  groups: GroupStore;
  accounts: ReturnType<typeof findAccount>;
  launches: LaunchStore;
  grantContexts: GrantContextStore;
  consents: ConsentService;
  recorder: ContextRecorder;
  usage: GrantUsage;
  /** The provider, once app/provider.ts has made it: services that reach back into it take this. */
  provider: () => Provider;
}

function createJwksFetcher(config: Config, logger: Logger): JwksFetcher {
  return new JwksFetcher({
    production: config.mode === 'production',
    allowPrivateNetworks: config.jwksFetch.allowPrivateNetworks ?? config.mode !== 'production',
    timeoutMs: config.jwksFetch.timeoutMs,
    onEvent: (event) => {
      if (event.type !== 'fetched') logger.warn(event, 'client jwks_uri problem');
    },
  });
}

/** The Redis adapter for every model, with client secrets hashed before they are stored. */
export function modelAdapter(redis: RedisClient, keyspace: Keyspace): (name: string) => Adapter {
  const base = redisAdapterFactory(redis, keyspace);
  // One instance per model: introspection asks for adapters on every request.
  const instances = new Map<string, Adapter>();
  return (name: string) => {
    let adapter = instances.get(name);
    if (!adapter) {
      adapter = name === 'Client' ? wrapClientAdapter(base(name)) : base(name);
      instances.set(name, adapter);
    }
    return adapter;
  };
}

/** Makes the service graph. `provider` is called only once requests flow, after it exists. */
export function createServices(deps: AppDeps, provider: () => Provider): Services {
  const { config, logger, redis, keyspace, metrics } = deps;
  defineLuaScripts(redis);
  const audit = deps.audit ?? createAuditTrail({ config, redis, keyspace, logger, metrics });
  const adapters = modelAdapter(redis, keyspace);
  const invalidations = invalidationFeedFor(redis, keyspace, logger);
  const lockout = new LoginLockout(redis, keyspace, config.login);
  const factors = createSecondFactors(config, redis, keyspace, lockout);
  const users = createUserStore(config, redis, keyspace, lockout, factors);
  const launches = new LaunchStore(redis, keyspace, config.ttl.launch);
  const grantContexts = new GrantContextStore(redis, keyspace);
  return {
    deps,
    storeHealth: deps.storeHealth ?? connectionHealth(redis),
    audit,
    auditStore: new AuditStore(redis, keyspace, config.audit.chains, deps.auditHome),
    adapters,
    jwtMarkers: adapters(JWT_MARKER_MODEL),
    jwksFetcher: deps.jwksFetcher ?? createJwksFetcher(config, logger),
    invalidations,
    clients: new ClientCache(invalidations),
    lockout,
    factors,
    signInProgress: new SignInProgressStore(redis, keyspace, config.ttl.interaction),
    users,
    groups: createGroupStore(config, redis, keyspace),
    accounts: findAccount(users, { fhirBase: config.fhirServers[0]!.base }),
    launches,
    grantContexts,
    // The provider's configuration consults consents on the token path; consents reach back into
    // the provider (grants, sessions) only when a request runs.
    consents: createConsentService({ config, redis, keyspace, adapters, grantContexts, provider, logger, audit }),
    recorder: new ContextRecorder({
      launches,
      contexts: grantContexts,
      grantTtlSeconds: config.ttl.grant,
      hcs: config.hcs,
      alerts: new BreakTheGlassAlerts(config.hcs.breakTheGlass, logger),
      logger,
      metrics,
      audit: { trail: audit, issuer: config.issuer },
      ehrLaunchDefaults: ehrLaunchDefaults(config),
    }),
    usage: new GrantUsage(redis, keyspace, config.ttl.grant),
    provider,
  };
}
