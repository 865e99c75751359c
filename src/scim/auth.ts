import type { Context, Next } from 'koa';
import type { FoundToken } from '../introspection/token-lookup.js';
import { ScimError } from './errors.js';

/**
 * Who may use SCIM: the bearer of an access token this server issued through client_credentials
 * whose scope includes `scim` (registered only for backend_service clients). A missing, unknown
 * or expired token is 401; a good token without the scope (or a user's token) is 403 (RFC 6750 §3).
 */

export const SCIM_SCOPE = 'scim';

export interface TokenFinder {
  find(value: string): Promise<FoundToken | undefined>;
}

const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

export function requireScimToken(lookup: TokenFinder) {
  return async function scimAuth(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get('Authorization');
    const m = BEARER.exec(header);
    if (!m) {
      ctx.set('WWW-Authenticate', 'Bearer realm="scim"');
      throw new ScimError(401, undefined, 'an access token with the scim scope is required (Authorization: Bearer …)');
    }
    const token = await lookup.find(m[1]!);
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer realm="scim", error="invalid_token"');
      throw new ScimError(401, undefined, 'the access token is not valid (unknown, expired or revoked)');
    }
    const scopes = (token.scope ?? '').split(' ');
    if (!scopes.includes(SCIM_SCOPE) || token.kind !== 'ClientCredentials') {
      ctx.set('WWW-Authenticate', `Bearer realm="scim", error="insufficient_scope", scope="${SCIM_SCOPE}"`);
      throw new ScimError(403, undefined, `the access token does not carry the ${SCIM_SCOPE} scope of an administration client`);
    }
    ctx.state.scimClient = token.clientId;
    await next();
  };
}
