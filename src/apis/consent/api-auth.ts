import type { FoundToken } from '../../oauth/introspection/token-lookup.js';
import type { Permission } from '../../domain/scopes/scope-syntax.js';
import type { Reference } from '../../domain/fhir/types.js';
import type { FhirError } from '../../domain/fhir/errors.js';
import { bearerAccessToken, insufficientScope, resourcePermissions } from '../fhir-api.js';
import { type ApiTokens } from '../../oauth/introspection/token-lookup.js';
import { clientReference, patientIdOf, relativeReference } from '../../domain/fhir/references.js';

/**
 * Who may use the Consent API, from the bearer token:
 *  - an administrator: a client-credentials token with `system/Consent.<perms>`, for every Consent;
 *  - a patient (or whoever acts for one): a user token with `patient/Consent.<perms>`, for the
 *    Consents of the token's `patient` only.
 * Read needs `r`, search `s`, withdrawal `u` or `d`. Only scopes naming `Consent` count: a
 * `patient/*.rs` data scope must not tell an app which other apps the patient uses, nor a bulk
 * client's `system/*.rs` make it a consent administrator. Scopes with a query constraint do not
 * count either (the API does not evaluate them).
 */

export type ConsentAction = 'read' | 'search' | 'withdraw';

/** The resource types the Consent API serves: Consents and the Provenance of their changes. */
export type ConsentApiResource = 'Consent' | 'Provenance';

export interface ConsentCaller {
  kind: 'admin' | 'patient';
  clientId: string;
  /** Set for a patient caller: the only patient whose Consents it may see or withdraw. */
  patientId?: string;
  /** Who to name in the Provenance of a withdrawal. */
  who: Reference;
  may: ReadonlySet<ConsentAction>;
}

const REALM = 'consent' as const;
/** R4 Provenance.agent.who target types. */
const AGENT_TYPES = new Set(['Practitioner', 'PractitionerRole', 'RelatedPerson', 'Patient', 'Device', 'Organization']);

function permissionsFor(scopes: string[], context: 'patient' | 'system', resourceType: ConsentApiResource): Set<Permission> {
  return resourcePermissions(scopes, context, resourceType);
}

function actionsOf(permissions: ReadonlySet<Permission>): Set<ConsentAction> {
  const may = new Set<ConsentAction>();
  if (permissions.has('r')) may.add('read');
  if (permissions.has('s')) may.add('search');
  if (permissions.has('u') || permissions.has('d')) may.add('withdraw');
  return may;
}

function forbidden(description: string): FhirError {
  return insufficientScope(REALM, description);
}

function patientAgent(token: FoundToken, patientId: string): Reference {
  const fhirUser = typeof token.extra.fhirUser === 'string' ? relativeReference(token.extra.fhirUser) : undefined;
  return fhirUser && AGENT_TYPES.has(fhirUser.type) ? { reference: fhirUser.reference } : { reference: `Patient/${patientId}` };
}

/**
 * The caller of the Consent API, or (with `resourceType` Provenance) of the Provenance of Consents,
 * which follows the same rules with Provenance scopes.
 */
export async function authenticateConsentCaller(
  authorization: string,
  lookup: ApiTokens,
  issuer: string,
  resourceType: ConsentApiResource = 'Consent',
): Promise<ConsentCaller> {
  const token = await bearerAccessToken(authorization, lookup, REALM);
  const scopes = (token.scope ?? '').split(' ').filter(Boolean);
  if (token.kind === 'ClientCredentials') {
    const may = actionsOf(permissionsFor(scopes, 'system', resourceType));
    if (!may.size) throw forbidden(`the token carries no system/${resourceType} scope`);
    return { kind: 'admin', clientId: token.clientId, who: clientReference(issuer, token.clientId), may };
  }
  const may = actionsOf(permissionsFor(scopes, 'patient', resourceType));
  if (!may.size) throw forbidden(`the token carries no patient/${resourceType} scope`);
  const patientId = typeof token.extra.patient === 'string' ? patientIdOf(token.extra.patient) : undefined;
  if (!patientId) throw forbidden('the token has no patient context');
  return { kind: 'patient', clientId: token.clientId, patientId, who: patientAgent(token, patientId), may };
}

export function requireAction(caller: ConsentCaller, action: ConsentAction): void {
  if (!caller.may.has(action)) {
    const letters = action === 'read' ? 'r' : action === 'search' ? 's' : 'u or d';
    throw forbidden(`the token's Consent scope does not permit ${action} (needs ${letters})`);
  }
}

/** A patient caller may only act on its own patient's Consents. */
export function requirePatient(caller: ConsentCaller, patientId: string): void {
  if (caller.kind === 'patient' && caller.patientId !== patientId) throw forbidden("the Consent is not the token's patient's");
}

/** A patient's search is about their own record: naming another patient is 403, naming none means theirs. */
export function confineToOwnPatient(caller: ConsentCaller, search: { patient?: string | undefined }): void {
  if (caller.kind !== 'patient') return;
  if (search.patient !== undefined) requirePatient(caller, search.patient);
  search.patient = caller.patientId;
}
