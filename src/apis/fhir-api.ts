import { FhirError } from '../domain/fhir/errors.js';
import { challenge } from '../platform/http/oauth-error.js';
import { issuedFor, type ApiTokens, type FoundToken } from '../oauth/introspection/token-lookup.js';
import { parseScope, type Permission } from '../domain/scopes/scope-syntax.js';

/**
 * What this server's FHIR APIs (/fhir/Consent, /fhir/Provenance, /fhir/AuditEvent) share: bearer-token
 * callers (tokens for `<issuer>/fhir`, oauth/provider/own-api.ts) answered with FHIR errors and an
 * RFC 6750 challenge naming the API's realm, and the permissions their scopes give on one resource.
 */

/** The RFC 6750 realm each FHIR API names in its challenges. */
export type FhirApiRealm = 'audit' | 'consent';

const BEARER = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i;

/** The active access token for this API of an `Authorization: Bearer` header, or a 401 naming `realm`. */
export async function bearerAccessToken(authorization: string, tokens: ApiTokens, realm: FhirApiRealm): Promise<FoundToken> {
  const m = BEARER.exec(authorization);
  if (!m)
    throw new FhirError(401, 'login', 'an access token is required (Authorization: Bearer …)', {
      'WWW-Authenticate': challenge('Bearer', { realm }),
    });
  const invalid = (description: string) =>
    new FhirError(401, 'login', description, {
      'WWW-Authenticate': challenge('Bearer', { realm, error: 'invalid_token', error_description: description }),
    });
  const token = await tokens.find(m[1]!);
  if (!token || token.kind === 'RefreshToken') throw invalid('the access token is not valid (unknown, expired or revoked)');
  if (!issuedFor(token, tokens.audience))
    throw invalid(`the access token was not issued for this API (request one with resource=${tokens.audience})`);
  if (!(await tokens.sessionOpen(token))) throw invalid('the sign-in session this access token belonged to has ended');
  return token;
}

export function insufficientScope(realm: FhirApiRealm, description: string): FhirError {
  return new FhirError(403, 'forbidden', description, { 'WWW-Authenticate': challenge('Bearer', { realm, error: 'insufficient_scope' }) });
}

/**
 * The permission letters scopes of one context give on one resource type. Only scopes naming the
 * type count (a `*` data scope must not open an administrative API), and never scopes with a
 * query constraint, which these APIs do not evaluate.
 */
export function resourcePermissions(scopes: readonly string[], context: 'patient' | 'system', resourceType: string): Set<Permission> {
  const permissions = new Set<Permission>();
  for (const s of scopes) {
    const p = parseScope(s);
    if (p.kind !== 'resource' || p.context !== context || p.resourceType !== resourceType || p.query) continue;
    for (const letter of p.permissions) permissions.add(letter);
  }
  return permissions;
}
