import { parseScope } from '../../domain/scopes/scope-syntax.js';
import { normaliseBase } from './fhir-servers.js';
import { isAdminScope } from './admin-apis.js';

/**
 * This server's own FHIR APIs (/fhir/Consent, /fhir/AuditEvent) are a resource server of their
 * own, with their own audience: a token minted for a FHIR server must not also open the consent
 * registry or the audit trail, and a token for these APIs must not reach patient data. Clients
 * ask for it like for any FHIR server, with `resource=<issuer>/fhir` (RFC 8707).
 */

/** The resource types served at `<issuer>/fhir` (Provenance: of Consents). */
export const OWN_API_RESOURCE_TYPES: ReadonlySet<string> = new Set(['Consent', 'Provenance', 'AuditEvent']);

/** The audience of tokens for this server's own FHIR APIs. */
export function ownApiAudience(issuer: string): string {
  return `${normaliseBase(issuer)}/fhir`;
}

export function isOwnApi(issuer: string, resource: string | undefined): boolean {
  return resource !== undefined && normaliseBase(resource) === ownApiAudience(issuer);
}

/** A resource scope naming one of the own API's types (not `*`: a data wildcard never opens it). */
export function isOwnApiScope(scope: string): boolean {
  const p = parseScope(scope);
  return p.kind === 'resource' && OWN_API_RESOURCE_TYPES.has(p.resourceType);
}

/**
 * What a token for the own API may carry: its resource scopes and the non-resource ones (openid,
 * launch context…), never an administrative one (admin-apis.ts: those have their own audiences).
 */
export function ownApiScopes(scopes: readonly string[]): string[] {
  return scopes.filter((s) => !isAdminScope(s) && (parseScope(s).kind !== 'resource' || isOwnApiScope(s)));
}
