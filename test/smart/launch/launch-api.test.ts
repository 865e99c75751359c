import { createTestApp, type TestApp } from '../../support/test-app.js';
import { basicAuth, launchStoreOf } from '../../support/smart-flow.js';
import { createPerson, registerEhrLauncher, registerResourceServer, registerSmartApp, RS } from '../../support/fixtures.js';

const FHIR = 'http://localhost:8080/fhir';
const EAST = 'https://east.example.org/fhir';

let t: TestApp;
let userId: string;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: `${FHIR},east=${EAST}`, AUTHZ_TTL_LAUNCH: '120' });
  await registerEhrLauncher(t, { id: 'ehr', secret: 'ehr-secret-value' });
  await registerSmartApp(t, { id: 'chart', redirectUri: 'https://app.example.org/cb', scopes: ['launch', 'patient/*.rs'] });
  await registerResourceServer(t, RS, { client_name: 'FHIR server' });
  userId = (await createPerson(t, { fhirUser: 'Practitioner/dr-1' }, { userName: 'dr.launch' })).id;
});
afterAll(() => t.close());

const EHR_AUTH = basicAuth('ehr', 'ehr-secret-value');

/** `auth` null sends no Authorization header. */
function post(body: unknown, auth: string | null = EHR_AUTH) {
  const req = t.request.post('/api/launch').set('Content-Type', 'application/json');
  if (auth !== null) req.set('Authorization', auth);
  return req.send(JSON.stringify(body));
}

describe('POST /api/launch', () => {
  test('an EHR launcher gets an opaque launch value for the full SMART 2.2 context', async () => {
    const body = {
      patient: 'pat-1',
      encounter: 'enc.9',
      fhirContext: [
        { reference: 'ImagingStudy/img-1' },
        { canonical: 'http://example.org/fhir/Questionnaire/phq9|1.0', type: 'Questionnaire' },
        { identifier: { system: 'urn:oid:1.2.3', value: 'ord-77' }, type: 'ServiceRequest', role: 'https://example.org/roles/order' },
        { reference: 'Patient/mother-1', role: 'https://example.org/roles/mother' },
      ],
      intent: 'reconcile-medications',
      need_patient_banner: false,
      smart_style_url: 'https://ehr.example.org/smart-style.json',
      tenant: 'east',
      user: 'dr.launch',
      clientId: 'chart',
    };
    const res = await post(body);
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.expires_in).toBe(120);
    expect(res.body.launch).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = await launchStoreOf(t).get(res.body.launch);
    // userName resolved to the id, aud taken from the tenant, the caller recorded
    expect(stored).toEqual({ ...body, user: userId, aud: EAST, createdBy: 'ehr' });
  });

  test('an empty context is a valid launch; aud is kept in canonical form', async () => {
    const res = await post({ aud: `${FHIR}/` });
    expect(res.status).toBe(201);
    expect(await launchStoreOf(t).get(res.body.launch)).toEqual({ aud: FHIR, createdBy: 'ehr' });
  });

  test('client_secret_post is refused for a client registered for client_secret_basic', async () => {
    const res = await post({ patient: 'p', client_id: 'ehr', client_secret: 'ehr-secret-value' }, null);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  test.each([
    ['no credentials', null],
    ['a wrong secret', basicAuth('ehr', 'wrong')],
    ['an unknown client', basicAuth('nobody', 'ehr-secret-value')],
  ])('%s is 401 invalid_client', async (_name, auth) => {
    const res = await post({ patient: 'p' }, auth);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(res.headers['www-authenticate']).toMatch(/^Basic /);
  });

  test('other client kinds are 403', async () => {
    const res = await post({ patient: 'p' }, basicAuth(RS.id, RS.secret));
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('unauthorized_client');
  });

  test.each([
    [{ patient: 'Patient/123' }, 'patient'],
    [{ patient: 'x'.repeat(65) }, 'patient'],
    [{ encounter: 'a b' }, 'encounter'],
    [{ patient: 12 }, 'patient'],
    [{ fhirContext: 'ImagingStudy/1' }, 'fhirContext'],
    [{ fhirContext: [{ type: 'ImagingStudy' }] }, 'fhirContext.0'],
    [{ fhirContext: [{ reference: 'not a reference' }] }, 'fhirContext.0.reference'],
    [{ fhirContext: [{ reference: 'ImagingStudy/1', role: '' }] }, 'fhirContext.0.role'],
    [{ fhirContext: [{ reference: 'Patient/1' }] }, 'fhirContext.0'],
    [{ fhirContext: [{ reference: 'Encounter/1', role: 'launch' }] }, 'fhirContext.0'],
    [{ fhirContext: [{ canonical: 'not-a-url' }] }, 'fhirContext.0.canonical'],
    [{ fhirContext: [{ identifier: { system: 'urn:x:y' } }] }, 'fhirContext.0.identifier.value'],
    [{ fhirContext: [{ reference: 'ImagingStudy/1', extra: true }] }, 'fhirContext.0.extra'],
    [{ smart_style_url: 'http://ehr.example.org/style.json' }, 'smart_style_url'],
    [{ smart_style_url: 'style.json' }, 'smart_style_url'],
    [{ need_patient_banner: 'yes' }, 'need_patient_banner'],
    [{ intent: 'x'.repeat(101) }, 'intent'],
    [{ tenant: 'west' }, 'tenant'],
    [{ tenant: 'east', aud: FHIR }, 'tenant'],
    [{ aud: 'https://evil.example.org/fhir' }, 'aud'],
    [{ user: 'nobody-here' }, 'user'],
    [{ clientId: 'no-such-app' }, 'clientId'],
    [{ clientId: 'rs' }, 'clientId'],
    [{ createdBy: 'someone-else' }, 'createdBy'],
    [{ patient: 'p', bogus: 1 }, 'bogus'],
  ])('%j is 400 naming %s', async (body, field) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(new RegExp(`^${field.replace(/\./g, '\\.')} `));
  });

  test('http smart_style_url on localhost is fine outside production', async () => {
    const res = await post({ smart_style_url: 'http://localhost:9000/style.json', aud: FHIR });
    expect(res.status).toBe(201);
  });

  test('a body that is not a JSON object is refused', async () => {
    expect((await post([1, 2])).status).toBe(400);
    const text = await t.request
      .post('/api/launch')
      .set('Authorization', basicAuth('ehr', 'ehr-secret-value'))
      .type('form')
      .send('patient=p');
    expect(text.status).toBe(415);
    const broken = await t.request
      .post('/api/launch')
      .set('Authorization', basicAuth('ehr', 'ehr-secret-value'))
      .set('Content-Type', 'application/json')
      .send('{"patient":');
    expect(broken.status).toBe(400);
    expect(broken.body.error_description).toContain('not valid JSON');
  });

  test('an oversized body is 413', async () => {
    const res = await post({ intent: 'x'.repeat(20_000) });
    expect(res.status).toBe(413);
  });

  test('this launcher may launch for both configured servers, so a launch must name one', async () => {
    const res = await post({ patient: 'p' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(/^aud is required: /);
  });

  test('a deactivated user cannot be pinned', async () => {
    const user = await createPerson(t, { fhirUser: 'Practitioner/gone' }, { userName: 'gone.user' });
    const { createUserStore } = await import('../../../src/records/directory/user-store.js');
    await createUserStore(t.config, t.redis, t.keyspace).setActive(user.id, false);
    const res = await post({ user: user.id });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toBe('user is not an active user');
  });
});
