import type { Coding } from '../../domain/fhir/types.js';
import { CONFIDENTIALITY, type Clearance } from '../../domain/hcs/vocabulary.js';
import { confidentialityCoding } from '../../domain/hcs/vocabulary.js';

/** Code systems of the Consent and Provenance this server writes (HL7 THO / FHIR R4 URLs). */
export const SYSTEMS = {
  consentScope: 'http://terminology.hl7.org/CodeSystem/consentscope',
  loinc: 'http://loinc.org',
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  consentAction: 'http://terminology.hl7.org/CodeSystem/consentaction',
  resourceTypes: 'http://hl7.org/fhir/resource-types',
  confidentiality: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
  dataOperation: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation',
  provenanceParticipant: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
} as const;

export const PATIENT_PRIVACY: Coding = { system: SYSTEMS.consentScope, code: 'patient-privacy', display: 'Privacy Consent' };
export const PATIENT_CONSENT: Coding = { system: SYSTEMS.loinc, code: '59284-0', display: 'Patient Consent' };
export const INFORMATION_DISCLOSURE: Coding = { system: SYSTEMS.actCode, code: 'IDSCL', display: 'information disclosure' };
export const OPT_IN: Coding = { system: SYSTEMS.actCode, code: 'OPTIN', display: 'opt-in' };
export const OPT_OUT: Coding = { system: SYSTEMS.actCode, code: 'OPTOUT', display: 'opt-out' };
export const INFORMATION_RECIPIENT: Coding = { system: SYSTEMS.participationType, code: 'IRCP', display: 'information recipient' };
export const ACCESS: Coding = { system: SYSTEMS.consentAction, code: 'access', display: 'Access' };
export const CORRECT: Coding = { system: SYSTEMS.consentAction, code: 'correct', display: 'Access and Correct' };
export const AUTHOR: Coding = { system: SYSTEMS.provenanceParticipant, code: 'author', display: 'Author' };

export const DATA_OPERATIONS = {
  CREATE: { system: SYSTEMS.dataOperation, code: 'CREATE', display: 'create' },
  UPDATE: { system: SYSTEMS.dataOperation, code: 'UPDATE', display: 'revise' },
} as const satisfies Record<string, Coding>;

/** Purposes and confidentiality come from the one HCS vocabulary (domain/hcs/vocabulary.ts). */

/** The confidentiality labels above a clearance (N → R, V), as Codings. */
export function labelsAbove(clearance: Clearance): Coding[] {
  return CONFIDENTIALITY.slice(CONFIDENTIALITY.indexOf(clearance) + 1).map(confidentialityCoding);
}
