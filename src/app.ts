import Provider, { type Adapter, type JWKS } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import type { RedisClient } from './redis/connection.js';
import type { Keyspace } from './redis/keyspace.js';
import type { Metrics } from './ops/metrics.js';
import { providerConfiguration } from './provider/configuration.js';
import { redisAdapterFactory } from './storage/redis-adapter.js';
import { wrapClientAdapter } from './clients/client-adapter.js';
import { verifyClientSecret } from './clients/secrets.js';
import { requestContext } from './http/request-context.js';
import { securityHeaders } from './http/security-headers.js';
import { errorBoundary, requireRedis } from './http/errors.js';
import { bodyLimit } from './http/body-limit.js';
import { opsRoutes } from './ops/health.js';
import { smartConfigurationRoutes } from './discovery/smart-configuration.js';
import { interactionRoutes } from './login/routes.js';
import { InteractionCsrf } from './login/csrf.js';
import { IpRateLimiter } from './login/ip-limiter.js';
import { PasswordLogin } from './login/password-login.js';
import { LoginLockout } from './users/lockout.js';
import { createUserStore } from './users/user-store.js';
import { findAccount } from './users/accounts.js';
import { createGroupStore } from './users/group-store.js';
import { scimRoutes } from './scim/routes.js';
import { registrationSecretHandling } from './clients/registration-http.js';
import { assertionAudiences } from './backend/client-assertion-hook.js';
import { exposeClientAuthProblems } from './backend/client-auth-errors.js';
import { JwksFetcher, createProviderFetch } from './backend/jwks-fetch.js';
import { introspectionRoutes } from './introspection/routes.js';
import { TokenLookup, JWT_MARKER_MODEL } from './introspection/token-lookup.js';
import { CallerAuthenticator } from './introspection/caller-auth.js';

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
  const redisReady = () => redis.status === 'ready';
  const adapters = modelAdapter(redis, keyspace);
  const fetcher = deps.jwksFetcher ?? createJwksFetcher(config, logger);
  const markers = adapters(JWT_MARKER_MODEL);
  const lockout = new LoginLockout(redis, keyspace, config.login);
  const users = createUserStore(config, redis, keyspace, lockout);
  const provider = new Provider(
    config.issuer,
    providerConfiguration({
      config,
      jwks: deps.jwks,
      adapter: adapters,
      cookieKeys: deps.cookieKeys,
      redis,
      keyspace,
      fetch: createProviderFetch(fetcher) as never,
      jwksFetcher: fetcher,
      findAccount: findAccount(users, { fhirBase: config.fhirServers[0]!.base }),
      // JWT access tokens are self-contained, so revocation needs server-side state: a marker
      // per jti, in the grant index like any token, that introspection and revocation consult.
      onJwtAccessToken: async (token, payload) => {
        const expiresIn = Math.max(1, token.expiration);
        await markers.upsert(String(payload.jti), { jti: String(payload.jti), kind: token.kind, grantId: token.grantId, clientId: String(payload.client_id), exp: Number(payload.exp) }, expiresIn);
      },
    }),
  );
  provider.proxy = config.proxy;

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
  provider.on('server_error', (ctx, err) => {
    logger.error({ err, requestId: ctx.state.requestId, route: ctx.oidc?.route }, 'oidc-provider server error');
  });

  const ops = opsRoutes(redis, metrics, deps.isShuttingDown ?? (() => false));
  const discovery = smartConfigurationRoutes(config);
  const interactions = interactionRoutes({
    provider,
    csrf: new InteractionCsrf(deps.cookieKeys),
    login: new PasswordLogin({ users, lockout, ipLimiter: new IpRateLimiter(redis, keyspace, config.login.maxAttemptsPerIpPerMinute), passwords: config.passwords, logger }),
  });
  const clientAdapter = (provider.Client as unknown as { adapter: Adapter }).adapter;
  const lookup = new TokenLookup(adapters, deps.jwks, config.issuer);
  const introspection = introspectionRoutes({
    config,
    provider,
    adapters,
    jwks: deps.jwks,
    lookup,
    auth: new CallerAuthenticator({ clientAdapter, redis, keyspace, fetcher, issuer: config.issuer, algorithms: config.clientAuthSigningAlgs }),
  });

  const scim = scimRoutes({ store: users, groups: createGroupStore(config, redis, keyspace), lookup, config, logger });

  provider.use(requestContext(logger, metrics));
  provider.use(exposeClientAuthProblems(provider, config.clientAuthSigningAlgs));
  provider.use(securityHeaders({ frameAncestors: config.http.frameAncestors }));
  provider.use(errorBoundary(logger, redisReady));
  provider.use(ops.routes());
  provider.use(requireRedis(redisReady, /^\/(healthz|readyz|metrics|static\/)/));
  provider.use(bodyLimit(config.http.bodyLimit));
  provider.use(discovery.routes());
  provider.use(introspection.routes());
  provider.use(scim.routes());
  provider.use(registrationSecretHandling(config.http.bodyLimit, async (id) => (await clientAdapter.find(id)) as Record<string, unknown> | undefined));
  provider.use(interactions.routes());
  return provider;
}
