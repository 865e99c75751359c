import Router from '@koa/router';
import type { Context } from 'koa';
import type { Adapter, FindAccount } from 'oidc-provider';
import { OAuthError, challenge, oauthErrors } from '../../platform/http/oauth-error.js';
import { ROUTES } from '../paths.js';
import { sessionStillOpen, type TokenLookup } from '../introspection/token-lookup.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * OpenID Connect UserInfo (Core §5.3) for SMART access tokens. oidc-provider's own endpoint only
 * accepts tokens without an audience, and every SMART token is bound to a FHIR server (`aud`), so
 * apps holding `openid` could never call it. This one accepts any active user access token whose
 * scope holds `openid` and answers the claims its scopes allow: `sub` always, `fhirUser` with the
 * fhirUser scope, name claims with `profile`.
 */

const SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  openid: ['sub'],
  fhirUser: ['fhirUser'],
  profile: ['name', 'family_name', 'given_name', 'preferred_username', 'updated_at'],
};

export interface UserinfoDeps {
  lookup: Pick<TokenLookup, 'find'>;
  adapters: (model: string) => Adapter;
  findAccount: FindAccount;
}

/** A refused token (RFC 6750 §3.1): the challenge repeats the error. */
function refusal(status: 401 | 403, error: string, description: string): OAuthError {
  return new OAuthError(status, error, description, challenge('Bearer', { error, error_description: description }));
}

export function userinfoRoutes(deps: UserinfoDeps): Router {
  const router = new Router();

  async function answer(ctx: Context): Promise<void> {
    requestState(ctx).routeLabel = 'userinfo';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    // Browser apps call this with a bearer token and no cookies: any origin may read the answer.
    ctx.set('Access-Control-Allow-Origin', '*');
    const header = ctx.get('Authorization');
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      throw new OAuthError(
        401,
        'invalid_request',
        'send the access token in the Authorization header (Bearer)',
        challenge('Bearer', { realm: 'userinfo' }),
      );
    }
    const token = await deps.lookup.find(match[1]!, 'access_token');
    if (!token || token.kind !== 'AccessToken' || !token.accountId || !(await sessionStillOpen(deps.adapters, token))) {
      throw refusal(401, 'invalid_token', 'the access token is not active');
    }
    const scopes = new Set((token.scope ?? '').split(' ').filter(Boolean));
    if (!scopes.has('openid')) throw refusal(403, 'insufficient_scope', 'the access token was not granted the openid scope');
    const account = await deps.findAccount(ctx as never, token.accountId);
    if (!account) throw refusal(401, 'invalid_token', 'the access token is not active');
    const claims = (await account.claims('userinfo', [...scopes].join(' '), {}, [])) as Record<string, unknown>;
    const body: Record<string, unknown> = {};
    for (const scope of scopes) for (const name of SCOPE_CLAIMS[scope] ?? []) if (claims[name] !== undefined) body[name] = claims[name];
    ctx.body = body;
  }

  router.get(ROUTES.userinfo, oauthErrors(), answer);
  router.post(ROUTES.userinfo, oauthErrors(), answer);
  router.options(ROUTES.userinfo, (ctx) => {
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    ctx.set('Access-Control-Allow-Headers', 'Authorization');
    ctx.set('Access-Control-Max-Age', '86400');
    ctx.status = 204;
  });
  return router;
}
