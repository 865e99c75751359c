import { purposeCoding } from '../../../domain/hcs/vocabulary.js';
import { parseScope, type Permission, type ResourceScope } from '../../../domain/scopes/scope-syntax.js';

/**
 * Scopes as sentences a patient or clinician can judge on the consent page ("Read and search your
 * Observation records (lab results, vital signs and other measurements)"). v1 and v2 scopes with
 * the same meaning read the same (patient/Observation.read = patient/Observation.rs).
 */

export interface ScopeReader {
  /** The user is the patient whose record this is: "your records". */
  self: boolean;
  /** The patient in context, for "Pat Jones's records". */
  patientName?: string;
}

const VERBS: Readonly<Record<Permission, string>> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

const TYPE_HINTS: Readonly<Record<string, string>> = {
  AllergyIntolerance: 'allergies',
  CarePlan: 'care plans',
  CareTeam: 'care teams',
  Condition: 'problems and diagnoses',
  Coverage: 'insurance',
  Device: 'implants and devices',
  DiagnosticReport: 'test and imaging reports',
  DocumentReference: 'documents and clinical notes',
  Encounter: 'visits and admissions',
  Goal: 'health goals',
  Immunization: 'vaccinations',
  Location: 'places of care',
  Medication: 'medicines',
  MedicationDispense: 'dispensed medicines',
  MedicationRequest: 'prescriptions',
  MedicationStatement: 'medicines taken',
  Observation: 'lab results, vital signs and other measurements',
  Organization: 'care providers',
  Patient: 'demographics: name, birth date, contact details',
  Practitioner: 'clinicians',
  PractitionerRole: 'clinicians and their roles',
  Procedure: 'procedures and operations',
  Provenance: 'where the data came from',
  QuestionnaireResponse: 'questionnaire answers',
  RelatedPerson: 'family members and caregivers',
  ServiceRequest: 'orders and referrals',
};

/** Codes of the usual category code systems (observation-category, condition-category, US Core). */
const CATEGORY_LABELS: Readonly<Record<string, string>> = {
  laboratory: 'laboratory results',
  'vital-signs': 'vital signs',
  'social-history': 'social history',
  imaging: 'imaging',
  survey: 'surveys and questionnaires',
  exam: 'examination findings',
  therapy: 'therapy',
  activity: 'activity',
  procedure: 'procedure results',
  'problem-list-item': 'the problem list',
  'encounter-diagnosis': 'diagnoses made during visits',
  'health-concern': 'health concerns',
  'clinical-note': 'clinical notes',
  sdoh: 'social needs (social determinants of health)',
  'clinical-test': 'clinical tests',
};

const IDENTITY: Readonly<Record<string, string>> = {
  openid: 'Confirm who you are when you sign in to it',
  fhirUser: 'Know which user record is yours',
  profile: 'See your name and user name',
  launch: 'Receive the patient and context the EHR opened it with',
  'launch/patient': 'Know which patient record is open',
  'launch/encounter': 'Know which visit (encounter) is open',
  offline_access: 'Keep access while you are away',
  online_access: 'Keep access while you are signed in',
};

/** Scopes the launch cannot work without; shown on the consent page but not offered as choices. */
const REQUIRED = new Set(['openid', 'fhirUser', 'launch', 'launch/patient', 'launch/encounter']);

export function isRequiredScope(scope: string): boolean {
  const parsed = parseScope(scope);
  return REQUIRED.has(scope) || (parsed.kind === 'context' && parsed.name.startsWith('launch/'));
}

function sentenceList(words: string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function whose(scope: ResourceScope, reader: ScopeReader): string {
  if (scope.context === 'patient') return reader.self ? 'your' : reader.patientName ? `${reader.patientName}’s` : 'the patient’s';
  return '';
}

function filterText(scope: ResourceScope): string {
  if (!scope.query) return '';
  const parts = scope.query.pairs.map(([name, value]) => {
    const code = value.includes('|') ? value.slice(value.lastIndexOf('|') + 1) : value;
    if (name === 'category') return `in the category “${CATEGORY_LABELS[code] ?? code}”`;
    return `where ${name} is “${code}”`;
  });
  return `, only those ${sentenceList(parts)}`;
}

function describeResource(scope: ResourceScope, reader: ScopeReader): string {
  const verbs = capitalise(
    sentenceList(['c', 'r', 'u', 'd', 's'].filter((p) => scope.permissions.has(p as Permission)).map((p) => VERBS[p as Permission])),
  );
  const owner = whose(scope, reader);
  const hint = TYPE_HINTS[scope.resourceType];
  let what: string;
  if (scope.resourceType === '*') what = scope.context === 'patient' ? `all of ${owner} records` : 'all records';
  else what = `${owner ? `${owner} ` : ''}${scope.resourceType} records${hint ? ` (${hint})` : ''}`;
  const reach = scope.context === 'user' ? ' that you may see' : scope.context === 'system' ? ' on the whole server' : '';
  return `${verbs} ${what}${reach}${filterText(scope)}`;
}

export function describeScope(raw: string, reader: ScopeReader): string {
  const parsed = parseScope(raw);
  switch (parsed.kind) {
    case 'resource':
      return describeResource(parsed, reader);
    case 'context':
      if (IDENTITY[parsed.name]) return IDENTITY[parsed.name]!;
      return `Know which ${parsed.name.slice('launch/'.length)} record is open`;
    default:
      return `Use the permission “${raw}”`;
  }
}

/** v3-PurposeOfUse codes as the end of "The app asks for access …". */
const PURPOSES: Readonly<Record<string, string>> = {
  PATRQT: 'at the patient’s own request',
  FAMRQT: 'at the request of a family member',
  PWATRNY: 'under a power of attorney',
  SUPNWK: 'for the patient’s support network',
  TREAT: 'for treatment',
  ETREAT: 'for emergency treatment',
  COC: 'to coordinate care',
  CAREMGT: 'for care management',
  HPAYMT: 'to pay for health care',
  CLMATTCH: 'to support an insurance claim',
  COVERAGE: 'to check insurance coverage',
  HOPERAT: 'for the running of health services',
  HRESCH: 'for health research',
  PUBHLTH: 'for public health',
  HMARKT: 'for health care marketing',
  BTG: 'for emergency access (“break the glass”)',
  ERTREAT: 'for emergency room treatment',
  HTEST: 'with test data only',
};

/** A purpose of use in plain words; other codes by their HL7 name. */
export function describePurpose(code: string): string {
  const known = PURPOSES[code];
  if (known) return known;
  const display = purposeCoding(code).display;
  return display ? `for ${display} (${code})` : `for the purpose coded “${code}”`;
}
