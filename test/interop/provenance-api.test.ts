import { consentServiceOf } from '../support/smart-flow.js';
import type { ConsentService } from '../../src/records/consent/consent-service.js';
import { CORE_USER_SCHEMA } from '../../src/records/directory/model.js';
import { createUserStore } from '../../src/records/directory/user-store.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { registerSmartApp } from '../support/fixtures.js';

/**
 * Each Consent creation and withdrawal writes a Provenance; /fhir/Provenance serves them (read,
 * search by target, patient and recorded) and Consent search includes them with
 * `_revinclude=Provenance:target`, under the Consent API's rules with Provenance scopes.
 */

const TOKEN_URL = 'http://localhost:3000/token';
const ISSUER = 'http://localhost:3000';
/** The Consent and Provenance APIs' own audience (oauth/provider/own-api.ts): tokens for a FHIR server are refused there. */
const OWN_API = `${ISSUER}/fhir`;

let t: TestApp;
let consents: ConsentService;
let key: BackendKey;
let accountId: string;
let admin: string;
let consentOnlyAdmin: string;

async function backendToken(clientId: string, scope: string): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL), { scope, resource: OWN_API });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

/** A patient app's access token for `patient`, as the code exchange mints it. */
async function patientToken(patient: string, scope: string): Promise<string> {
  const client = (await t.app.Client.find('app'))!;
  const grant = new t.app.Grant({ accountId, clientId: 'app' });
  grant.addResourceScope(OWN_API, scope);
  const grantId = await grant.save();
  const accessToken = await new t.app.AccessToken({ accountId, client, grantId, scope, aud: OWN_API, gty: 'authorization_code' }).save();
  const stored = t.keyspace.model('AccessToken', accessToken);
  const payload = JSON.parse((await t.redis.hget(stored, 'payload'))!);
  payload.extra = { patient };
  await t.redis.hset(stored, 'payload', JSON.stringify(payload));
  return accessToken;
}

function get(path: string, token: string) {
  return t.request.get(path).set('Authorization', `Bearer ${token}`);
}

async function permit(patient: string): Promise<string> {
  const c = await consents.recordDecision({
    kind: 'permit',
    patientId: patient,
    performer: { reference: `Patient/${patient}` },
    clientId: 'app',
    clientName: 'The App',
    scopes: ['patient/*.rs'],
    periodSeconds: 3600,
  });
  return c.id;
}

let withdrawnId: string;
let activeId: string;
let otherPatientConsent: string;

beforeAll(async () => {
  t = await createTestApp();
  key = await backendKey('RS384');
  await registerBackend(t, 'prov-admin', [key], { smart_scopes: ['system/Consent.rs', 'system/Provenance.rs'] });
  await registerBackend(t, 'consent-admin', [key], { smart_scopes: ['system/Consent.rs'] });
  await registerSmartApp(t, { id: 'app', redirectUri: 'https://app.example.org/cb', scopes: ['patient/*.cruds'] });
  accountId = (await createUserStore(t.config, t.redis, t.keyspace).create({ schemas: [CORE_USER_SCHEMA], userName: 'prov-user' })).id;
  consents = consentServiceOf(t);
  admin = await backendToken('prov-admin', 'system/Consent.rs system/Provenance.rs');
  consentOnlyAdmin = await backendToken('consent-admin', 'system/Consent.rs');
  withdrawnId = await permit('pv-1');
  await new Promise((r) => setTimeout(r, 5));
  await consents.withdraw(withdrawnId, { reference: 'Patient/pv-1' });
  activeId = await permit('pv-1');
  otherPatientConsent = await permit('pv-2');
});
afterAll(() => t.close());

describe('read', () => {
  test('each Consent version’s Provenance is readable by the id it carries', async () => {
    const search = await get(`/fhir/Provenance?target=Consent/${withdrawnId}`, admin);
    expect(search.status).toBe(200);
    const ids = (JSON.parse(search.text).entry as Array<{ resource: { id: string } }>).map((e) => e.resource.id);
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      const res = await get(`/fhir/Provenance/${id}`, admin);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
      expect(JSON.parse(res.text)).toMatchObject({
        resourceType: 'Provenance',
        id,
        target: [{ reference: expect.stringMatching(new RegExp(`^Consent/${withdrawnId}/_history/\\d$`)) }],
      });
    }
  });

  test('an unknown id is 404 OperationOutcome', async () => {
    for (const id of [`${activeId}-9`, 'nothing-here', 'x']) {
      const res = await get(`/fhir/Provenance/${id}`, admin);
      expect([id, res.status]).toEqual([id, 404]);
      expect(JSON.parse(res.text).resourceType).toBe('OperationOutcome');
    }
  });

  test('a patient app reads its own patient’s Provenance, not another patient’s', async () => {
    const token = await patientToken('pv-1', 'patient/Provenance.rs');
    expect((await get(`/fhir/Provenance/${activeId}-1`, token)).status).toBe(200);
    const other = await get(`/fhir/Provenance/${otherPatientConsent}-1`, token);
    expect(other.status).toBe(403);
    expect(JSON.parse(other.text).resourceType).toBe('OperationOutcome');
  });
});

describe('search', () => {
  const ids = (text: string) => (JSON.parse(text).entry as Array<{ resource: { id: string } }>).map((e) => e.resource.id);

  test('by target: all versions, or the one version named; newest first', async () => {
    const all = await get(`/fhir/Provenance?target=Consent/${withdrawnId}`, admin);
    const bundle = JSON.parse(all.text);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 2 });
    expect(
      bundle.entry.map((e: { resource: { activity: { coding: Array<{ code: string }> } } }) => e.resource.activity.coding[0]!.code),
    ).toEqual(['UPDATE', 'CREATE']);
    expect(bundle.entry[0].fullUrl).toBe(`${ISSUER}/fhir/Provenance/${withdrawnId}-2`);
    expect(bundle.entry[0].search).toEqual({ mode: 'match' });
    expect(ids((await get(`/fhir/Provenance?target=Consent/${withdrawnId}/_history/1`, admin)).text)).toEqual([`${withdrawnId}-1`]);
    expect(ids((await get(`/fhir/Provenance?target=${ISSUER}/fhir/Consent/${withdrawnId}/_history/2`, admin)).text)).toEqual([
      `${withdrawnId}-2`,
    ]);
    expect(JSON.parse((await get('/fhir/Provenance?target=Patient/pv-1', admin)).text).total).toBe(0);
  });

  test('by patient and recorded', async () => {
    expect(JSON.parse((await get('/fhir/Provenance?patient=pv-1', admin)).text).total).toBe(3);
    expect(JSON.parse((await get('/fhir/Provenance?patient=Patient/pv-2', admin)).text).total).toBe(1);
    const today = new Date().toISOString().slice(0, 10);
    expect(JSON.parse((await get(`/fhir/Provenance?patient=pv-1&recorded=${today}`, admin)).text).total).toBe(3);
    expect(JSON.parse((await get('/fhir/Provenance?patient=pv-1&recorded=lt2020-01-01', admin)).text).total).toBe(0);
    const page = JSON.parse((await get('/fhir/Provenance?patient=pv-1&_count=2', admin)).text);
    expect(page.entry).toHaveLength(2);
    expect(page.link.find((l: { relation: string }) => l.relation === 'next').url).toBe(
      `${ISSUER}/fhir/Provenance?patient=pv-1&_count=2&_offset=2`,
    );
  });

  test('a patient app sees only its patient’s', async () => {
    const token = await patientToken('pv-1', 'patient/Provenance.rs');
    expect(JSON.parse((await get('/fhir/Provenance', token)).text).total).toBe(3);
    expect(JSON.parse((await get(`/fhir/Provenance?target=Consent/${otherPatientConsent}`, token)).text).total).toBe(0);
    expect((await get('/fhir/Provenance?patient=pv-2', token)).status).toBe(403);
  });

  test('bad parameters → 400 OperationOutcome', async () => {
    for (const q of [
      'name=x',
      'recorded=yesterday',
      'recorded=sa2026-01-01',
      'target=not a reference',
      'patient=a&patient=b',
      'target=Consent/a&target=Consent/b',
      '_count=-1',
      '_offset=x',
    ]) {
      const res = await get(`/fhir/Provenance?${q}`, admin);
      expect([q, res.status]).toEqual([q, 400]);
      expect(JSON.parse(res.text).resourceType).toBe('OperationOutcome');
    }
  });

  test('_count above the maximum is capped, not refused', async () => {
    const res = await get('/fhir/Provenance?patient=pv-1&_count=5000', admin);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).link[0].url).toContain('_count=100');
  });
});

describe('authorization', () => {
  test('no token 401; Consent scopes or data scopes alone do not open Provenance', async () => {
    expect((await t.request.get('/fhir/Provenance')).status).toBe(401);
    expect((await get('/fhir/Provenance', consentOnlyAdmin)).status).toBe(403);
    expect((await get('/fhir/Provenance', await patientToken('pv-1', 'patient/*.rs'))).status).toBe(403);
    expect((await get(`/fhir/Provenance/${activeId}-1`, await patientToken('pv-1', 'patient/Provenance.s'))).status).toBe(403);
  });

  test('Provenance is read-only', async () => {
    const res = await t.request
      .post('/fhir/Provenance')
      .set('Authorization', `Bearer ${admin}`)
      .set('Content-Type', 'application/fhir+json')
      .send('{}');
    expect(res.status).toBe(405);
    expect(JSON.parse(res.text).resourceType).toBe('OperationOutcome');
  });
});

describe('Consent search with _revinclude=Provenance:target', () => {
  test('adds each matched Consent’s Provenances as include entries', async () => {
    const res = await get('/fhir/Consent?patient=pv-1&_revinclude=Provenance:target', admin);
    expect(res.status).toBe(200);
    const bundle = JSON.parse(res.text);
    expect(bundle.total).toBe(2);
    const matches = bundle.entry.filter((e: { search: { mode: string } }) => e.search.mode === 'match');
    const includes = bundle.entry.filter((e: { search: { mode: string } }) => e.search.mode === 'include');
    expect(matches.map((e: { resource: { resourceType: string } }) => e.resource.resourceType)).toEqual(['Consent', 'Consent']);
    expect(includes.map((e: { resource: { id: string } }) => e.resource.id).sort()).toEqual(
      [`${activeId}-1`, `${withdrawnId}-1`, `${withdrawnId}-2`].sort(),
    );
    for (const e of includes) expect(e.fullUrl).toBe(`${ISSUER}/fhir/Provenance/${e.resource.id}`);
    expect(bundle.link[0].url).toContain('_revinclude=Provenance%3Atarget');
  });

  test('needs a Provenance scope; other _revinclude values are refused', async () => {
    const noScope = await get('/fhir/Consent?_revinclude=Provenance:target', consentOnlyAdmin);
    expect(noScope.status).toBe(403);
    expect(JSON.parse(noScope.text).resourceType).toBe('OperationOutcome');
    const other = await get('/fhir/Consent?_revinclude=AuditEvent:entity', admin);
    expect(other.status).toBe(400);
    expect(JSON.parse(other.text).issue[0].code).toBe('not-supported');
  });

  test('a patient app gets only its patient’s Consents and their Provenance', async () => {
    const token = await patientToken('pv-2', 'patient/Consent.rs patient/Provenance.rs');
    const bundle = JSON.parse((await get('/fhir/Consent?_revinclude=Provenance:target', token)).text);
    expect(bundle.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([otherPatientConsent, `${otherPatientConsent}-1`]);
  });
});
