import { createTestApp, type TestApp } from '../support/test-app.js';
import { authorizeThroughPages, exchangeCode, type PageAnswers } from '../support/smart-flow.js';
import { createPeople, ehrLaunch, paramsFor, PASSWORD, registerEhrLauncher, registerSmartApp } from '../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from '../smart/interaction/fake-fhir.js';

/**
 * SMART context-banner and context-style (Inferno g10_smart_need_patient_banner and
 * g10_smart_style_url): every EHR launch's token response carries both, the EHR's values or this
 * server's configured defaults, and the default style URL serves a SMART style document.
 */

const REDIRECT = 'https://chart.example.org/cb';
const CLIENT = 'chart';
const STYLE_PROPERTIES = [
  'color_background',
  'color_error',
  'color_highlight',
  'color_modal_backdrop',
  'color_success',
  'color_text',
  'dim_border_radius',
  'dim_font_size',
  'dim_spacing_size',
  'font_family_body',
  'font_family_heading',
];

let fake: FakeFhir;
const doctor: PageAnswers = { username: 'dr', password: PASSWORD };

async function appWith(env: Record<string, string> = {}): Promise<TestApp> {
  const t = await createTestApp({
    AUTHZ_ISSUER: 'http://localhost:3000',
    AUTHZ_FHIR_SERVERS: fake.base,
    AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000',
    ...env,
  });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs'],
  });
  await registerEhrLauncher(t);
  await createPeople(t, { dr: { fhirUser: 'Practitioner/dr-1', staff: true }, pat: { fhirUser: 'Patient/pat-1' } });
  return t;
}

const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'ehr-state' }));

async function launch(t: TestApp, context: Record<string, unknown>): Promise<string> {
  const res = await ehrLaunch(t, { aud: fake.base, clientId: CLIENT, ...context });
  expect(res.status).toBe(201);
  return res.body.launch as string;
}

async function ehrToken(t: TestApp, context: Record<string, unknown>) {
  const flow = await authorizeThroughPages(
    t,
    params('launch openid fhirUser offline_access patient/*.rs', { launch: await launch(t, context) }),
    doctor,
  );
  const token = await exchangeCode(t, flow, params(''));
  expect(token.status).toBe(200);
  return token;
}

beforeAll(async () => {
  fake = await startFakeFhir();
  fake.patients.push({ id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23' });
});
afterAll(() => fake.close());

describe('with the shipped defaults', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await appWith();
  });
  afterAll(() => t.close());

  test('an EHR launch that names no banner or style gets the banner and this server’s style, on exchange and refresh', async () => {
    const token = await ehrToken(t, { patient: 'pat-1' });
    expect(token.body).toMatchObject({
      patient: 'pat-1',
      need_patient_banner: true,
      smart_style_url: 'http://localhost:3000/smart-style.json',
    });

    const refreshed = await t.request
      .post('/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: token.body.refresh_token, client_id: CLIENT });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({ need_patient_banner: true, smart_style_url: 'http://localhost:3000/smart-style.json' });
  });

  test('the EHR’s own banner and style win over the defaults', async () => {
    const token = await ehrToken(t, {
      patient: 'pat-1',
      need_patient_banner: false,
      smart_style_url: 'https://ehr.example.org/style-v2.json',
    });
    expect(token.body).toMatchObject({ need_patient_banner: false, smart_style_url: 'https://ehr.example.org/style-v2.json' });
  });

  test('a standalone launch carries neither (SMART: they are EHR launch context)', async () => {
    const flow = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), { username: 'pat', password: PASSWORD });
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe('pat-1');
    expect(token.body).not.toHaveProperty('need_patient_banner');
    expect(token.body).not.toHaveProperty('smart_style_url');
  });

  test('the style document is served to any origin as JSON with every SMART style property', async () => {
    const res = await t.request.get('/smart-style.json').set('Origin', 'https://chart.example.org');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['cache-control']).toMatch(/public, max-age=\d+/);
    const doc = res.body as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(STYLE_PROPERTIES);
    for (const name of STYLE_PROPERTIES) expect(typeof doc[name]).toBe('string');
    for (const name of STYLE_PROPERTIES.filter((n) => n.startsWith('color_') && n !== 'color_modal_backdrop'))
      expect(doc[name]).toMatch(/^#[0-9a-f]{6}$/);
    for (const name of STYLE_PROPERTIES.filter((n) => n.startsWith('dim_'))) expect(doc[name]).toMatch(/^\d+px$/);

    const again = await t.request.get('/smart-style.json').set('If-None-Match', String(res.headers.etag));
    expect(again.status).toBe(304);

    const preflight = await t.request
      .options('/smart-style.json')
      .set('Origin', 'https://chart.example.org')
      .set('Access-Control-Request-Method', 'GET');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
  });
});

describe('with configured defaults', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await appWith({ AUTHZ_SMART_STYLE_URL: 'https://brand.example.org/ehr-style.json', AUTHZ_NEED_PATIENT_BANNER: 'false' });
  });
  afterAll(() => t.close());

  test('an EHR launch that names neither gets the operator’s style and banner', async () => {
    const token = await ehrToken(t, { patient: 'pat-1' });
    expect(token.body).toMatchObject({ need_patient_banner: false, smart_style_url: 'https://brand.example.org/ehr-style.json' });
  });
});
