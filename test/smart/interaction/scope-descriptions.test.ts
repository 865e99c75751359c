import { describeScope, isRequiredScope } from '../../../src/smart/interaction/consent/scope-descriptions.js';
import { fhirReferenceOf, patientIdOf } from '../../../src/smart/interaction/facts/fhir-user.js';
import { PICKS_KEY, picksOf, withPicks } from '../../../src/smart/interaction/facts/picks.js';

const self = { self: true };

test.each([
  ['patient/Observation.rs', self, 'Read and search your Observation records (lab results, vital signs and other measurements)'],
  ['patient/Observation.read', self, 'Read and search your Observation records (lab results, vital signs and other measurements)'],
  ['patient/Condition.cruds', self, 'Create, read, update, delete and search your Condition records (problems and diagnoses)'],
  ['patient/Condition.write', self, 'Create, update and delete your Condition records (problems and diagnoses)'],
  ['patient/*.rs', { self: false, patientName: 'Sam Jones' }, 'Read and search all of Sam Jones’s records'],
  ['patient/*.read', { self: false }, 'Read and search all of the patient’s records'],
  ['user/Patient.r', self, 'Read Patient records (demographics: name, birth date, contact details) that you may see'],
  ['user/*.rs', self, 'Read and search all records that you may see'],
  [
    'patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs',
    self,
    'Read and search your Observation records (lab results, vital signs and other measurements), only those in the category “vital signs”',
  ],
  [
    'patient/Observation.rs?code=http://loinc.org|1234-5',
    self,
    'Read and search your Observation records (lab results, vital signs and other measurements), only those where code is “1234-5”',
  ],
  ['patient/Zebra.rs', self, 'Read and search your Zebra records'],
  ['offline_access', self, 'Keep access while you are away'],
  ['online_access', self, 'Keep access while you are signed in'],
  ['openid', self, 'Confirm who you are when you sign in to it'],
  ['launch/imagingstudy', self, 'Know which imagingstudy record is open'],
  ['__dark_mode', self, 'Use the permission “__dark_mode”'],
])('%s reads as a sentence', (scope, reader, sentence) => {
  expect(describeScope(scope, reader)).toBe(sentence);
});

test('identity and launch context are required; data and refresh are choices', () => {
  for (const s of ['openid', 'fhirUser', 'launch', 'launch/patient', 'launch/encounter', 'launch/imagingstudy?role=https://x.example/r'])
    expect(isRequiredScope(s)).toBe(true);
  for (const s of ['profile', 'offline_access', 'online_access', 'patient/*.rs', 'user/Observation.read'])
    expect(isRequiredScope(s)).toBe(false);
});

test('FHIR references and patient ids in the forms the directory and launches use', () => {
  expect(fhirReferenceOf('Patient/123')).toEqual({ resourceType: 'Patient', id: '123' });
  expect(fhirReferenceOf('https://fhir.example.org/r4/Practitioner/dr-1/_history/3')).toEqual({ resourceType: 'Practitioner', id: 'dr-1' });
  expect(fhirReferenceOf('Patient')).toBeUndefined();
  expect(patientIdOf('123')).toBe('123');
  expect(patientIdOf('Patient/123')).toBe('123');
  expect(patientIdOf('Encounter/123')).toBeUndefined();
  expect(patientIdOf('a b')).toBeUndefined();
});

test('each step adds its pick to the earlier ones, under one key', () => {
  const afterPatient = withPicks({ login: { accountId: 'u' } }, { patient: 'p', patientDisplay: 'P' });
  expect(afterPatient).toEqual({ [PICKS_KEY]: { patient: 'p', patientDisplay: 'P' } });
  const afterEncounter = withPicks({ login: { accountId: 'u' }, ...afterPatient }, { encounter: 'e', encounterDecided: true });
  expect(picksOf(afterEncounter)).toEqual({ patient: 'p', patientDisplay: 'P', encounter: 'e', encounterDecided: true });
  expect(picksOf({ [PICKS_KEY]: { patient: 42, encounterDecided: 'yes' } })).toEqual({});
});
