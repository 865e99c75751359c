import Router from '@koa/router';
import type { Context } from 'koa';
import { SignJWT, importJWK, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { Adapter, JWKS } from 'oidc-provider';
import type { Config } from '../../platform/config/schema.js';
import { ROUTES } from '../paths.js';
import { normaliseBase } from '../provider/fhir-servers.js';
import { CallerAuthError, type CallerAuthenticator, type ClientRecord } from './caller-auth.js';
import { JWT_MARKER_MODEL, issuedFor, sessionStillOpen, type FoundToken, type TokenLookup } from './token-lookup.js';
import { adminApiAudience } from '../provider/admin-apis.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { revocationEvent } from './revocation-audit.js';
import { introspectionRecord } from '../../records/audit/forms/introspection.js';
import { KIND_RULES, isSmartClientKind } from '../clients/client-kinds.js';
import type { GrantContextStore } from '../tokens/grant-context.js';
import { launchContextFields } from '../tokens/token-context.js';

const FORM_LIMIT = 16 * 1024;
const JWT_RESPONSE = 'application/token-introspection+jwt';

/** Reads a small form body. Event listeners rather than an async iterator: this is the hot path. */
function readBody(req: Context['req'], limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new OAuthError(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const body = await readBody(ctx.req, FORM_LIMIT);
  if (!body) throw new OAuthError(413, 'invalid_request', 'the request body is too large');
  const form = new URLSearchParams(body.toString('utf8'));
  const seen = new Set<string>();
  for (const name of form.keys()) {
    if (seen.has(name)) throw new OAuthError(400, 'invalid_request', `parameter ${name} must not be repeated`);
    seen.add(name);
  }
  return form;
}

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

function respondError(ctx: Context, err: OAuthError): void {
  ctx.status = err.status;
  if (err.status === 401 && err.error === 'invalid_token') ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
  else if (err.status === 401) ctx.set('WWW-Authenticate', 'Basic realm="introspection", error="invalid_client"');
  ctx.body = { error: err.error, error_description: err.description };
}

function audiences(aud: FoundToken['aud']): string[] {
  if (!aud) return [];
  return (Array.isArray(aud) ? aud : [aud]).map(normaliseBase);
}

export interface IntrospectionDeps {
  config: Config;
  provider: Provider;
  auth: CallerAuthenticator;
  lookup: TokenLookup;
  adapters: (model: string) => Adapter;
  jwks: JWKS;
  /** Answers are recorded before they are sent. */
  audit: AuditRecorder;
  /** Launch context of grants: a refresh token's introspection carries it like its access tokens'. */
  grantContexts?: Pick<GrantContextStore, 'get'>;
}

/** SMART apps (confidential ones: they can authenticate) may introspect the tokens issued to them. */
function isApp(caller: ClientRecord): boolean {
  const kind = caller.smart_client_kind;
  return isSmartClientKind(kind) && KIND_RULES[kind].flow === 'app';
}

/**
 * RFC 7662 introspection and RFC 7009 revocation, served by us rather than by oidc-provider:
 * introspection is the product's hottest path (one pipelined Redis round trip, no password
 * hashing), and oidc-provider cannot introspect or revoke its own JWT access tokens.
 */
export function introspectionRoutes(deps: IntrospectionDeps): Router {
  const { config } = deps;
  const router = new Router();
  const allBases = config.fhirServers.map((s) => s.base);
  const introspectUrl = `${config.issuer}${ROUTES.introspection}`;
  const revokeUrl = `${config.issuer}${ROUTES.revocation}`;
  const introspectAudience = adminApiAudience(config.issuer, 'introspect');
  let signer: Promise<{ key: Awaited<ReturnType<typeof importJWK>>; kid: string | undefined }> | undefined;

  const signingKey = () => {
    signer ??= (async () => {
      // The first RSA key that may sign (next/retired keys are marked verify-only).
      const jwk = deps.jwks.keys.find((k) => k.kty === 'RSA' && !(k as { key_ops?: string[] }).key_ops?.every((op) => op === 'verify')) as JWK | undefined;
      if (!jwk) throw new Error('no RSA signing key');
      return { key: await importJWK(jwk, 'RS256'), kid: jwk.kid };
    })();
    return signer;
  };

  /**
   * A resource server learns about the access tokens it is sent, for its own FHIR servers. A
   * refresh token is never sent to a resource server: only the client it was issued to may learn
   * anything about it (RFC 7662 §4: the server may answer differently by caller).
   */
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

  function describe(token: FoundToken, context: Record<string, unknown>): Record<string, unknown> {
    return {
      ...context,
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
    };
  }

  /**
   * A caller may instead present a client-credentials token carrying the `introspect` scope and
   * issued for introspection's own audience (provider/admin-apis.ts: a token a FHIR server was
   * sent cannot be replayed here); it then acts with its client's FHIR servers, like a resource
   * server.
   */
  async function bearerCaller(value: string): Promise<ClientRecord> {
    const token = await deps.lookup.find(value, 'access_token');
    if (!token || token.kind !== 'ClientCredentials') {
      throw new OAuthError(401, 'invalid_token', 'the bearer token is not an active client-credentials token');
    }
    if (!(token.scope ?? '').split(' ').includes('introspect')) {
      throw new OAuthError(403, 'insufficient_scope', 'the bearer token does not carry the introspect scope');
    }
    if (!issuedFor(token, introspectAudience)) {
      throw new OAuthError(401, 'invalid_token', `the bearer token was not issued for introspection (request one with scope=introspect and resource=${introspectAudience})`);
    }
    if (!(await sessionStillOpen(deps.adapters, token))) throw new OAuthError(401, 'invalid_token', 'the sign-in session of the bearer token has ended');
    const client = await deps.auth.client(token.clientId);
    if (!client) throw new OAuthError(401, 'invalid_token', 'the client of the bearer token no longer exists');
    return client;
  }

  router.post(ROUTES.introspection, async (ctx) => {
    ctx.state.routeLabel = 'introspection';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    try {
      const form = await readForm(ctx);
      const authorization = ctx.get('Authorization') || undefined;
      let caller: ClientRecord;
      if (authorization && /^Bearer\s/i.test(authorization)) {
        caller = await bearerCaller(authorization.replace(/^Bearer\s+/i, ''));
      } else {
        try {
          caller = await deps.auth.authenticate(authorization, form, introspectUrl);
        } catch (err) {
          if (err instanceof CallerAuthError) throw new OAuthError(401, 'invalid_client', `client authentication failed: ${err.problem}`);
          throw err;
        }
        if (caller.smart_client_kind !== 'resource_server' && !isApp(caller)) {
          throw new OAuthError(403, 'unauthorized_client', 'only resource servers, and apps for their own tokens, may introspect tokens');
        }
      }
      const value = form.get('token');
      if (!value) throw new OAuthError(400, 'invalid_request', 'token is required');

      const token = await deps.lookup.find(value, form.get('token_type_hint'));
      const active = token && mayIntrospect(caller, token) && (await sessionStillOpen(deps.adapters, token));
      const body = active ? describe(token, await refreshTokenContext(token)) : { active: false };
      if (config.audit.introspection) await deps.audit.record(introspectionRecord(config.issuer, { callerId: caller.client_id, ip: ctx.ip, token, active: Boolean(active), value }));

      if (ctx.accepts('json', JWT_RESPONSE) === JWT_RESPONSE) {
        const { key, kid } = await signingKey();
        ctx.type = JWT_RESPONSE;
        ctx.body = await new SignJWT({ token_introspection: body })
          .setProtectedHeader({ alg: 'RS256', typ: 'token-introspection+jwt', ...(kid ? { kid } : {}) })
          .setIssuer(config.issuer)
          .setAudience(caller.client_id)
          .setIssuedAt()
          .sign(key);
        return;
      }
      ctx.body = body;
    } catch (err) {
      if (err instanceof OAuthError) return respondError(ctx, err);
      throw err;
    }
  });

  router.post(ROUTES.revocation, async (ctx) => {
    ctx.state.routeLabel = 'revocation';
    ctx.set('Cache-Control', 'no-store');
    try {
      const form = await readForm(ctx);
      let caller: ClientRecord;
      try {
        caller = await authenticateAnyClient(deps.auth, ctx.get('Authorization') || undefined, form, revokeUrl);
      } catch (err) {
        if (err instanceof CallerAuthError) throw new OAuthError(401, 'invalid_client', `client authentication failed: ${err.problem}`);
        throw err;
      }
      const value = form.get('token');
      if (!value) throw new OAuthError(400, 'invalid_request', 'token is required');
      // token_type_hint only orders the lookup; the token is found whatever it says.
      const token = await deps.lookup.find(value, form.get('token_type_hint'));
      if (!token) {
        await deps.audit.record(revocationEvent(config.issuer, { callerId: caller.client_id, ip: ctx.ip, value }));
        ctx.status = 200;
        ctx.body = '';
        return;
      }
      if (token.clientId !== caller.client_id) {
        const refusal = new OAuthError(400, 'invalid_request', 'this token was not issued to the authenticated client');
        await deps.audit.record(revocationEvent(config.issuer, { callerId: caller.client_id, ip: ctx.ip, value, error: { error: refusal.error, description: refusal.description, status: refusal.status } }));
        throw refusal;
      }

      const model = token.format === 'jwt' ? JWT_MARKER_MODEL : token.kind;
      await deps.adapters(model).destroy(token.id);
      if (token.kind === 'RefreshToken' && token.grantId) {
        // A refresh token stands for the whole grant (RFC 7009 §2.1): every token of it goes.
        await Promise.all([deps.adapters('AccessToken').revokeByGrantId(token.grantId), deps.adapters('Grant').destroy(token.grantId)]);
        deps.provider.emit('grant.revoked', ctx, token.grantId);
      }
      await deps.audit.record(revocationEvent(config.issuer, { callerId: caller.client_id, ip: ctx.ip, token, grantRevoked: token.kind === 'RefreshToken' && Boolean(token.grantId) }));
      ctx.status = 200;
      ctx.body = '';
    } catch (err) {
      if (err instanceof OAuthError) return respondError(ctx, err);
      throw err;
    }
  });

  return router;
}

/** Revocation is open to every client kind; public clients identify themselves with client_id. */
async function authenticateAnyClient(auth: CallerAuthenticator, authorization: string | undefined, form: URLSearchParams, url: string): Promise<ClientRecord> {
  const hasCredentials = Boolean(authorization) || form.has('client_assertion') || form.has('client_secret');
  if (!hasCredentials) {
    const id = form.get('client_id');
    const client = id ? await auth.client(id) : undefined;
    if (!client || client.token_endpoint_auth_method !== 'none') throw new CallerAuthError('client authentication is required');
    return client;
  }
  return auth.authenticate(authorization, form, url);
}
