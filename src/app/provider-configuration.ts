import type { Configuration, KoaContextWithOIDC, JWKS } from 'oidc-provider';
import type { Config } from '../platform/config/schema.js';
import { SMART_CLIENT_PROPERTIES, createClientMetadataValidator } from '../oauth/clients/smart-metadata.js';
import { smartRegistrationPolicy } from '../oauth/clients/registration-http.js';
import { RegistrationTokens, SMART_REGISTRATION_POLICY } from '../oauth/clients/registration-tokens.js';
import { isApiRequest, respondStoreUnavailable } from '../platform/http/errors.js';
import { sendErrorPage } from '../platform/http/error-page.js';
import { isRedisOutage } from '../platform/redis/outage.js';
import { CLOCK_TOLERANCE_SECONDS, clientAssertionHook } from '../oauth/backend/client-assertion-hook.js';
import type { RedisClient } from '../platform/redis/connection.js';
import type { Keyspace } from '../platform/redis/keyspace.js';
import type { JwksFetcher } from '../oauth/backend/jwks-fetch.js';
import { interactionPolicyWithAccountCheck } from '../smart/interaction/policy.js';
import type { SmartPromptDeps } from '../smart/interaction/prompt-facts.js';
import type { LaunchStore } from '../smart/launch/launch-store.js';
import type { GrantContextStore } from '../oauth/tokens/grant-context.js';
import { smartAuthorizationParams } from '../smart/launch/authorize-rules.js';
import { resourceIndicators } from './resource-indicators.js';
import { launchContextClaims } from '../oauth/tokens/token-context.js';
import { backendHcsClaims } from '../oauth/backend/hcs-claims.js';
import type { Logger } from 'pino';
import type { Metrics } from '../platform/ops/metrics.js';
import type { ConsentService } from '../records/consent/consent-service.js';
import { CONTEXT_SCOPES } from '../domain/scopes/scope-syntax.js';
import { browserClientOrigin } from '../oauth/provider/browser-cors.js';
import { ROUTES } from '../oauth/paths.js';

export interface ProviderDeps {
  config: Config;
  jwks: JWKS;
  adapter: NonNullable<Configuration['adapter']>;
  cookieKeys: string[];
  redis: RedisClient;
  keyspace: Keyspace;
  findAccount?: Configuration['findAccount'];
  fetch?: Configuration['fetch'];
  jwksFetcher?: Pick<JwksFetcher, 'findKey'>;
  /** EHR launch contexts, checked when an authorization request names a `launch`. */
  launches: Pick<LaunchStore, 'get'>;
  /** Launch context per grant, put into access tokens for introspection. */
  grantContexts: Pick<GrantContextStore, 'get'>;
  /** Patient consents: a token with patient/ scopes is issued only under an active one. */
  consents?: Pick<ConsentService, 'assertActiveForGrant'>;
  /** The SMART steps between login and consent (patient/encounter pickers, context recording). */
  smartPrompts?: SmartPromptDeps;
  logger?: Logger;
  metrics?: Pick<Metrics, 'hcsFindings'>;
  /** Awaited while a JWT access token is issued: records its revocable marker. */
  onJwtAccessToken?: (
    token: { jti: string; grantId?: string; kind: string; expiration: number },
    payload: Record<string, unknown>,
  ) => Promise<void>;
}

/** Refresh tokens are what these scopes ask for (SMART permission-offline / permission-online). */
const REFRESH_SCOPES = ['offline_access', 'online_access'];

export function providerConfiguration({
  config,
  jwks,
  adapter,
  cookieKeys,
  redis,
  keyspace,
  findAccount,
  fetch,
  jwksFetcher,
  launches,
  grantContexts,
  consents,
  smartPrompts,
  onJwtAccessToken,
  logger,
  metrics,
}: ProviderDeps): Configuration {
  const secureCookies = new URL(config.issuer).protocol === 'https:';
  const userTokenClaims = launchContextClaims({ grantContexts, fhirServers: config.fhirServers, ...(consents ? { consents } : {}) });
  const backendTokenClaims = backendHcsClaims(config.hcs, logger, metrics);
  const registrationPolicy = smartRegistrationPolicy({ tokens: new RegistrationTokens(redis, keyspace) });
  const resourceServers = resourceIndicators({ config, grantContexts });
  return {
    adapter,
    jwks,
    clients: [],
    routes: ROUTES,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    assertJwtClientAuthClaimsAndHeader: clientAssertionHook(
      config.issuer,
      jwksFetcher,
    ) as unknown as Configuration['assertJwtClientAuthClaimsAndHeader'],
    ...(fetch ? { fetch } : {}),
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          await onJwtAccessToken?.(
            token as unknown as Parameters<NonNullable<typeof onJwtAccessToken>>[0],
            jwt.payload as Record<string, unknown>,
          );
        },
      },
    },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    // Browser apps (public clients) call the token and revocation endpoints from their redirect URIs' origins.
    clientBasedCORS: browserClientOrigin,
    enabledJWA: {
      clientAuthSigningAlgValues: config.clientAuthSigningAlgs,
      idTokenSigningAlgValues: ['RS256', 'ES384'],
    },
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    scopes: [...CONTEXT_SCOPES],
    // SMART `aud` and `launch` (authorize-rules.ts); validated after oidc-provider's own checks.
    extraParams: smartAuthorizationParams({ fhirServers: config.fhirServers, issuer: config.issuer, launches, hcs: config.hcs }),
    // Also where a token with patient/ scopes meets its Consent: at the code exchange and at every
    // refresh a withdrawn or expired Consent ends the grant (invalid_grant).
    // Purpose of use, subject and handling rules (hcs/) ride along as `extensions` in both kinds.
    extraTokenClaims: (async (ctx: unknown, token: { kind: string }) =>
      token.kind === 'ClientCredentials'
        ? backendTokenClaims(ctx)
        : userTokenClaims(ctx, token as Parameters<typeof userTokenClaims>[1])) as unknown as Configuration['extraTokenClaims'],
    // offline_access outlives the browser session; online_access (and no refresh scope at all)
    // ends with it: logout or session expiry revokes the grant's tokens.
    expiresWithSession: (_ctx, source) => !source.scopes.has('offline_access'),
    // Emergency (break-the-glass) grants never hold a refresh scope (context-recorder.ts).
    issueRefreshToken: (_ctx, client, source) =>
      client.grantTypeAllowed('refresh_token') && REFRESH_SCOPES.some((s) => source.scopes.has(s)),
    claims: {
      // How and when the user signed in go into every ID token: apps (and a relying party's own
      // step-up checks) see a federated sign-in's upstream `amr`/`acr`/`auth_time`, or `pwd`.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      fhirUser: ['fhirUser'],
      profile: ['name', 'family_name', 'given_name', 'preferred_username', 'updated_at'],
    },
    // The app passes the user directory's lookup (records/directory/accounts.ts); without one no subject
    // resolves and interactive grants cannot finish.
    findAccount: findAccount ?? (async () => undefined),
    cookies: {
      keys: cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.backendAccessToken,
      AuthorizationCode: config.ttl.authorizationCode,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: config.ttl.session,
      Interaction: config.ttl.interaction,
      Grant: config.ttl.grant,
    },
    // Every refresh rotates; replaying a rotated token revokes the grant (RFC 9700 §4.14.2).
    rotateRefreshToken: true,
    allowOmittingSingleRegisteredRedirectUri: false,
    extraClientMetadata: {
      properties: [...SMART_CLIENT_PROPERTIES],
      validator: createClientMetadataValidator({
        production: config.mode === 'production',
        clientAuthSigningAlgs: config.clientAuthSigningAlgs,
        fhirBases: config.fhirServers.map((s) => s.base),
      }),
    },
    interactions: {
      policy: interactionPolicyWithAccountCheck(smartPrompts),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      registration: {
        enabled: config.registration.enabled,
        initialAccessToken: true,
        issueRegistrationAccessToken: true,
        // Initial access tokens carry this policy; it fills OAuth metadata from the SMART client
        // kind before oidc-provider validates, exactly as the CLI and the clients file do, and
        // holds the registration to the token's own ceiling and use count (registration-tokens.ts).
        policies: {
          [SMART_REGISTRATION_POLICY]: (ctx, properties) => registrationPolicy(ctx, properties as Record<string, unknown>),
        },
      },
      registrationManagement: { enabled: config.registration.enabled, rotateRegistrationAccessToken: true },
      // Which FHIR server (or this server's own API) a token is for, and what it may carry there.
      resourceIndicators: resourceServers,
    },
    // oidc-provider's own errors: OAuth JSON as it words them for programs, the shared error page for people.
    renderError: async (ctx: KoaContextWithOIDC, out, error) => {
      // Not "oops! something went wrong": the store being unreachable is a 503 worth retrying.
      if (isRedisOutage(error)) return respondStoreUnavailable(ctx);
      if (isApiRequest(ctx)) {
        ctx.set('Cache-Control', 'no-store');
        ctx.body = out;
        return;
      }
      await sendErrorPage(ctx, {
        status: ctx.status,
        title: 'The sign-in request could not be completed',
        error: out.error,
        description: out.error_description ?? 'The request was not valid.',
      });
    },
    discovery: {
      service_documentation: `${config.issuer}/`,
    },
  };
}
