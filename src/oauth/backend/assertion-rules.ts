/**
 * SMART's profile of RFC 7523 client assertions, on top of what oidc-provider checks itself
 * (alg allow-list, signature, exp/jti/iss presence, iss = client_id):
 *  - `sub` must equal `iss` (the client id);
 *  - `aud` must be this server's token endpoint URL (SMART), its issuer identifier (RFC 7523bis,
 *    openid-client's default) or the endpoint being called, never merely "something on this
 *    host": the URLs come from configuration, not the request's Host;
 *  - `exp` at most 5 minutes ahead (exactly now + 300 s is accepted);
 *  - `iat`, when present, a number no later than now plus the clock tolerance: an assertion
 *    "issued" in the future was made by a wrong clock or made in advance to be used later;
 *  - the header names the key with `kid`;
 *  - a `jku` header is honoured only when it is the client's registered `jwks_uri` or on its
 *    `jku_allowlist`; anything else is refused rather than ignored.
 * Every problem is a short sentence naming the rule; none of them echo key material.
 */

export const MAX_ASSERTION_LIFETIME_SECONDS = 300;

export interface AssertionClient {
  clientId: string;
  jwksUri?: string | undefined;
  jkuAllowlist?: readonly string[] | undefined;
}

export interface AssertionCheck {
  claims: Record<string, unknown>;
  header: Record<string, unknown>;
  client: AssertionClient;
  /** Absolute URLs an assertion may be addressed to at this endpoint. */
  audiences: readonly string[];
  now: number;
  clockTolerance: number;
}

export function assertionProblem({ claims, header, client, audiences, now, clockTolerance }: AssertionCheck): string | undefined {
  if (typeof header.kid !== 'string' || !header.kid) return 'the client assertion header must name the signing key with kid';
  if (header.jku !== undefined) {
    const allowed = [client.jwksUri, ...(client.jkuAllowlist ?? [])].filter(Boolean);
    if (typeof header.jku !== 'string' || !allowed.includes(header.jku))
      return 'the jku header is not one of the URLs registered for this client';
  }
  if (claims.iss !== client.clientId) return 'iss must be the client_id';
  if (claims.sub !== client.clientId) return 'sub must equal iss (the client_id)';
  const aud = claims.aud;
  const audOk = Array.isArray(aud) ? aud.some((a) => audiences.includes(a as string)) : typeof aud === 'string' && audiences.includes(aud);
  if (!audOk) return `aud must be the token endpoint URL or the issuer (one of: ${audiences.join(', ')})`;
  if (typeof claims.exp !== 'number') return 'exp is required';
  // No tolerance on the upper bound: SMART's five minutes is the whole budget for clock skew.
  if (claims.exp > now + MAX_ASSERTION_LIFETIME_SECONDS) return 'exp must be at most 5 minutes in the future';
  if (claims.exp < now - clockTolerance) return 'the client assertion has expired';
  if (claims.iat !== undefined) {
    if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) return 'iat must be a NumericDate (seconds since the epoch)';
    if (claims.iat > now + clockTolerance)
      return `iat is in the future (more than the ${clockTolerance} s clock tolerance ahead of this server): check the client's clock`;
  }
  if (typeof claims.jti !== 'string' || !claims.jti) return 'jti is required';
  if (claims.jti.length > 256) return 'jti is longer than 256 characters';
  return undefined;
}

/** How long a used `jti` must be remembered: until the assertion could no longer be accepted. */
export function jtiMemorySeconds(exp: number, now: number, clockTolerance: number): number {
  return Math.max(1, Math.ceil(exp - now + clockTolerance));
}
