/**
 * FHIR references as users, launches and the directory write them: `Patient/123`, `123`, or an
 * absolute URL ending in `Type/id`.
 */

import type { UserAccess, UserKind } from '../../launch/user-scopes.js';
import type { Clearance } from '../../../domain/hcs/vocabulary.js';
import type { Coding } from '../../../domain/fhir/types.js';

export interface FhirReference {
  resourceType: string;
  id: string;
}

/** FHIR logical ids: letters, digits, "-" and ".", at most 64 (FHIR R4 §2.1.3.4). */
export const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

/** The `Type/id` at the end of a reference or URL, ignoring any `_history/<v>` suffix. */
export function fhirReferenceOf(reference: string | undefined): FhirReference | undefined {
  if (!reference) return undefined;
  const path = URL.canParse(reference) ? new URL(reference).pathname : reference;
  const parts = path.split('/').filter(Boolean);
  const history = parts.indexOf('_history');
  const trimmed = history >= 0 ? parts.slice(0, history) : parts;
  const id = trimmed.at(-1);
  const resourceType = trimmed.at(-2);
  if (!id || !resourceType || !/^[A-Z][A-Za-z]+$/.test(resourceType) || !FHIR_ID.test(id)) return undefined;
  return { resourceType, id };
}

/** The patient's own id for a patient user. */
export function ownPatientOf(fhirUser: string | undefined): string | undefined {
  const ref = fhirReferenceOf(fhirUser);
  return ref?.resourceType === 'Patient' ? ref.id : undefined;
}

/**
 * A Patient id from how the directory and launch contexts write them: `123` or `Patient/123`.
 * Anything else (another resource type, a malformed id) is not a patient id.
 */
export function patientIdOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (FHIR_ID.test(value)) return value;
  const ref = fhirReferenceOf(value);
  return ref?.resourceType === 'Patient' ? ref.id : undefined;
}

export interface ProxyPatient {
  id: string;
  display: string;
}

/** What the interaction pages need to know about the signed-in user. */
export interface UserContext {
  /** Absolute fhirUser URL, as apps and tokens see it. */
  fhirUser?: string;
  kind: UserKind;
  /** What the account opens (user-scopes.ts): staff, its own record, the patients it acts for, or nothing. */
  access: UserAccess;
  /** A patient user's own Patient id. */
  ownPatient?: string;
  /** The patients a caregiver may act for (empty for everyone else). */
  proxies: ProxyPatient[];
  displayName?: string;
  /** The user's confidentiality clearance: data labelled above it stays out of their consents. */
  clearance?: Clearance;
  /** What the HCS decision needs (domain/hcs/decision.ts); absent for unknown users. */
  security?: UserSecurity;
}

/** The user's healthcare-security attributes from the directory (SCIM). */
export interface UserSecurity {
  /** SCIM `purposesOfUse`, when the record lists them. */
  purposes?: string[];
  /** Own roles and those inherited from groups. */
  roles: Coding[];
  breakTheGlass: boolean;
  testAccount: boolean;
  organization?: string;
  organizationId?: string;
  npi?: string;
}
