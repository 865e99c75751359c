import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Config } from '../platform/config/schema.js';
import { downscope } from '../domain/scopes/scopes.js';
import { CONTEXT_SCOPES } from '../domain/scopes/scope-syntax.js';
import { invalidScope } from '../domain/scopes/invalid-scope.js';
import { findFhirServer, normaliseBase } from '../oauth/provider/fhir-servers.js';
import { isOwnApi, isOwnApiScope, ownApiAudience, ownApiScopes } from '../oauth/provider/own-api.js';
import { adminApiAudience, adminApiOf, isAdminScope, withoutAdminScopes, type AdminScope } from '../oauth/provider/admin-apis.js';
import { isManageClient } from '../oauth/clients/manage-client.js';
import { grantContextOf } from '../oauth/tokens/token-context.js';
import type { GrantContextStore } from '../oauth/tokens/grant-context.js';
import { audAsResource } from '../smart/launch/authorize-rules.js';

/**
 * oidc-provider's resource indicators (RFC 8707), adapted to SMART: which resource server a token
 * is for (a FHIR server named by `aud` or `resource`, this server's own FHIR APIs, or one of its
 * administration APIs), which scopes it may carry there, in which format and for how long.
 */

type ClientWithSmart = { smart_scopes?: string[]; fhir_servers?: string[]; smart_client_kind?: string };
type ResourceIndicators = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

/**
 * The scope set a FHIR server's resource-server entry must offer for an app's request: oidc-provider
 * intersects requested (or code/refresh-token) scopes with it by string at every step, and the grant
 * decides what is actually issued. So it holds the context scopes, the client's registered patterns,
 * whatever the grant already has for this resource (the narrowed or v1 spellings consent produced)
 * and, at the authorization endpoint, each requested resource scope the client may at least partly
 * have, with the parts it may have, so consent is asked for all of them.
 */
function appResourceScopes(ctx: KoaContextWithOIDC, resourceIndicator: string, client: ClientWithSmart): string {
  const patterns = client.smart_scopes ?? [];
  const scopes = new Set([...CONTEXT_SCOPES, ...patterns]);
  const granted = ctx.oidc.entities.Grant?.getResourceScope(resourceIndicator);
  for (const s of granted?.split(' ') ?? []) if (s) scopes.add(s);
  if (ctx.oidc.route === 'authorization' || ctx.oidc.route === 'resume') {
    const requested = ((ctx.oidc.params as { scope?: unknown }).scope as string | undefined)?.split(' ').filter(Boolean) ?? [];
    for (const raw of requested) {
      const { granted: parts } = downscope([raw], patterns, { contexts: ['patient', 'user'] });
      if (parts.length) for (const s of [raw, ...parts]) scopes.add(s);
    }
  }
  return [...scopes].join(' ');
}

/**
 * Backend tokens carry only what was asked for *and* what the client may have (SMART Backend
 * Services "downscoping"): `system/*.cruds` allowed and `system/Patient.cruds` asked gives
 * `system/Patient.cruds`; asking for nothing the client may have is `invalid_scope`. The request
 * parameter is rewritten to the granted set because oidc-provider intersects the two by string.
 */
function downscopeClientCredentials(ctx: KoaContextWithOIDC, client: ClientWithSmart): string {
  const params = ctx.oidc.params as { scope?: string };
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  if (!requested.length) throw invalidScope('scope is required (for example system/*.rs)');
  const contexts = client.smart_client_kind === 'backend_service' ? (['system'] as const) : ([] as const);
  const { granted, refused } = downscope(requested, client.smart_scopes ?? [], { contexts: [...contexts] });
  if (!granted.length) {
    const why = refused.map((r) => `${r.scope}: ${r.reason}`).join('; ');
    throw invalidScope(`none of the requested scopes may be granted to this client (${why})`);
  }
  params.scope = granted.join(' ');
  return params.scope;
}

/**
 * The resource-server entry of this server's own FHIR APIs (own-api.ts): the client's scopes for
 * it narrowed to Consent, Provenance and AuditEvent, opaque tokens (sessions and revocation are checked on
 * every call). A request that would get none of those scopes is refused.
 */
function ownApiResourceServer(ctx: KoaContextWithOIDC, issuer: string, client: ClientWithSmart, accessTokenTTL: number) {
  const audience = ownApiAudience(issuer);
  const backend = ctx.oidc.params?.grant_type === 'client_credentials';
  const scopes = ownApiScopes((backend ? downscopeClientCredentials(ctx, client) : appResourceScopes(ctx, audience, client)).split(' '));
  if (!scopes.some(isOwnApiScope)) {
    const why = `${audience} serves only Consent, Provenance and AuditEvent: none of this client's requested or allowed scopes names them`;
    throw backend ? invalidScope(why) : new errors.InvalidTarget(why);
  }
  if (backend) (ctx.oidc.params as { scope?: string }).scope = scopes.join(' ');
  return { scope: scopes.join(' '), audience, accessTokenFormat: 'opaque' as const, accessTokenTTL };
}

/**
 * The resource-server entry of an administration API (admin-apis.ts): client_credentials only, and
 * the token carries exactly that API's scope, whatever else the client may have.
 */
function adminApiResourceServer(ctx: KoaContextWithOIDC, issuer: string, api: AdminScope, client: ClientWithSmart, accessTokenTTL: number) {
  const audience = adminApiAudience(issuer, api);
  if (ctx.oidc.params?.grant_type !== 'client_credentials') {
    throw new errors.InvalidTarget(`${audience} takes only client_credentials tokens of administration clients`);
  }
  if (!downscopeClientCredentials(ctx, client).split(' ').includes(api)) {
    throw invalidScope(`${audience} serves only the ${api} scope, and this client did not request it or may not have it`);
  }
  (ctx.oidc.params as { scope?: string }).scope = api;
  return { scope: api, audience, accessTokenFormat: 'opaque' as const, accessTokenTTL };
}

/**
 * The audience a client_credentials request that names no resource and asks only for
 * administrative scopes means: that scope's API. Two of them cannot share one token.
 */
function defaultAdminAudience(issuer: string, requested: readonly string[]): string | undefined {
  if (!requested.length || !requested.every(isAdminScope)) return undefined;
  const apis = [...new Set(requested)] as AdminScope[];
  if (apis.length > 1)
    throw invalidScope(
      `${apis.join(' and ')} are issued for different audiences (${apis.map((a) => adminApiAudience(issuer, a)).join(', ')}): request each in its own token request`,
    );
  return adminApiAudience(issuer, apis[0]!);
}

/** The grant a token request draws on (code exchange or refresh), if any. */
function requestGrantId(ctx: KoaContextWithOIDC): string | undefined {
  return ctx.oidc.entities.AuthorizationCode?.grantId ?? ctx.oidc.entities.RefreshToken?.grantId;
}

export interface ResourceIndicatorDeps {
  config: Config;
  grantContexts: Pick<GrantContextStore, 'get'>;
}

export function resourceIndicators({ config, grantContexts }: ResourceIndicatorDeps): ResourceIndicators {
  /** Emergency (break-the-glass) grants get short-lived access tokens. */
  const isEmergencyGrant = async (ctx: KoaContextWithOIDC): Promise<boolean> => {
    const grantId = requestGrantId(ctx);
    return Boolean(grantId && (await grantContextOf(grantContexts, ctx, grantId))?.hcs?.breakTheGlass);
  };
  /** Access-token lifetime of a token request: backend or user, and short for an emergency grant, whatever the audience. */
  const accessTokenTtl = async (ctx: KoaContextWithOIDC): Promise<number> => {
    const ttl = ctx.oidc.params?.grant_type === 'client_credentials' ? config.ttl.backendAccessToken : config.ttl.accessToken;
    return ctx.oidc.route === 'token' && (await isEmergencyGrant(ctx)) ? Math.min(ttl, config.hcs.breakTheGlass.accessTokenTtl) : ttl;
  };
  return {
    enabled: true,
    // SMART apps name the FHIR server with `aud`; backend services often name nothing. A client
    // bound to exactly one FHIR server gets that one.
    defaultResource: (ctx, client, oneOf) => {
      // The management page's own sign-in is plain OpenID Connect: no FHIR server, ever.
      if (isManageClient(client?.clientId)) return undefined!;
      if (ctx.oidc.route === 'authorization' && !oneOf)
        return audAsResource({ fhirServers: config.fhirServers, issuer: config.issuer })(ctx, client);
      // A backend asking only for Consent/AuditEvent scopes means this server's own API, and
      // one asking only for scim (or introspect) that administration API.
      const requested = String((ctx.oidc.params as { scope?: unknown } | undefined)?.scope ?? '')
        .split(' ')
        .filter(Boolean);
      if (ctx.oidc.params?.grant_type === 'client_credentials') {
        if (requested.length && requested.every(isOwnApiScope)) return ownApiAudience(config.issuer);
        const adminAudience = defaultAdminAudience(config.issuer, requested);
        if (adminAudience) return adminAudience;
      }
      const bases = (client as unknown as ClientWithSmart | undefined)?.fhir_servers ?? [];
      return bases.length === 1 ? bases[0]! : undefined!;
    },
    useGrantedResource: () => true,
    getResourceServerInfo: async (ctx, resourceIndicator, client) => {
      if (isOwnApi(config.issuer, resourceIndicator))
        return ownApiResourceServer(ctx, config.issuer, client as unknown as ClientWithSmart, await accessTokenTtl(ctx));
      const adminApi = adminApiOf(config.issuer, resourceIndicator);
      if (adminApi)
        return adminApiResourceServer(ctx, config.issuer, adminApi, client as unknown as ClientWithSmart, config.ttl.backendAccessToken);
      const server = findFhirServer(config.fhirServers, resourceIndicator);
      const allowed = (client as unknown as ClientWithSmart).fhir_servers;
      if (!server || (allowed && !allowed.includes(server.base))) {
        throw new errors.InvalidTarget(`${normaliseBase(resourceIndicator)} is not a FHIR server this client may use`);
      }
      const smartClient = client as unknown as ClientWithSmart;
      // Administrative scopes are issued only for their own audience (admin-apis.ts).
      let scope: string;
      if (ctx.oidc.params?.grant_type === 'client_credentials') {
        scope = withoutAdminScopes(downscopeClientCredentials(ctx, smartClient).split(' ')).join(' ');
        if (!scope)
          throw invalidScope(
            `${server.base} is a FHIR server: scim and introspect are issued only for their own audiences (resource=${adminApiAudience(config.issuer, 'scim')} or ${adminApiAudience(config.issuer, 'introspect')})`,
          );
        (ctx.oidc.params as { scope?: string }).scope = scope;
      } else {
        scope = withoutAdminScopes(appResourceScopes(ctx, resourceIndicator, smartClient).split(' ')).join(' ');
      }
      const accessTokenTTL = await accessTokenTtl(ctx);
      return {
        scope,
        audience: server.base,
        accessTokenFormat: server.accessTokenFormat,
        accessTokenTTL,
        ...(server.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
      };
    },
  };
}
