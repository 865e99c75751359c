import type { Configuration, KoaContextWithOIDC, JWKS } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Config } from '../config/schema.js';
import { SMART_CLIENT_PROPERTIES, createClientMetadataValidator } from '../clients/smart-metadata.js';
import { smartRegistrationPolicy } from '../clients/registration-http.js';
import { renderView } from '../http/views.js';
import { isApiRequest } from '../http/errors.js';
import { findFhirServer, normaliseBase } from './fhir-servers.js';
import { downscope } from '../smart/scopes.js';
import { CLOCK_TOLERANCE_SECONDS, clientAssertionHook } from '../backend/client-assertion-hook.js';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';
import type { JwksFetcher } from '../backend/jwks-fetch.js';
import { interactionPolicyWithAccountCheck } from '../login/interaction-policy.js';

/** Public paths. SMART clients and resource servers hard-code these, so they are kept stable. */
export const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  introspection: '/introspect',
  revocation: '/revoke',
  userinfo: '/userinfo',
  jwks: '/.well-known/jwks.json',
  registration: '/register',
  end_session: '/logout',
} as const;

/** Policy name every initial access token carries (see features.registration.policies). */
export const SMART_REGISTRATION_POLICY = 'smart-client';

/** Non-resource scopes this server understands. Resource scopes are SMART patterns. */
export const CONTEXT_SCOPES = ['openid', 'fhirUser', 'profile', 'offline_access', 'online_access', 'launch', 'launch/patient', 'launch/encounter'];

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
  /** Awaited while a JWT access token is issued: records its revocable marker. */
  onJwtAccessToken?: (token: { jti: string; grantId?: string; kind: string; expiration: number }, payload: Record<string, unknown>) => Promise<void>;
}

type ClientWithSmart = { smart_scopes?: string[]; fhir_servers?: string[]; smart_client_kind?: string };

/**
 * Backend tokens carry only what was asked for *and* what the client may have (SMART Backend
 * Services "downscoping"): `system/*.cruds` allowed and `system/Patient.cruds` asked gives
 * `system/Patient.cruds`; asking for nothing the client may have is `invalid_scope`. The request
 * parameter is rewritten to the granted set because oidc-provider intersects the two by string.
 */
function downscopeClientCredentials(ctx: KoaContextWithOIDC, client: ClientWithSmart): string {
  const params = ctx.oidc.params as { scope?: string };
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  if (!requested.length) throw new errors.InvalidScope('scope is required (for example system/*.rs)', '');
  const contexts = client.smart_client_kind === 'backend_service' ? (['system'] as const) : ([] as const);
  const { granted, refused } = downscope(requested, client.smart_scopes ?? [], { contexts: [...contexts] });
  if (!granted.length) {
    const why = refused.map((r) => `${r.scope}: ${r.reason}`).join('; ');
    throw new errors.InvalidScope(`none of the requested scopes may be granted to this client (${why})`, requested.join(' '));
  }
  params.scope = granted.join(' ');
  return params.scope;
}

export function providerConfiguration({ config, jwks, adapter, cookieKeys, redis, keyspace, findAccount, fetch, jwksFetcher, onJwtAccessToken }: ProviderDeps): Configuration {
  const secureCookies = new URL(config.issuer).protocol === 'https:';
  return {
    adapter,
    jwks,
    clients: [],
    routes: ROUTES,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    assertJwtClientAuthClaimsAndHeader: clientAssertionHook(config.issuer, redis, keyspace, jwksFetcher) as unknown as Configuration['assertJwtClientAuthClaimsAndHeader'],
    ...(fetch ? { fetch } : {}),
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          await onJwtAccessToken?.(token as unknown as Parameters<NonNullable<typeof onJwtAccessToken>>[0], jwt.payload as Record<string, unknown>);
        },
      },
    },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
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
    scopes: CONTEXT_SCOPES,
    claims: {
      openid: ['sub'],
      fhirUser: ['fhirUser'],
      profile: ['name', 'family_name', 'given_name', 'preferred_username', 'updated_at'],
    },
    // The app passes the user directory's lookup (users/accounts.ts); without one no subject
    // resolves and interactive grants cannot finish.
    findAccount: findAccount ?? (async () => undefined),
    cookies: {
      keys: cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
    },
    ttl: {
      AccessToken: (_ctx, token) => (token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken),
      ClientCredentials: (_ctx, token) => (token.resourceServer?.accessTokenTTL ?? config.ttl.backendAccessToken),
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
      policy: interactionPolicyWithAccountCheck(),
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
        // kind before oidc-provider validates, exactly as the CLI and the clients file do.
        policies: {
          [SMART_REGISTRATION_POLICY]: (ctx, properties) => smartRegistrationPolicy(ctx, properties as Record<string, unknown>),
        },
      },
      registrationManagement: { enabled: config.registration.enabled, rotateRegistrationAccessToken: true },
      resourceIndicators: {
        enabled: true,
        // SMART apps name the FHIR server with `aud`; backend services often name nothing. A client
        // bound to exactly one FHIR server gets that one.
        defaultResource: (ctx) => {
          const client = ctx.oidc.client as unknown as ClientWithSmart | undefined;
          const bases = client?.fhir_servers ?? [];
          return bases.length === 1 ? bases[0]! : undefined!;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          const server = findFhirServer(config.fhirServers, resourceIndicator);
          const allowed = (client as unknown as ClientWithSmart).fhir_servers;
          if (!server || (allowed && !allowed.includes(server.base))) {
            throw new errors.InvalidTarget(`${normaliseBase(resourceIndicator)} is not a FHIR server this client may use`);
          }
          const smartClient = client as unknown as ClientWithSmart;
          let scope: string;
          if (ctx.oidc.params?.grant_type === 'client_credentials') {
            scope = downscopeClientCredentials(ctx, smartClient);
          } else {
            scope = [...new Set([...CONTEXT_SCOPES, ...(smartClient.smart_scopes ?? [])])].join(' ');
          }
          return {
            scope,
            audience: server.base,
            accessTokenFormat: server.accessTokenFormat,
            accessTokenTTL: ctx.oidc.params?.grant_type === 'client_credentials' ? config.ttl.backendAccessToken : config.ttl.accessToken,
            ...(server.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
          };
        },
      },
    },
    renderError: async (ctx: KoaContextWithOIDC, out, _error) => {
      ctx.set('Cache-Control', 'no-store');
      if (isApiRequest(ctx)) {
        ctx.body = out;
        return;
      }
      ctx.type = 'html';
      ctx.body = await renderView('error', {
        title: 'The sign-in request could not be completed',
        message: out.error_description ?? 'The request was not valid.',
        code: out.error,
        requestId: ctx.state.requestId as string | undefined,
      });
    },
    discovery: {
      service_documentation: `${config.issuer}/`,
    },
  };
}
