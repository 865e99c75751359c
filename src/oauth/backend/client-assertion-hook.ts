import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { assertionProblem } from './assertion-rules.js';
import { ROUTES } from '../paths.js';
import type { JwksFetcher } from './jwks-fetch.js';
import { rememberB2bAssertion } from './hcs-claims.js';

export const CLOCK_TOLERANCE_SECONDS = 15;

/**
 * Absolute URLs a client assertion may name as `aud` when sent to `route`: the token endpoint URL
 * (SMART), the issuer identifier (RFC 7523bis recommends it; openid-client v6 sends it) and, at
 * introspection and revocation, that endpoint's own URL.
 */
export function assertionAudiences(issuer: string, route: string | undefined): string[] {
  const token = `${issuer}${ROUTES.token}`;
  const here =
    route === 'introspection' ? `${issuer}${ROUTES.introspection}` : route === 'revocation' ? `${issuer}${ROUTES.revocation}` : undefined;
  return here ? [token, issuer, here] : [token, issuer];
}

/**
 * oidc-provider's `assertJwtClientAuthClaimsAndHeader`: runs after it verified the signature and
 * before its replay check, which app/provider.ts makes one atomic claim of the `jti` (SET NX), so
 * two concurrent requests carrying the same assertion cannot both pass, on one instance or many.
 */
export function clientAssertionHook(issuer: string, fetcher?: Pick<JwksFetcher, 'findKey'>) {
  return async function assertJwtClientAuthClaimsAndHeader(
    ctx: KoaContextWithOIDC,
    claims: Record<string, unknown>,
    header: Record<string, unknown>,
    client: { clientId: string; jwksUri?: string; jku_allowlist?: string[] },
  ): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const problem = assertionProblem({
      claims,
      header,
      client: { clientId: client.clientId, jwksUri: client.jwksUri, jkuAllowlist: client.jku_allowlist },
      audiences: assertionAudiences(issuer, ctx.oidc.route),
      now,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    if (problem) throw new errors.InvalidClientAuth(problem);
    // oidc-provider keeps verifying with keys it once fetched for as long as they work; asking our
    // cache makes a key the client removed from its jwks_uri stop working when the cache expires.
    if (client.jwksUri && fetcher && !(await fetcher.findKey(client.jwksUri, header.kid as string))) {
      throw new errors.InvalidClientAuth("the assertion's kid is no longer in the client's jwks_uri key set");
    }
    // The UDAP hl7-b2b context (purpose of use, subject) rides in the assertion; the token's claims use it.
    rememberB2bAssertion(ctx, claims);
  };
}
