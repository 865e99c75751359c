import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { AuditEvent } from '../../records/audit/audit-event.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import type { AuditScope, ClientInfo, TokenName, UserInfo } from '../../records/audit/events/agents.js';
import { clip } from '../../records/audit/events/agents.js';
import { refreshReuse, tokenRefused, type IssuedToken } from '../../records/audit/events/token-events.js';
import { tokenIssuedRecord } from '../../records/audit/forms/token-issued.js';
import type { Recordable } from '../../records/audit/stored-event.js';
import { authorizationDecision } from '../../records/audit/events/consent-events.js';
import { loggedOut } from '../../records/audit/events/login-events.js';
import { clientChanged } from '../../records/audit/events/admin-events.js';
import { userFromClaims } from '../../records/audit/events/identity.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * AuditEvents for the routes oidc-provider serves (token, authorization, logout, RFC 7591/7592
 * registration), recorded by a middleware placed before the provider's router: it awaits the
 * record after the route ran and before the response leaves, so nothing is answered that is not
 * in the trail. If the trail cannot be written the request fails (the error boundary answers),
 * and tokens already minted are never handed out unaudited.
 *
 * oidc-provider's events are used only to *see* what a route decided (its error objects carry a
 * reason the response hides); they are emitted synchronously inside the request, so a listener
 * can note it in the request's state (platform/http/request-state.ts) for this middleware.
 *
 * This is glue between oidc-provider and the trail, so it sits in oauth/: records/audit builds
 * and keeps the events and knows nothing of oidc-provider.
 */

type Entity = {
  jti?: string;
  grantId?: string;
  accountId?: string;
  scope?: string;
  extra?: Record<string, unknown>;
  aud?: unknown;
  expiration?: number;
  consumed?: unknown;
  kind?: string;
  clientId?: string;
};

interface OidcFacts {
  route?: string;
  params?: Record<string, unknown>;
  client?: { clientId: string; clientName?: string; metadata?(): Record<string, unknown> };
  entities: Record<string, Entity | undefined> & { Account?: { accountId: string } };
  session?: { accountId?: string };
  body?: Record<string, unknown>;
}

type ProviderCtx = Context & { oidc?: OidcFacts };

/** What the provider's events told about this request. */
interface ProviderOutcome {
  error?: { error?: string; error_description?: string; error_detail?: string; status?: number; statusCode?: number };
  logout?: { accountId?: string; clientId?: string; everywhere: boolean };
}

declare module '../../platform/http/request-state.js' {
  interface RequestState {
    /** Noted by the provider's event listeners (`noteProviderOutcomes`), read by `providerAudit`. */
    providerOutcome?: ProviderOutcome;
  }
}

function noted(ctx: Context): ProviderOutcome {
  return (requestState(ctx).providerOutcome ??= {});
}

/** Registers the listeners that note errors and logouts on the request state (no recording there). */
export function noteProviderOutcomes(provider: Provider): void {
  const on = provider.on.bind(provider) as (event: string, listener: (ctx: Context | undefined, ...args: unknown[]) => void) => unknown;
  for (const event of ['grant.error', 'authorization.error', 'server_error']) {
    on(event, (ctx, err) => {
      if (ctx) noted(ctx).error = err as ProviderOutcome['error'];
    });
  }
  on('end_session.success', (ctx) => {
    const c = ctx as ProviderCtx | undefined;
    if (!c?.oidc) return;
    noted(c).logout = {
      accountId: c.oidc.session?.accountId,
      clientId: c.oidc.entities.Client?.clientId ?? c.oidc.client?.clientId,
      everywhere: Boolean(c.oidc.params?.logout),
    };
  });
}

function clientOf(ctx: ProviderCtx): ClientInfo | undefined {
  const client = ctx.oidc?.client;
  if (client) return { clientId: client.clientId, ...(client.clientName ? { name: client.clientName } : {}), ip: ctx.ip };
  // Not authenticated: the id the request claimed, marked as such by the missing name.
  const claimed = ctx.oidc?.params?.client_id;
  return typeof claimed === 'string' && claimed ? { clientId: clip(claimed, 200)!, ip: ctx.ip } : undefined;
}

/** An issued token by name: the jti of a JWT, a hash of an opaque value (whose id is the value). */
function nameOf(entity: Entity, valueInBody: unknown): TokenName | undefined {
  if (!entity.jti) return undefined;
  if (typeof valueInBody === 'string' && valueInBody !== entity.jti) return { jti: entity.jti };
  return { opaqueValue: entity.jti };
}

function audienceOf(entity: Entity): string | string[] | undefined {
  const aud = entity.aud;
  return typeof aud === 'string' || Array.isArray(aud) ? (aud as string | string[]) : undefined;
}

function issued(entity: Entity | undefined, kind: string, value: unknown, expiresIn?: unknown): IssuedToken | undefined {
  if (!entity) return undefined;
  const name = nameOf(entity, value);
  if (!name) return undefined;
  return {
    name,
    kind,
    format: 'jti' in name ? 'jwt' : 'opaque',
    ...(entity.scope ? { scope: entity.scope } : {}),
    ...(typeof expiresIn === 'number' ? { expiresIn } : {}),
    ...(audienceOf(entity) ? { audience: audienceOf(entity)! } : {}),
  };
}

function reference(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

function tokenEvent(scope: AuditScope, ctx: ProviderCtx): Recordable | undefined {
  const oidc = ctx.oidc!;
  const grantType = clip(String(oidc.params?.grant_type ?? 'unknown'), 200)!;
  const body = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as Record<string, unknown>;
  const client = clientOf(ctx);
  const account = oidc.entities.Account?.accountId;
  if (ctx.status === 200) {
    const at = oidc.entities.AccessToken ?? oidc.entities.ClientCredentials;
    const extra = at?.extra ?? {};
    const user: UserInfo | undefined = account
      ? userFromClaims(
          account,
          extra,
          at?.jti && typeof body.access_token === 'string' && body.access_token !== at.jti ? at.jti : undefined,
        )
      : undefined;
    // A rotated or new refresh token is only in the body; it is hashed, never copied.
    const refresh =
      typeof body.refresh_token === 'string'
        ? ({ name: { opaqueValue: body.refresh_token }, kind: 'RefreshToken' } satisfies IssuedToken)
        : undefined;
    const accessToken = issued(
      at,
      oidc.entities.ClientCredentials ? 'ClientCredentials' : 'AccessToken',
      body.access_token,
      body.expires_in,
    );
    const patient = reference(extra.patient) ?? reference(body.patient);
    const consent = reference(extra.consent);
    const grantId = at?.grantId ?? oidc.entities.RefreshToken?.grantId;
    // Stored compact (records/audit/forms/token-issued.ts): the most frequent event there is.
    return tokenIssuedRecord(
      scope.issuer,
      {
        client: client ?? { clientId: 'unidentified', ip: ctx.ip },
        grantType,
        ...(user ? { user } : {}),
        ...(patient ? { patient } : {}),
        ...(reference(extra.encounter) ? { encounter: reference(extra.encounter)! } : {}),
        ...(consent ? { consentId: consent } : {}),
        ...(grantId ? { grantId } : {}),
        ...(accessToken ? { accessToken } : {}),
        ...(refresh ? { refreshToken: refresh } : {}),
        idTokenIssued: typeof body.id_token === 'string',
      },
      scope.now,
    );
  }
  if (ctx.status < 400) return undefined;
  const error = typeof body.error === 'string' ? body.error : 'server_error';
  const rt = oidc.entities.RefreshToken;
  if (
    grantType === 'refresh_token' &&
    error === 'invalid_grant' &&
    rt?.consumed &&
    client &&
    typeof oidc.params?.refresh_token === 'string'
  ) {
    return refreshReuse(scope, {
      client,
      refreshToken: { opaqueValue: oidc.params.refresh_token },
      ...(rt.grantId ? { grantId: rt.grantId } : {}),
      ...(account ? { user: { accountId: account } } : {}),
    });
  }
  const err = noted(ctx).error;
  const reason =
    err?.error_detail ??
    requestState(ctx).clientAuthProblem ??
    (typeof body.error_description === 'string' ? body.error_description : undefined);
  return tokenRefused(scope, {
    ...(client ? { client } : { ip: ctx.ip }),
    grantType,
    error,
    ...(reason ? { reason: clip(reason)! } : {}),
    status: ctx.status,
    ...(account ? { user: { accountId: account } } : {}),
    ...((oidc.entities.AuthorizationCode?.grantId ?? rt?.grantId)
      ? { grantId: (oidc.entities.AuthorizationCode?.grantId ?? rt?.grantId)! }
      : {}),
  });
}

/** Where the browser goes next: an interaction page means the request has not been decided yet. */
function stillInteracting(ctx: Context): boolean {
  const location = ctx.response.get('Location');
  return Boolean(location) && /^(?:https?:\/\/[^/]+)?\/interaction\//.test(location);
}

async function authorizationEvent(
  scope: AuditScope,
  ctx: ProviderCtx,
  context: (grantId: string) => Promise<{ patient?: string; consentId?: string; fhirUser?: string } | undefined>,
): Promise<AuditEvent | undefined> {
  const oidc = ctx.oidc!;
  if (stillInteracting(ctx)) return undefined;
  const code = oidc.entities.AuthorizationCode;
  const err = noted(ctx).error;
  if (!code && !err) return undefined;
  const client = clientOf(ctx) ?? { clientId: 'unidentified', ip: ctx.ip };
  const accountId = code?.accountId ?? oidc.entities.Account?.accountId ?? oidc.session?.accountId;
  const grantId = code?.grantId ?? oidc.entities.Grant?.jti;
  const facts = grantId ? await context(grantId) : undefined;
  const user: UserInfo | undefined = accountId
    ? { accountId, ...(facts?.fhirUser ? { fhirUser: facts.fhirUser } : {}), ip: ctx.ip }
    : undefined;
  const requested = typeof oidc.params?.scope === 'string' ? oidc.params.scope : undefined;
  const scopeText = code?.scope ?? requested;
  const reason = err?.error_description ?? err?.error_detail;
  return authorizationDecision(scope, {
    client: { clientId: client.clientId, ...(client.name ? { name: client.name } : {}) },
    ...(user ? { user } : {}),
    ...(facts?.patient ? { patient: facts.patient } : {}),
    ...(facts?.consentId ? { consentId: facts.consentId } : {}),
    ...(scopeText ? { scope: clip(scopeText, 2000)! } : {}),
    granted: Boolean(code),
    ...(err?.error ? { error: err.error } : {}),
    ...(reason ? { reason: clip(reason)! } : {}),
    deniedByUser: err?.error === 'access_denied',
    ...(grantId ? { grantId } : {}),
  });
}

function logoutEvent(scope: AuditScope, ctx: ProviderCtx): AuditEvent | undefined {
  const seen = noted(ctx).logout;
  if (!seen) return undefined;
  return loggedOut(scope, {
    ...(seen.accountId ? { user: { accountId: seen.accountId } } : {}),
    ...(seen.clientId ? { client: { clientId: seen.clientId } } : {}),
    ip: ctx.ip,
    everywhere: seen.everywhere,
  });
}

const CLIENT_ROUTES = { registration: 'create', client_update: 'update', client_delete: 'delete' } as const;

function registrationEvent(scope: AuditScope, ctx: ProviderCtx, change: 'create' | 'update' | 'delete'): AuditEvent | undefined {
  const ok = change === 'create' ? ctx.status === 201 : change === 'update' ? ctx.status === 200 : ctx.status === 204;
  if (!ok) return undefined;
  const oidc = ctx.oidc!;
  const body = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as Record<string, unknown>;
  const clientId =
    oidc.entities.Client?.clientId ?? oidc.client?.clientId ?? (typeof body.client_id === 'string' ? body.client_id : undefined);
  if (!clientId) return undefined;
  // Names of the metadata fields sent, never their values (client_secret, jwks, …).
  const fields = Object.keys((oidc.body ?? {}) as Record<string, unknown>).sort();
  const kind = typeof body.smart_client_kind === 'string' ? body.smart_client_kind : undefined;
  return clientChanged(scope, {
    actor: { client: { clientId, ip: ctx.ip } },
    clientId,
    change,
    ...(fields.length ? { fields } : {}),
    ...(kind ? { kind } : {}),
    via: change === 'create' ? 'registration' : 'management',
  });
}

export interface ProviderAuditDeps {
  audit: AuditRecorder;
  issuer: string;
  /** A grant's launch context (patient, consent, fhirUser) for authorization decisions. */
  grantContext: (grantId: string) => Promise<{ patient?: string; consentId?: string; fhirUser?: string } | undefined>;
}

/** The middleware (see the module comment). Call `noteProviderOutcomes(provider)` once as well. */
export function providerAudit(deps: ProviderAuditDeps) {
  const scope: AuditScope = { issuer: deps.issuer };
  return async function auditProviderRoutes(ctx: ProviderCtx, next: Next): Promise<void> {
    await next();
    const route = ctx.oidc?.route;
    if (!route) return;
    let event: Recordable | undefined;
    const now = { ...scope, now: new Date() };
    if (route === 'token') event = tokenEvent(now, ctx);
    else if (route === 'authorization' || route === 'resume') event = await authorizationEvent(now, ctx, deps.grantContext);
    else if (route === 'end_session_confirm') event = logoutEvent(now, ctx);
    else if (route in CLIENT_ROUTES) event = registrationEvent(now, ctx, CLIENT_ROUTES[route as keyof typeof CLIENT_ROUTES]);
    if (event) await deps.audit.record(event);
  };
}
