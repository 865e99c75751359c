import { ADMIN_SCOPES } from '../clients/scope-patterns.js';
import { normaliseBase } from './fhir-servers.js';

/**
 * This server's administration APIs are resource servers of their own, like the own FHIR API
 * (own-api.ts): a token carrying `scim` or `introspect` is issued only for that scope's audience
 * and carries nothing else, so a FHIR server (or anyone) that receives a data token cannot replay
 * it to administer the user directory or to introspect tokens, and an admin token opens no data.
 *
 *   scim        → `<issuer>/scim/v2`   (the SCIM base URL)
 *   introspect  → `<issuer>/introspect` (the endpoint a bearer-token caller uses)
 */

export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** Paths under the issuer; `/introspect` is ROUTES.introspection, `/scim/v2` the SCIM prefix. */
const ADMIN_API_PATHS: Readonly<Record<AdminScope, string>> = { scim: '/scim/v2', introspect: '/introspect' };

export function isAdminScope(scope: string): scope is AdminScope {
  return (ADMIN_SCOPES as readonly string[]).includes(scope);
}

/** The audience of tokens carrying `scope`. */
export function adminApiAudience(issuer: string, scope: AdminScope): string {
  return `${normaliseBase(issuer)}${ADMIN_API_PATHS[scope]}`;
}

/** The administrative scope whose audience `resource` is, if it is one. */
export function adminApiOf(issuer: string, resource: string | undefined): AdminScope | undefined {
  if (resource === undefined) return undefined;
  const wanted = normaliseBase(resource);
  return ADMIN_SCOPES.find((scope) => adminApiAudience(issuer, scope) === wanted);
}

/** What a token for any other audience may carry: everything but the administrative scopes. */
export function withoutAdminScopes(scopes: readonly string[]): string[] {
  return scopes.filter((s) => !isAdminScope(s));
}
