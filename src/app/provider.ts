import Provider from 'oidc-provider';
import { providerConfiguration } from './provider-configuration.js';
import type { Services } from './services.js';
import { isRedisOutage } from '../platform/redis/outage.js';
import { claimOnce } from '../platform/storage/claim-once.js';
import { verifyClientSecret } from '../oauth/clients/secrets.js';
import { assertionAudiences } from '../oauth/backend/client-assertion-hook.js';
import { createProviderFetch } from '../oauth/backend/provider-fetch.js';
import { includeGrantedNarrowings } from '../smart/launch/code-scope.js';
import { noteProviderOutcomes } from '../oauth/provider/provider-audit.js';
import { requestState } from '../platform/http/request-state.js';

/**
 * oidc-provider, adapted to this server: its configuration (app/provider-configuration.ts), the
 * behaviours we replace on its prototypes and its replay check, and the provider events we act on. Everything that
 * reaches into the library's internals is here, so an upgrade has one file to check.
 */
export function createProvider(services: Services): Provider {
  const { config, logger, metrics, jwks, cookieKeys, redis, keyspace } = services.deps;
  const { launches, grantContexts, consents, users, recorder, jwtMarkers, jwksFetcher } = services;
  const fhirUserBase = config.fhirServers[0]!.base;
  const provider = new Provider(
    config.issuer,
    providerConfiguration({
      config,
      jwks,
      adapter: services.adapters,
      cookieKeys,
      redis,
      keyspace,
      logger,
      metrics,
      fetch: createProviderFetch(jwksFetcher) as never,
      jwksFetcher,
      findAccount: services.accounts,
      launches,
      grantContexts,
      consents,
      smartPrompts: {
        launches,
        recorder,
        users,
        fhirServers: config.fhirServers,
        fhirUserBase,
        staffRoles: config.hcs.staffRoles,
        consents,
        rememberConsent: config.consents.remember,
      },
      stepUp: { users, factors: services.factors, policy: config.mfa, freshSeconds: config.mfa.breakTheGlassFreshSeconds },
      // JWT access tokens are self-contained, so revocation needs server-side state: a marker
      // per jti, in the grant index like any token, that introspection and revocation consult.
      onJwtAccessToken: async (token, payload) => {
        const expiresIn = Math.max(1, token.expiration);
        await jwtMarkers.upsert(
          String(payload.jti),
          {
            jti: String(payload.jti),
            kind: token.kind,
            grantId: token.grantId,
            clientId: String(payload.client_id),
            exp: Number(payload.exp),
          },
          expiresIn,
        );
      },
    }),
  );
  provider.proxy = config.proxy;
  noteProviderOutcomes(provider);

  // Client assertions must name this server's configured endpoint URLs, whatever Host header
  // the request arrived with (oidc-provider would also accept the issuer and Host-derived URLs).
  const oidcContext = (
    provider as unknown as { OIDCContext: { prototype: { route?: string; clientJwtAuthExpectedAudience(): Set<string> } } }
  ).OIDCContext.prototype;
  oidcContext.clientJwtAuthExpectedAudience = function expectedAudience(this: { route?: string }) {
    return new Set(assertionAudiences(config.issuer, this.route));
  };

  // One replay check per one-time value, and an atomic one: client assertions (token,
  // introspection, revocation) and DPoP proofs are claimed with one SET NX. The library's own
  // check is a find and then a save (two round trips) that two concurrent requests can both pass.
  provider.ReplayDetection.unique = (iss: string, jti: string, exp: number) =>
    claimOnce(redis, keyspace, 'client-assertion', `${iss}\n${jti}`, exp - Math.floor(Date.now() / 1000));

  // Each lookup of a client would read its record, parse it, hash it and find the built Client
  // by that hash (oidc-provider's own cache); the built Client is kept instead, and every instance
  // drops it when any writer changes the client (oauth/clients/client-cache.ts).
  const findClient = provider.Client.find.bind(provider.Client);
  provider.Client.find = (id: string) => (typeof id === 'string' && id ? services.clients.get(id, findClient) : findClient(id));

  // Stored secrets are SHA-256 hashes (see oauth/clients/secrets.ts); compare against those.
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
    grantContexts
      .delete(grantId)
      .catch((err: unknown) => logger.warn({ err, grantId }, 'could not delete the launch context of a revoked grant'));
  });
  // Emitted synchronously right before the authorization code is made from the grant.
  provider.on('authorization.accepted', (ctx) => includeGrantedNarrowings(ctx));
  provider.on('server_error', (ctx, err) => {
    requestState(ctx).serverError = err;
    if (isRedisOutage(err))
      return logger.warn({ err: { message: err.message }, requestId: ctx.state.requestId, route: ctx.oidc?.route }, 'store unavailable');
    logger.error({ err, requestId: ctx.state.requestId, route: ctx.oidc?.route }, 'oidc-provider server error');
  });
  return provider;
}
