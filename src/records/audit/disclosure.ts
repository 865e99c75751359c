import type { AuditEvent } from './audit-event.js';
import { patientOfReference } from './indexes.js';

/**
 * Which events are disclosures of a patient's data: what the patient's accounting of disclosures
 * ("Who accessed my record") lists, and what retention keeps for
 * `audit.disclosureRetentionDays`.
 *
 * An event is a disclosure when it succeeded (outcome 0), names a patient as an entity in the
 * Patient object role (object-role code 1, `what` a Patient reference), and is one of the events
 * by which data about that patient became available to someone: an access token issued or
 * refreshed with that patient in context (the app can now read the record), an introspection
 * answered `active` for such a token (a resource server is about to release data), or a
 * break-the-glass access. Builders mark a disclosure by using one of DISCLOSURE_SUBTYPES together
 * with the Patient entity; nothing else is needed.
 */

export const LOCAL_SUBTYPE_SYSTEM = 'https://smart-authz.dev/fhir/CodeSystem/audit-event-subtype';

export const DISCLOSURE_SUBTYPES: ReadonlySet<string> = new Set([
  'token-issued',
  'token-refreshed',
  'token-introspected',
  'break-the-glass',
]);

const OBJECT_ROLE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/object-role';

/** The patients (`Patient/<id>`) whose data this event discloses; empty when it is no disclosure. */
export function disclosedPatients(event: AuditEvent): string[] {
  if (event.outcome !== '0') return [];
  if (!(event.subtype ?? []).some((c) => c.system === LOCAL_SUBTYPE_SYSTEM && c.code !== undefined && DISCLOSURE_SUBTYPES.has(c.code)))
    return [];
  const patients = new Set<string>();
  for (const e of event.entity ?? []) {
    if (e.role?.code !== '1' || (e.role.system !== undefined && e.role.system !== OBJECT_ROLE_SYSTEM)) continue;
    const p = patientOfReference(e.what?.reference);
    if (p) patients.add(p);
  }
  return [...patients];
}

export function isDisclosure(event: AuditEvent): boolean {
  return disclosedPatients(event).length > 0;
}
