import { SignJWT, importJWK, type JWK } from 'jose';
import type { Adapter, JWKS } from 'oidc-provider';
import type { Config } from '../../platform/config/schema.js';
import { OAuthError, challenge, oauthErrors } from '../../platform/http/oauth-error.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { introspectionRecord } from '../../records/audit/forms/introspection.js';
import { ROUTES } from '../paths.js';
import { normaliseBase } from '../provider/fhir-servers.js';
import { adminApiAudience } from '../provider/admin-apis.js';
import { KIND_RULES, isSmartClientKind } from '../clients/client-kinds.js';
import type { GrantContextStore } from '../tokens/grant-context.js';
import { launchContextFields } from '../tokens/token-context.js';
import type { CallerAuthenticator, ClientRecord } from './caller-auth.js';
import { issuedFor, sessionStillOpen, type FoundToken, type TokenLookup } from './token-lookup.js';
import { clientAuthFailure, findToken, readTokenForm, requireToken, type Step, type TokenRequest } from './endpoint-steps.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * RFC 7662 token introspection, as a sequence of steps:
 *
 *   noStore → answerErrors → readTokenForm → authenticateCaller → requireToken → findToken
 *     → describeToken → recordIntrospection → answer
 *
 * The caller is a resource server (for the tokens sent to its FHIR servers), a SMART app (for
 * its own tokens), or the bearer of a client-credentials token for introspection's own audience.
 */

const JWT_RESPONSE = 'application/token-introspection+jwt';
const INVALID_TOKEN_CHALLENGE = challenge('Bearer', { error: 'invalid_token' });

export interface IntrospectionDeps {
  config: Config;
  auth: CallerAuthenticator;
  lookup: TokenLookup;
  adapters: (model: string) => Adapter;
  jwks: JWKS;
  /** Answers are recorded before they are sent. */
  audit: AuditRecorder;
  /** Launch context of grants: a refresh token's introspection carries it like its access tokens'. */
  grantContexts?: Pick<GrantContextStore, 'get'>;
}

interface Introspection extends TokenRequest {
  /** describeToken: whether the caller learns about the token */
  active: boolean;
  /** describeToken: the introspection response */
  answer: Record<string, unknown>;
}

/** SMART apps (confidential ones: they can authenticate) may introspect the tokens issued to them. */
function isApp(caller: ClientRecord): boolean {
  const kind = caller.smart_client_kind;
  return isSmartClientKind(kind) && KIND_RULES[kind].flow === 'app';
}

function audiences(aud: FoundToken['aud']): string[] {
  if (!aud) return [];
  return (Array.isArray(aud) ? aud : [aud]).map(normaliseBase);
}

const noStore: Step<Introspection> = async function noStore(ctx, next) {
  requestState(ctx).routeLabel = 'introspection';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  await next();
};

/**
 * A client authenticating as at /token (resource servers and apps only); or the bearer of a
 * client-credentials token carrying the `introspect` scope and issued for introspection's own
 * audience (provider/admin-apis.ts: a token a FHIR server was sent cannot be replayed here), which
 * then acts with its client's FHIR servers, like a resource server.
 */
function authenticateCaller(deps: IntrospectionDeps): Step<Introspection> {
  const url = `${deps.config.issuer}${ROUTES.introspection}`;
  const audience = adminApiAudience(deps.config.issuer, 'introspect');
  const invalidToken = (description: string) => new OAuthError(401, 'invalid_token', description, INVALID_TOKEN_CHALLENGE);

  async function bearerCaller(value: string): Promise<ClientRecord> {
    const token = await deps.lookup.find(value, 'access_token');
    if (!token || token.kind !== 'ClientCredentials') throw invalidToken('the bearer token is not an active client-credentials token');
    if (!(token.scope ?? '').split(' ').includes('introspect')) {
      throw new OAuthError(403, 'insufficient_scope', 'the bearer token does not carry the introspect scope');
    }
    if (!issuedFor(token, audience)) {
      throw invalidToken(`the bearer token was not issued for introspection (request one with scope=introspect and resource=${audience})`);
    }
    if (!(await sessionStillOpen(deps.adapters, token))) throw invalidToken('the sign-in session of the bearer token has ended');
    const client = await deps.auth.client(token.clientId);
    if (!client) throw invalidToken('the client of the bearer token no longer exists');
    return client;
  }

  return async function authenticateCaller(ctx, next) {
    const authorization = ctx.get('Authorization') || undefined;
    if (authorization && /^Bearer\s/i.test(authorization)) {
      ctx.state.caller = await bearerCaller(authorization.replace(/^Bearer\s+/i, ''));
    } else {
      const caller = await deps.auth.authenticate(authorization, ctx.state.form, url);
      if (caller.smart_client_kind !== 'resource_server' && !isApp(caller)) {
        throw new OAuthError(403, 'unauthorized_client', 'only resource servers, and apps for their own tokens, may introspect tokens');
      }
      ctx.state.caller = caller;
    }
    await next();
  };
}

/**
 * Whether the caller learns about the token, and what. A resource server learns about the access
 * tokens it is sent, for its own FHIR servers. A refresh token is never sent to a resource server:
 * only the client it was issued to may learn anything about it (RFC 7662 §4: the server may answer
 * differently by caller).
 */
function describeToken(deps: IntrospectionDeps): Step<Introspection> {
  const { config } = deps;
  const allBases = config.fhirServers.map((s) => s.base);

  function mayIntrospect(caller: ClientRecord, token: FoundToken): boolean {
    if (token.kind === 'RefreshToken' && token.clientId !== caller.client_id) return false;
    if (isApp(caller)) return token.clientId === caller.client_id;
    const served = ((caller.fhir_servers as string[] | undefined) ?? allBases).map(normaliseBase);
    return audiences(token.aud).some((a) => served.includes(a));
  }

  /** What access tokens keep in `extra` (launch context, fhirUser), read from the grant for a refresh token. */
  async function refreshTokenContext(token: FoundToken): Promise<Record<string, unknown>> {
    if (token.kind !== 'RefreshToken' || !token.grantId || !deps.grantContexts) return {};
    const context = await deps.grantContexts.get(token.grantId);
    const fields: Record<string, unknown> = { ...launchContextFields(context, token.aud, config.fhirServers) };
    if (context?.fhirUser) fields.fhirUser = context.fhirUser;
    return fields;
  }

  return async function describeToken(ctx, next) {
    const { caller, token } = ctx.state;
    const active = Boolean(token && mayIntrospect(caller, token) && (await sessionStillOpen(deps.adapters, token)));
    ctx.state.active = active;
    ctx.state.answer =
      active && token
        ? {
            ...(await refreshTokenContext(token)),
            ...token.extra,
            active: true,
            scope: token.scope,
            client_id: token.clientId,
            exp: token.exp,
            iat: token.iat,
            iss: config.issuer,
            sub: token.accountId ?? token.clientId,
            aud: token.aud,
            token_type: token.kind === 'RefreshToken' ? 'refresh_token' : 'Bearer',
          }
        : { active: false };
    await next();
  };
}

function recordIntrospection(deps: IntrospectionDeps): Step<Introspection> {
  return async function recordIntrospection(ctx, next) {
    const { caller, token, active, value } = ctx.state;
    if (deps.config.audit.introspection)
      await deps.audit.record(introspectionRecord(deps.config.issuer, { callerId: caller.client_id, ip: ctx.ip, token, active, value }));
    await next();
  };
}

/** JSON, or a JWT signed by this server when the caller asks for one (RFC 9701). */
function answer(deps: IntrospectionDeps): Step<Introspection> {
  let signer: Promise<{ key: Awaited<ReturnType<typeof importJWK>>; kid: string | undefined }> | undefined;
  const signingKey = () => {
    signer ??= (async () => {
      // The first RSA key that may sign (next/retired keys are marked verify-only).
      const jwk = deps.jwks.keys.find((k) => k.kty === 'RSA' && !(k as { key_ops?: string[] }).key_ops?.every((op) => op === 'verify')) as
        JWK | undefined;
      if (!jwk) throw new Error('no RSA signing key');
      return { key: await importJWK(jwk, 'RS256'), kid: jwk.kid };
    })();
    return signer;
  };

  return async function answer(ctx) {
    if (ctx.accepts('json', JWT_RESPONSE) !== JWT_RESPONSE) {
      ctx.body = ctx.state.answer;
      return;
    }
    const { key, kid } = await signingKey();
    ctx.type = JWT_RESPONSE;
    ctx.body = await new SignJWT({ token_introspection: ctx.state.answer })
      .setProtectedHeader({ alg: 'RS256', typ: 'token-introspection+jwt', ...(kid ? { kid } : {}) })
      .setIssuer(deps.config.issuer)
      .setAudience(ctx.state.caller.client_id)
      .setIssuedAt()
      .sign(key);
  };
}

export function introspectionEndpoint(deps: IntrospectionDeps): Step<Introspection>[] {
  return [
    noStore,
    oauthErrors(clientAuthFailure),
    readTokenForm,
    authenticateCaller(deps),
    requireToken,
    findToken(deps.lookup),
    describeToken(deps),
    recordIntrospection(deps),
    answer(deps),
  ];
}
