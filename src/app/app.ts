import Provider, { type Adapter, type JWKS } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../platform/config/schema.js';
import type { RedisClient } from '../platform/redis/connection.js';
import type { Keyspace } from '../platform/redis/keyspace.js';
import type { Metrics } from '../platform/ops/metrics.js';
import { providerConfiguration } from './provider-configuration.js';
import { ROUTES } from '../oauth/paths.js';
import { PublicClientOrigins, browserPreflight } from '../oauth/provider/browser-cors.js';
import { redisAdapterFactory } from '../platform/storage/redis-adapter.js';
import { defineLuaScripts } from './lua-scripts.js';
import { wrapClientAdapter } from '../oauth/clients/client-adapter.js';
import { verifyClientSecret } from '../oauth/clients/secrets.js';
import { requestContext } from '../platform/http/request-context.js';
import { securityHeaders } from '../platform/http/security-headers.js';
import { errorBoundary, requireRedis } from '../platform/http/errors.js';
import { durableWrites } from '../platform/http/durable-writes.js';
import { writeTrackerFor } from '../platform/redis/write-acks.js';
import { connectionHealth, type StoreHealth } from '../platform/redis/circuit-breaker.js';
import { isRedisOutage } from '../platform/redis/outage.js';
import { bodyLimit } from '../platform/http/body-limit.js';
import { requireValidOrigin } from '../platform/http/request-origin.js';
import { metricsAccessFor, opsRoutes } from '../platform/http/health.js';
import { smartConfigurationRoutes } from '../smart/discovery/smart-configuration.js';
import { ehrLaunchDefaults } from '../smart/discovery/smart-style.js';
import { interactionRoutes } from '../smart/interaction/routes.js';
import { InteractionCsrf } from '../smart/interaction/pages/csrf.js';
import { IpRateLimiter } from '../smart/interaction/login/ip-limiter.js';
import { PasswordLogin } from '../smart/interaction/login/password-login.js';
import { LoginLockout } from '../records/directory/lockout.js';
import { createUserStore } from '../records/directory/user-store.js';
import { findAccount } from '../records/directory/accounts.js';
import { createGroupStore } from '../records/directory/group-store.js';
import { scimRoutes } from '../apis/scim/routes.js';
import { consentRoutes } from '../apis/consent/routes.js';
import { provenanceRoutes } from '../apis/consent/provenance-routes.js';
import { createConsentService } from '../records/consent/wiring.js';
import { registrationSecretHandling } from '../oauth/clients/registration-http.js';
import { assertionAudiences } from '../oauth/backend/client-assertion-hook.js';
import { exposeClientAuthProblems } from '../oauth/backend/client-auth-errors.js';
import { JwksFetcher } from '../oauth/backend/jwks-fetch.js';
import { createProviderFetch } from '../oauth/backend/provider-fetch.js';
import { introspectionRoutes } from '../oauth/introspection/routes.js';
import { TokenLookup, JWT_MARKER_MODEL } from '../oauth/introspection/token-lookup.js';
import { CallerAuthenticator } from '../oauth/introspection/caller-auth.js';
import { LaunchStore } from '../smart/launch/launch-store.js';
import { GrantContextStore } from '../oauth/tokens/grant-context.js';
import { launchRoutes } from '../smart/launch/launch-routes.js';
import { authorizationRequestRewrites } from '../smart/launch/authorize-request.js';
import { tokenResponseContext } from '../oauth/tokens/token-context.js';
import { includeGrantedNarrowings } from '../smart/launch/code-scope.js';
import { ContextRecorder } from '../smart/interaction/record-context/context-recorder.js';
import { FhirDirectory } from '../smart/interaction/fhir-search/fhir-directory.js';
import { ServiceCredential, ensurePatientSearchClient } from '../smart/interaction/fhir-search/service-credential.js';
import { clientRegistryFor } from '../oauth/clients/wiring.js';
import { GrantUsage, grantUsageTracking } from '../smart/launch/grant-usage.js';
import { manageRoutes } from '../apis/manage/routes.js';
import { ensureManageClient } from '../oauth/clients/manage-client.js';
import { BreakTheGlassAlerts } from '../domain/hcs/break-the-glass.js';
import { userinfoRoutes } from '../oauth/userinfo/routes.js';
import { createAuditTrail, type AuditTrail } from '../records/audit/trail.js';
import type { AuditHome } from '../records/audit/lane.js';
import { AuditStore } from '../records/audit/store.js';
import { auditRoutes } from '../apis/audit/routes.js';
import { apiTokens } from '../apis/fhir-api.js';
import { ownApiAudience } from '../oauth/provider/own-api.js';
import { adminApiAudience } from '../oauth/provider/admin-apis.js';
import { noteProviderOutcomes, providerAudit } from '../oauth/provider/provider-audit.js';

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
  /** Whether Redis may be used now; main.ts passes its circuit breaker (redis/circuit-breaker.ts). */
  storeHealth?: StoreHealth;
}

export function createJwksFetcher(config: Config, logger: Logger): JwksFetcher {
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

/**
 * Assembles the whole HTTP surface. oidc-provider is itself the Koa application; our middleware
 * runs before its router (provider.use inserts ahead of it), in the order listed here.
 */
export function buildApp(deps: AppDeps): Provider {
  const { config, logger, redis, keyspace, metrics } = deps;
  defineLuaScripts(redis);
  const storeHealth = deps.storeHealth ?? connectionHealth(redis);
  const redisReady = () => storeHealth.available();
  const audit = deps.audit ?? createAuditTrail({ config, redis, keyspace, logger, metrics });
  const adapters = modelAdapter(redis, keyspace);
  const fetcher = deps.jwksFetcher ?? createJwksFetcher(config, logger);
  const markers = adapters(JWT_MARKER_MODEL);
  const lockout = new LoginLockout(redis, keyspace, config.login);
  const users = createUserStore(config, redis, keyspace, lockout);
  const launches = new LaunchStore(redis, keyspace, config.ttl.launch);
  const grantContexts = new GrantContextStore(redis, keyspace);
  // Made before the provider so its configuration can consult consents on the token path.
  const consents = createConsentService({ config, redis, keyspace, adapters, grantContexts, provider: () => provider, logger, audit });
  const fhirUserBase = config.fhirServers[0]!.base;
  const recorder = new ContextRecorder({
    launches,
    contexts: grantContexts,
    grantTtlSeconds: config.ttl.grant,
    hcs: config.hcs,
    alerts: new BreakTheGlassAlerts(config.hcs.breakTheGlass, logger),
    logger,
    metrics,
    audit: { trail: audit, issuer: config.issuer },
    ehrLaunchDefaults: ehrLaunchDefaults(config),
  });
  const usage = new GrantUsage(redis, keyspace, config.ttl.grant);
  const accounts = findAccount(users, { fhirBase: config.fhirServers[0]!.base });
  const consentLifetimes = { refreshToken: config.ttl.refreshToken, session: config.ttl.session };
  const provider = new Provider(
    config.issuer,
    providerConfiguration({
      config,
      jwks: deps.jwks,
      adapter: adapters,
      cookieKeys: deps.cookieKeys,
      redis,
      keyspace,
      logger,
      metrics,
      fetch: createProviderFetch(fetcher) as never,
      jwksFetcher: fetcher,
      findAccount: accounts,
      launches,
      grantContexts,
      consents,
      smartPrompts: { launches, recorder, users, fhirServers: config.fhirServers, fhirUserBase, staffRoles: config.hcs.staffRoles, consents, rememberConsent: config.consents.remember },
      // JWT access tokens are self-contained, so revocation needs server-side state: a marker
      // per jti, in the grant index like any token, that introspection and revocation consult.
      onJwtAccessToken: async (token, payload) => {
        const expiresIn = Math.max(1, token.expiration);
        await markers.upsert(String(payload.jti), { jti: String(payload.jti), kind: token.kind, grantId: token.grantId, clientId: String(payload.client_id), exp: Number(payload.exp) }, expiresIn);
      },
    }),
  );
  provider.proxy = config.proxy;
  noteProviderOutcomes(provider);

  // Client assertions must name this server's configured endpoint URLs, whatever Host header
  // the request arrived with (oidc-provider would also accept the issuer and Host-derived URLs).
  const oidcContext = (provider as unknown as { OIDCContext: { prototype: { route?: string; clientJwtAuthExpectedAudience(): Set<string> } } }).OIDCContext.prototype;
  oidcContext.clientJwtAuthExpectedAudience = function expectedAudience(this: { route?: string }) {
    return new Set(assertionAudiences(config.issuer, this.route));
  };

  // Stored secrets are SHA-256 hashes (see clients/secrets.ts); compare against those.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return Promise.resolve(typeof this.clientSecret === 'string' && verifyClientSecret(this.clientSecret, actual));
  };

  provider.on('grant.success', (ctx) => {
    metrics.tokensIssued.inc({ grant_type: String(ctx.oidc.params?.grant_type ?? 'unknown') });
  });
  provider.on('authorization.error', (_ctx, err) => {
    metrics.oauthErrors.inc({ route: 'authorization', error: (err as { error?: string }).error ?? 'server_error' });
  });
  // The launch context lives beside the grant, so it goes with it (revocation, code or refresh
  // token reuse, logout). Listeners are not awaited: failures are logged, the TTL cleans up.
  provider.on('grant.revoked', (_ctx, grantId: string) => {
    grantContexts.delete(grantId).catch((err: unknown) => logger.warn({ err, grantId }, 'could not delete the launch context of a revoked grant'));
  });
  // Emitted synchronously right before the authorization code is made from the grant.
  provider.on('authorization.accepted', (ctx) => includeGrantedNarrowings(ctx));
  provider.on('server_error', (ctx, err) => {
    ctx.state.serverError = err;
    if (isRedisOutage(err)) return logger.warn({ err: { message: err.message }, requestId: ctx.state.requestId, route: ctx.oidc?.route }, 'store unavailable');
    logger.error({ err, requestId: ctx.state.requestId, route: ctx.oidc?.route }, 'oidc-provider server error');
  });

  const ops = opsRoutes(storeHealth, metrics, deps.isShuttingDown ?? (() => false), metricsAccessFor(config.metrics, config.mode));
  const discovery = smartConfigurationRoutes(config);
  const csrf = new InteractionCsrf(deps.cookieKeys);
  // The pickers search the FHIR server with a token this server mints for its own internal client
  // (registered at start-up by main.ts, or here on first use on a fresh store).
  const registry = clientRegistryFor(provider, redis, keyspace);
  const credential = new ServiceCredential({
    provider,
    ensureClient: () => ensurePatientSearchClient(registry, config.clientAuthSigningAlgs),
    ttlSeconds: config.ttl.backendAccessToken,
  });
  const interactions = interactionRoutes({
    provider,
    csrf,
    audit,
    issuer: config.issuer,
    login: new PasswordLogin({ users, lockout, ipLimiter: new IpRateLimiter(redis, keyspace, config.login.maxAttemptsPerIpPerMinute), passwords: config.passwords, logger }),
    pages: {
      provider,
      csrf,
      users,
      recorder,
      directory: new FhirDirectory({ credential, logger }),
      fhirServers: config.fhirServers,
      fhirUserBase,
      staffRoles: config.hcs.staffRoles,
      consents,
      consentLifetimes,
      rememberConsent: config.consents.remember,
      issuer: config.issuer,
      logger,
    },
  });
  const clientAdapter = (provider.Client as unknown as { adapter: Adapter }).adapter;
  const lookup = new TokenLookup(adapters, deps.jwks, config.issuer);
  const callerAuth = new CallerAuthenticator({ clientAdapter, redis, keyspace, fetcher, issuer: config.issuer, algorithms: config.clientAuthSigningAlgs });
  const introspection = introspectionRoutes({ config, provider, adapters, jwks: deps.jwks, lookup, auth: callerAuth, audit, grantContexts });
  const userinfo = userinfoRoutes({ lookup, adapters, findAccount: accounts });
  const launchApi = launchRoutes({ config, auth: callerAuth, launches, users, audit });

  // SCIM, and the Consent, Provenance and AuditEvent APIs, take only tokens for their own audience.
  const scim = scimRoutes({ store: users, groups: createGroupStore(config, redis, keyspace), lookup: apiTokens(lookup, adapters, adminApiAudience(config.issuer, 'scim')), config, logger, audit });
  const ownApiTokens = apiTokens(lookup, adapters, ownApiAudience(config.issuer));
  const consentApi = consentRoutes({ consents, lookup: ownApiTokens, config, logger });
  const provenanceApi = provenanceRoutes({ consents, lookup: ownApiTokens, config, logger });
  const auditStore = new AuditStore(redis, keyspace, config.audit.chains, deps.auditHome);
  const auditApi = auditRoutes({ config, store: auditStore, trail: audit, lookup: ownApiTokens, logger });
  const manage = manageRoutes({
    config,
    provider,
    consents,
    users,
    usage,
    jwks: deps.jwks,
    cookieKeys: deps.cookieKeys,
    // Registered at start-up by main.ts, or here on first use on a fresh store.
    ensureClient: () => ensureManageClient(registry, config.issuer),
    logger,
    audit: { store: auditStore, trail: audit },
  });

  provider.use(requestContext(logger, metrics));
  provider.use(exposeClientAuthProblems(provider, config.clientAuthSigningAlgs));
  provider.use(securityHeaders({ frameAncestors: config.http.frameAncestors }));
  provider.use(errorBoundary(logger, redisReady));
  provider.use(requireValidOrigin());
  provider.use(ops.routes());
  // Before anything that writes: answers 503 for what a failing-over Redis may lose (AUTHZ_REDIS_MIN_REPLICAS).
  provider.use(durableWrites(writeTrackerFor(redis, config.redis), logger));
  provider.use(requireRedis(redisReady, /^\/(healthz|readyz|metrics|static\/)/));
  provider.use(browserPreflight([ROUTES.token, ROUTES.revocation], new PublicClientOrigins(() => registry.list())));
  provider.use(bodyLimit(config.http.bodyLimit));
  // Awaits the AuditEvent of token, authorization, logout and registration requests before they are answered.
  provider.use(providerAudit({ audit, issuer: config.issuer, grantContext: (grantId) => grantContexts.get(grantId) }));
  provider.use(authorizationRequestRewrites(ROUTES.authorization));
  provider.use(tokenResponseContext({ tokenPath: ROUTES.token, grantContexts, fhirServers: config.fhirServers }));
  provider.use(grantUsageTracking({ tokenPath: ROUTES.token, usage, logger }));
  provider.use(discovery.routes());
  provider.use(introspection.routes());
  provider.use(userinfo.routes());
  provider.use(launchApi.routes());
  provider.use(scim.routes());
  provider.use(consentApi.routes());
  provider.use(provenanceApi.routes());
  provider.use(auditApi.routes());
  provider.use(manage.routes());
  provider.use(registrationSecretHandling(config.http.bodyLimit, async (id) => (await clientAdapter.find(id)) as Record<string, unknown> | undefined));
  provider.use(interactions.routes());
  return provider;
}
