import { createTestApp, type TestApp } from '../../../support/test-app.js';
import { introspect, registerResourceServer } from '../../../support/fixtures.js';
import {
  PATIENT_SEARCH_CLIENT_ID,
  ServiceCredential,
  ensurePatientSearchClient,
} from '../../../../src/smart/interaction/fhir-search/service-credential.js';

const FHIR = 'http://localhost:8080/fhir';
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: FHIR });
  await registerResourceServer(t);
});
afterAll(() => t.close());

test('the internal client is a backend service with only the picker scopes, registered once', async () => {
  await ensurePatientSearchClient(t.registry, t.config.clientAuthSigningAlgs);
  const first = await t.registry.get(PATIENT_SEARCH_CLIENT_ID);
  expect(first).toMatchObject({
    smart_client_kind: 'backend_service',
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['client_credentials'],
    smart_scopes: ['system/Patient.rs', 'system/Encounter.rs'],
  });
  const keys = (first!.jwks as { keys: Array<Record<string, unknown>> }).keys;
  expect(keys).toHaveLength(1);
  expect(keys[0]).not.toHaveProperty('d');
  await ensurePatientSearchClient(t.registry, t.config.clientAuthSigningAlgs);
  expect(await t.registry.get(PATIENT_SEARCH_CLIENT_ID)).toEqual(first);
  // Someone widening it is undone at the next start.
  await t.registry.update(PATIENT_SEARCH_CLIENT_ID, { smart_scopes: ['system/*.cruds'] });
  await ensurePatientSearchClient(t.registry, t.config.clientAuthSigningAlgs);
  expect((await t.registry.get(PATIENT_SEARCH_CLIENT_ID))!.smart_scopes).toEqual(['system/Patient.rs', 'system/Encounter.rs']);
});

test('mints a token for the FHIR server, reuses it while fresh and replaces it before it expires', async () => {
  let now = Date.now();
  let registrations = 0;
  await t.registry.remove(PATIENT_SEARCH_CLIENT_ID);
  const credential = new ServiceCredential({
    provider: t.app,
    ensureClient: async () => {
      registrations += 1;
      await ensurePatientSearchClient(t.registry, t.config.clientAuthSigningAlgs);
    },
    ttlSeconds: 300,
    now: () => now,
  });
  const server = t.config.fhirServers[0]!;
  const [a, b] = await Promise.all([credential.bearer(server), credential.bearer(server)]);
  expect(a).toBe(b);
  expect(registrations).toBe(1);
  const info = await introspect(t, a);
  expect(info.body).toMatchObject({
    active: true,
    client_id: PATIENT_SEARCH_CLIENT_ID,
    sub: PATIENT_SEARCH_CLIENT_ID,
    aud: FHIR,
    scope: 'system/Patient.rs system/Encounter.rs',
  });
  expect(info.body.exp - info.body.iat).toBe(300);

  now += 200_000;
  expect(await credential.bearer(server)).toBe(a);
  now += 50_000; // within a minute of expiry
  const c = await credential.bearer(server);
  expect(c).not.toBe(a);
  credential.invalidate(server);
  expect(await credential.bearer(server)).not.toBe(c);
});
