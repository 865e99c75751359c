import type Provider from 'oidc-provider';
import type { Adapter } from 'oidc-provider';
import type { Config } from '../../platform/config/schema.js';
import { OAuthError, oauthErrors } from '../../platform/http/oauth-error.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { ROUTES } from '../paths.js';
import { CallerAuthError, type CallerAuthenticator } from './caller-auth.js';
import { revocationEvent } from './revocation-audit.js';
import { JWT_MARKER_MODEL, type TokenLookup } from './token-lookup.js';
import { clientAuthFailure, findToken, readTokenForm, requireToken, type Step } from './endpoint-steps.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * RFC 7009 token revocation, as a sequence of steps:
 *
 *   noStore → answerErrors → readTokenForm → authenticateAnyClient → requireToken → findToken
 *     → refuseUnknownOrForeign → revoke
 *
 * Every outcome is recorded before it is answered: a value that names no token, a token of
 * another client (refused), a revoked token.
 */

export interface RevocationDeps {
  config: Config;
  provider: Provider;
  auth: CallerAuthenticator;
  lookup: TokenLookup;
  adapters: (model: string) => Adapter;
  audit: AuditRecorder;
}

const noStore: Step = async function noStore(ctx, next) {
  requestState(ctx).routeLabel = 'revocation';
  ctx.set('Cache-Control', 'no-store');
  await next();
};

/** Revocation is open to every client kind; public clients identify themselves with client_id. */
function authenticateAnyClient(deps: RevocationDeps): Step {
  const url = `${deps.config.issuer}${ROUTES.revocation}`;
  return async function authenticateAnyClient(ctx, next) {
    const { form } = ctx.state;
    const authorization = ctx.get('Authorization') || undefined;
    if (authorization || form.has('client_assertion') || form.has('client_secret')) {
      ctx.state.caller = await deps.auth.authenticate(authorization, form, url);
    } else {
      const id = form.get('client_id');
      const client = id ? await deps.auth.client(id) : undefined;
      if (!client || client.token_endpoint_auth_method !== 'none') throw new CallerAuthError('client authentication is required');
      ctx.state.caller = client;
    }
    await next();
  };
}

/**
 * A value that names no token is answered 200 like a revoked one (RFC 7009 §2.2); a token of
 * another client is refused.
 */
function refuseUnknownOrForeign(deps: RevocationDeps): Step {
  const { issuer } = deps.config;
  return async function refuseUnknownOrForeign(ctx, next) {
    const { caller, token, value } = ctx.state;
    if (!token) {
      await deps.audit.record(revocationEvent(issuer, { callerId: caller.client_id, ip: ctx.ip, value }));
      ctx.status = 200;
      ctx.body = '';
      return;
    }
    if (token.clientId !== caller.client_id) {
      const refusal = new OAuthError(400, 'invalid_request', 'this token was not issued to the authenticated client');
      await deps.audit.record(
        revocationEvent(issuer, {
          callerId: caller.client_id,
          ip: ctx.ip,
          value,
          error: { error: refusal.error, description: refusal.description, status: refusal.status },
        }),
      );
      throw refusal;
    }
    await next();
  };
}

/** The token goes; a refresh token takes its whole grant with it (RFC 7009 §2.1). */
function revoke(deps: RevocationDeps): Step {
  return async function revoke(ctx) {
    const caller = ctx.state.caller;
    // refuseUnknownOrForeign has answered when there is no token.
    const token = ctx.state.token!;
    const model = token.format === 'jwt' ? JWT_MARKER_MODEL : token.kind;
    await deps.adapters(model).destroy(token.id);
    const grantRevoked = token.kind === 'RefreshToken' && Boolean(token.grantId);
    if (grantRevoked) {
      await Promise.all([deps.adapters('AccessToken').revokeByGrantId(token.grantId!), deps.adapters('Grant').destroy(token.grantId!)]);
      deps.provider.emit('grant.revoked', ctx, token.grantId);
    }
    await deps.audit.record(revocationEvent(deps.config.issuer, { callerId: caller.client_id, ip: ctx.ip, token, grantRevoked }));
    ctx.status = 200;
    ctx.body = '';
  };
}

export function revocationEndpoint(deps: RevocationDeps): Step[] {
  return [
    noStore,
    oauthErrors(clientAuthFailure),
    readTokenForm,
    authenticateAnyClient(deps),
    requireToken,
    findToken(deps.lookup),
    refuseUnknownOrForeign(deps),
    revoke(deps),
  ];
}
