import {
  FhirDirectory,
  FhirLookupError,
  encounterSummary,
  onBase,
  patientSummary,
} from '../../../../src/smart/interaction/fhir-search/fhir-directory.js';
import type { FhirServer } from '../../../../src/platform/config/schema.js';
import { startFakeFhir, type FakeFhir } from '../fake-fhir.js';

let fake: FakeFhir;
let server: FhirServer;
let minted: number;
let invalidated: number;

const credential = {
  bearer: async () => `token-${minted}`,
  invalidate: () => {
    invalidated += 1;
    minted += 1;
  },
};

beforeAll(async () => {
  fake = await startFakeFhir();
  server = { base: fake.base, accessTokenFormat: 'opaque' };
  fake.patients.push({ id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23', mrn: 'M1' });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.mode = 'ok';
  fake.rejected.clear();
  fake.requests.length = 0;
  minted = 1;
  invalidated = 0;
});

async function lookupError(p: Promise<unknown>): Promise<FhirLookupError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FhirLookupError);
  return err as FhirLookupError;
}

test('searches with the bearer token and summarises the Bundle', async () => {
  const directory = new FhirDirectory({ credential });
  const page = await directory.searchPatients(server, { name: 'pat' });
  expect(page).toEqual({ items: [{ id: 'pat-1', name: 'Pat Jones', birthDate: '1980-04-23', identifiers: ['M1 (MRN)'] }] });
  expect(fake.requests).toEqual([{ path: '/fhir/Patient?name=pat&_count=10', authorization: 'Bearer token-1' }]);
});

test('a token the FHIR server refuses is replaced once, then the lookup fails readably', async () => {
  const directory = new FhirDirectory({ credential });
  fake.rejected.add('Bearer token-1');
  expect((await directory.readPatient(server, 'pat-1'))?.name).toBe('Pat Jones');
  expect(invalidated).toBe(1);
  fake.rejected.add('Bearer token-2').add('Bearer token-3');
  const err = await lookupError(directory.readPatient(server, 'pat-1'));
  expect(err.userMessage).toContain('not answering');
  expect(invalidated).toBe(3);
});

test('a server that does not answer in time is a lookup error, not a hang', async () => {
  fake.mode = 'hang';
  const started = Date.now();
  await lookupError(new FhirDirectory({ credential, timeoutMs: 200 }).searchPatients(server, { name: 'x' }));
  expect(Date.now() - started).toBeLessThan(2000);
});

test('oversized and non-JSON answers are lookup errors', async () => {
  await lookupError(new FhirDirectory({ credential, maxBytes: 64 }).searchPatients(server, { name: 'pat' }));
  fake.mode = 'garbage';
  await lookupError(new FhirDirectory({ credential }).searchPatients(server, { name: 'pat' }));
});

test('a read of an unknown id is undefined; ids that are not FHIR ids are never sent', async () => {
  const directory = new FhirDirectory({ credential });
  expect(await directory.readPatient(server, 'nobody')).toBeUndefined();
  expect(await directory.readPatient(server, '../Observation/1')).toBeUndefined();
  expect(fake.requests.map((r) => r.path)).toEqual(['/fhir/Patient/nobody']);
});

test('paging refuses links off the base', async () => {
  const directory = new FhirDirectory({ credential });
  await lookupError(directory.patientsAt(server, 'https://elsewhere.example.org/fhir/Patient?page=2'));
  await lookupError(directory.patientsAt(server, `${fake.base}evil/Patient`));
  expect(fake.requests).toEqual([]);
});

test('onBase accepts only the base origin and path', () => {
  const base = 'https://fhir.example.org/r4';
  expect(onBase('https://fhir.example.org/r4/Patient?_page=2', base)).toBe(true);
  expect(onBase('https://fhir.example.org/r4', base)).toBe(true);
  expect(onBase('https://fhir.example.org/r40/Patient', base)).toBe(false);
  expect(onBase('https://fhir.example.org/other/Patient', base)).toBe(false);
  expect(onBase('http://fhir.example.org/r4/Patient', base)).toBe(false);
  expect(onBase('https://user:pw@fhir.example.org/r4/Patient', base)).toBe(false);
  expect(onBase('not a url', base)).toBe(false);
});

test('summaries fall back sensibly and ignore resources of other types', () => {
  expect(patientSummary({ resourceType: 'Patient', id: 'p', name: [{ text: 'Dr. Who' }] })).toEqual({
    id: 'p',
    name: 'Dr. Who',
    identifiers: [],
  });
  expect(patientSummary({ resourceType: 'Patient', id: 'p' })?.name).toBe('Patient p');
  expect(patientSummary({ resourceType: 'Observation', id: 'p' })).toBeUndefined();
  expect(patientSummary({ resourceType: 'Patient', id: 'bad id' })).toBeUndefined();
  expect(
    encounterSummary({
      resourceType: 'Encounter',
      id: 'e',
      class: { code: 'IMP' },
      period: { start: '2024-02-03T10:00:00Z' },
      subject: { reference: 'Patient/p-1' },
    }),
  ).toEqual({
    id: 'e',
    description: 'IMP',
    date: '2024-02-03',
    patient: 'p-1',
  });
});
