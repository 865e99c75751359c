import type { Context, Next } from 'koa';
import { issuedFor, type ApiTokens } from '../../oauth/introspection/token-lookup.js';
import { ScimError } from '../../domain/scim/errors.js';
import { challenge } from '../../platform/http/oauth-error.js';

/**
 * Who may use SCIM: the bearer of an access token this server issued through client_credentials
 * whose scope includes `scim` (registered only for backend_service clients) and whose audience is
 * SCIM's own (`<issuer>/scim/v2`, oauth/provider/admin-apis.ts), so a token a FHIR server was sent can
 * never be replayed here. A missing, unknown or expired token is 401; a good token without the
 * scope (or a user's token) is 403 (RFC 6750 §3); a token with the scope issued for another
 * audience, or whose sign-in session has ended, is 401 invalid_token.
 */

export const SCIM_SCOPE = 'scim';

export type ScimTokens = ApiTokens;

const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

function invalidToken(detail: string): ScimError {
  return new ScimError(401, undefined, detail, {
    'WWW-Authenticate': challenge('Bearer', { realm: 'scim', error: 'invalid_token', error_description: detail }),
  });
}

export function requireScimToken(tokens: ScimTokens) {
  return async function scimAuth(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get('Authorization');
    const m = BEARER.exec(header);
    if (!m) {
      throw new ScimError(401, undefined, 'an access token with the scim scope is required (Authorization: Bearer …)', {
        'WWW-Authenticate': challenge('Bearer', { realm: 'scim' }),
      });
    }
    const token = await tokens.find(m[1]!);
    if (!token) throw invalidToken('the access token is not valid (unknown, expired or revoked)');
    const scopes = (token.scope ?? '').split(' ');
    if (!scopes.includes(SCIM_SCOPE) || token.kind !== 'ClientCredentials') {
      throw new ScimError(403, undefined, `the access token does not carry the ${SCIM_SCOPE} scope of an administration client`, {
        'WWW-Authenticate': challenge('Bearer', { realm: 'scim', error: 'insufficient_scope', scope: SCIM_SCOPE }),
      });
    }
    if (!issuedFor(token, tokens.audience))
      throw invalidToken(`the access token was not issued for SCIM (request one with scope=scim and resource=${tokens.audience})`);
    if (!(await tokens.sessionOpen(token))) throw invalidToken('the sign-in session this access token belonged to has ended');
    ctx.state.scimClient = token.clientId;
    await next();
  };
}
