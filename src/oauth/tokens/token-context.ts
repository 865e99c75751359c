import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { FhirServer } from '../../platform/config/schema.js';
import { requestState } from '../../platform/http/request-state.js';
import { findFhirServer } from '../provider/fhir-servers.js';
import type { GrantContext, GrantContextStore } from './grant-context.js';
import { patientScopes } from '../../records/consent/scope-coverage.js';
import { tokenExtensions } from '../../domain/hcs/claims.js';

/**
 * The grant's launch context where SMART wants it: in the token response of the code exchange and
 * of every refresh (the same values each time), and in access tokens so introspection returns
 * them (SMART "token introspection": every launch context parameter of the token response).
 */

/** Token-response members SMART defines for launch context (App Launch 2.2 §"launch context"). */
const RESPONSE_FIELDS = ['patient', 'encounter', 'fhirContext', 'need_patient_banner', 'smart_style_url', 'intent', 'tenant'] as const;

type ContextFields = Partial<Pick<GrantContext, (typeof RESPONSE_FIELDS)[number]>>;

/**
 * The context fields of a grant. `tenant` falls back to the tenant configured for the FHIR server
 * the token is for, so standalone launches name their tenant too.
 */
export function launchContextFields(context: GrantContext | undefined, audience: unknown, servers: readonly FhirServer[]): ContextFields {
  const fields: Record<string, unknown> = {};
  for (const name of RESPONSE_FIELDS) {
    const value = context?.[name];
    if (value !== undefined && value !== null) fields[name] = value;
  }
  if (fields.tenant === undefined && typeof audience === 'string') {
    const tenant = findFhirServer(servers, audience)?.tenant;
    if (tenant) fields.tenant = tenant;
  }
  return fields as ContextFields;
}

type TokenCtx = Context & Partial<Pick<KoaContextWithOIDC, 'oidc'>>;

declare module '../../platform/http/request-state.js' {
  interface RequestState {
    /**
     * A token request reads its grant's context twice: while the access token is minted
     * (extraTokenClaims) and when the response is written. One Redis read serves both: the
     * promise, by grant id, for that request only (`grantContextOf`).
     */
    grantContextReads?: Map<string, Promise<GrantContext | undefined>>;
  }
}

/** The grant's context, read once per request; a call outside any request (no `ctx`) reads the store. */
export function grantContextOf(store: Pick<GrantContextStore, 'get'>, ctx: unknown, grantId: string): Promise<GrantContext | undefined> {
  if (typeof ctx !== 'object' || ctx === null) return store.get(grantId);
  const reads = (requestState(ctx).grantContextReads ??= new Map());
  let read = reads.get(grantId);
  if (!read) {
    read = store.get(grantId);
    reads.set(grantId, read);
  }
  return read;
}

/**
 * Post-middleware of the token endpoint. `Pragma: no-cache` goes on every token response,
 * errors included (SMART: Cache-Control: no-store, which oidc-provider sets, and Pragma).
 */
export function tokenResponseContext(deps: {
  tokenPath: string;
  grantContexts: Pick<GrantContextStore, 'get'>;
  fhirServers: readonly FhirServer[];
}) {
  return async function addLaunchContext(ctx: TokenCtx, next: Next): Promise<void> {
    if (ctx.path !== deps.tokenPath) return next();
    ctx.set('Pragma', 'no-cache');
    await next();
    const oidc = ctx.oidc;
    if (oidc?.route !== 'token' || ctx.status !== 200) return;
    const grantType = (oidc.params as { grant_type?: unknown } | undefined)?.grant_type;
    if (grantType !== 'authorization_code' && grantType !== 'refresh_token') return;
    const grantId = oidc.entities.AuthorizationCode?.grantId ?? oidc.entities.RefreshToken?.grantId;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!grantId || typeof body !== 'object' || body === null) return;
    const fields = launchContextFields(
      await grantContextOf(deps.grantContexts, ctx, grantId),
      oidc.entities.AccessToken?.aud,
      deps.fhirServers,
    );
    ctx.body = { ...body, ...fields };
  };
}

/** The part of the consent service the token path needs (records/consent/consent-service.ts). */
export interface TokenConsentCheck {
  assertActiveForGrant(grantId: string, scopes: string): Promise<{ resource: { id: string } }>;
}

function atTokenEndpoint(ctx: unknown): boolean {
  return (ctx as { oidc?: { route?: unknown } } | undefined)?.oidc?.route === 'token';
}

/**
 * oidc-provider `extraTokenClaims`: user access tokens carry their grant's launch context and
 * `fhirUser`, stored with opaque tokens (introspection spreads them) and inside JWT ones.
 *
 * With `consents`, an access token with patient/ scopes issued by the token endpoint (code
 * exchange, refresh) needs its grant's Consent to be active and to cover those scopes; otherwise
 * the request fails with invalid_grant (a withdrawn or expired Consent also ends the grant). Such
 * tokens name the Consent as `consent: "Consent/<id>"`, a reference into this server's
 * /fhir/Consent API. Tokens minted in-process (no token request) are not checked.
 */
export function launchContextClaims(deps: {
  grantContexts: Pick<GrantContextStore, 'get'>;
  fhirServers: readonly FhirServer[];
  consents?: TokenConsentCheck;
}) {
  return async (
    ctx: unknown,
    token: { kind: string; grantId?: string; scope?: string; aud?: unknown; resourceServer?: { audience?: unknown } },
  ): Promise<Record<string, unknown> | undefined> => {
    if (token.kind !== 'AccessToken' || !token.grantId) return undefined;
    const context = await grantContextOf(deps.grantContexts, ctx, token.grantId);
    const claims: Record<string, unknown> = {
      ...launchContextFields(context, token.resourceServer?.audience ?? token.aud, deps.fhirServers),
    };
    if (context?.fhirUser) claims.fhirUser = context.fhirUser;
    if (context?.hcs) claims.extensions = tokenExtensions(context.hcs);
    let consentId = context?.consentId;
    const scope = token.scope ?? '';
    if (deps.consents && atTokenEndpoint(ctx) && patientScopes(scope.split(' ').filter(Boolean)).length) {
      consentId = (await deps.consents.assertActiveForGrant(token.grantId, scope)).resource.id;
    }
    if (consentId) claims.consent = `Consent/${consentId}`;
    return Object.keys(claims).length ? claims : undefined;
  };
}
