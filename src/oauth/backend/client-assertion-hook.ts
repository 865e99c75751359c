import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { claimOnce } from '../../platform/storage/claim-once.js';
import { assertionProblem, jtiMemorySeconds } from './assertion-rules.js';
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
 * oidc-provider's `assertJwtClientAuthClaimsAndHeader`: runs after it verified the signature.
 * The `jti` is claimed atomically here (SET NX), so two concurrent requests carrying the same
 * assertion cannot both pass, on one instance or many; oidc-provider's own replay check that
 * follows is find-then-save and would let both through.
 */
export function clientAssertionHook(issuer: string, redis: RedisClient, keyspace: Keyspace, fetcher?: Pick<JwksFetcher, 'findKey'>) {
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
    const first = await claimOnce(
      redis,
      keyspace,
      'client-assertion',
      `${client.clientId}\n${claims.jti as string}`,
      jtiMemorySeconds(claims.exp as number, now, CLOCK_TOLERANCE_SECONDS),
    );
    if (!first) throw new errors.InvalidClientAuth('jti has already been used (client assertions are single-use)');
    // The UDAP hl7-b2b context (purpose of use, subject) rides in the assertion; the token's claims use it.
    rememberB2bAssertion(ctx, claims);
  };
}
