import type { ConsentStore, StoredConsent } from '../../records/consent/consent-store.js';
import { relativeReference } from '../../domain/fhir/references.js';
import type { UserContext } from '../../smart/interaction/facts/fhir-user.js';

/**
 * Which Consents a signed-in person may see and withdraw on the management page: those about their
 * own record, those about the patients they act for (a caregiver's proxy patients), and those they
 * decided themselves (a clinician who allowed an app during an EHR launch). Only permits still in
 * force are listed: active and not past their end.
 */

/** Most Consents read per patient and per decider; a person with more sees the newest. */
export const LIST_LIMIT = 100;

export interface Manager {
  /** `Type/id` of the user's FHIR record, when it is one. */
  performer?: string;
  /** Patient ids whose Consents the user may manage. */
  patients: string[];
}

export function managerOf(user: UserContext): Manager {
  const performer = user.fhirUser ? relativeReference(user.fhirUser)?.reference : undefined;
  const patients = [...new Set([...(user.ownPatient ? [user.ownPatient] : []), ...user.proxies.map((p) => p.id)])];
  return { ...(performer ? { performer } : {}), patients };
}

export function mayManage(manager: Manager, consent: StoredConsent): boolean {
  return manager.patients.includes(consent.patientId) || (manager.performer !== undefined && consent.performer === manager.performer);
}

export function inForce(consent: StoredConsent, now: number): boolean {
  return consent.status === 'active' && consent.resource.provision?.type === 'permit' && consent.end !== undefined && consent.end > now;
}

export async function consentsToManage(
  store: Pick<ConsentStore, 'search' | 'decidedBy'>,
  manager: Manager,
  now: number = Date.now(),
): Promise<StoredConsent[]> {
  const [byPatient, decided] = await Promise.all([
    Promise.all(manager.patients.map((patient) => store.search({ patient, status: ['active'], count: LIST_LIMIT, offset: 0 }))),
    manager.performer ? store.decidedBy(manager.performer, LIST_LIMIT) : Promise.resolve([]),
  ]);
  const found = new Map<string, StoredConsent>();
  for (const c of [...byPatient.flatMap((page) => page.consents), ...decided]) {
    if (inForce(c, now) && mayManage(manager, c)) found.set(c.resource.id, c);
  }
  return [...found.values()].sort((a, b) => Date.parse(b.resource.dateTime) - Date.parse(a.resource.dateTime));
}
