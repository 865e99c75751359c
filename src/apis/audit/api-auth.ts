import type { FhirError } from '../../domain/fhir/errors.js';
import { bearerAccessToken, insufficientScope, resourcePermissions } from '../fhir-api.js';
import { type ApiTokens } from '../../oauth/introspection/token-lookup.js';
import { patientIdOf } from '../../domain/fhir/references.js';

/**
 * Who may read the audit trail, from the bearer token:
 *  - a security officer: a client-credentials token with `system/AuditEvent.rs` (SMART v2) or
 *    `system/AuditEvent.read` (v1); read needs `r`, search and export `s`;
 *  - a patient (or whoever acts for one): a user token with a patient in context and
 *    `patient/AuditEvent.rs`/`.read`, for the disclosure view of that patient's record only.
 * Only scopes naming AuditEvent count (not `system/*.rs`: a bulk-data client is not a security
 * officer), and never scopes with a query constraint (not evaluated here).
 */

export type AuditAction = 'read' | 'search';

export type AuditCaller =
  | { kind: 'officer'; clientId: string; may: ReadonlySet<AuditAction> }
  | { kind: 'patient'; clientId: string; patient: string; accountId?: string; may: ReadonlySet<AuditAction> };

const REALM = 'audit' as const;

function actions(scopes: string[], context: 'patient' | 'system'): Set<AuditAction> {
  const permissions = resourcePermissions(scopes, context, 'AuditEvent');
  const may = new Set<AuditAction>();
  if (permissions.has('r')) may.add('read');
  if (permissions.has('s')) may.add('search');
  return may;
}

export function forbidden(description: string): FhirError {
  return insufficientScope(REALM, description);
}

export async function authenticateAuditCaller(authorization: string, lookup: ApiTokens): Promise<AuditCaller> {
  const token = await bearerAccessToken(authorization, lookup, REALM);
  const scopes = (token.scope ?? '').split(' ').filter(Boolean);
  if (token.kind === 'ClientCredentials') {
    const may = actions(scopes, 'system');
    if (!may.size) throw forbidden('the token carries no system/AuditEvent scope');
    return { kind: 'officer', clientId: token.clientId, may };
  }
  const may = actions(scopes, 'patient');
  if (!may.size) throw forbidden('the token carries no patient/AuditEvent scope');
  const patientId = typeof token.extra.patient === 'string' ? patientIdOf(token.extra.patient) : undefined;
  if (!patientId) throw forbidden('the token has no patient context');
  return {
    kind: 'patient',
    clientId: token.clientId,
    patient: `Patient/${patientId}`,
    ...(token.accountId ? { accountId: token.accountId } : {}),
    may,
  };
}

export function requireAuditAction(caller: AuditCaller, action: AuditAction): void {
  if (!caller.may.has(action))
    throw forbidden(`the token's AuditEvent scope does not permit ${action} (needs ${action === 'read' ? 'r' : 's'})`);
}
