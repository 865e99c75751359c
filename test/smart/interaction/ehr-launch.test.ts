import { createTestApp, type TestApp } from '../../support/test-app.js';
import {
  authorizeThroughPages,
  browse,
  exchange,
  exchangeCode,
  checkedValues,
  launchStoreOf,
  postForm,
  startAuthorization,
  startAuthorizationIn,
  type PageAnswers,
} from '../../support/smart-flow.js';
import { createPeople, ehrLaunch, paramsFor, PASSWORD, registerEhrLauncher, registerSmartApp } from '../../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from './fake-fhir.js';

const REDIRECT = 'https://chart.example.org/cb';
const CLIENT = 'chart';

let fake: FakeFhir;
let t: TestApp;
let doctor: PageAnswers;

const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'ehr-state' }));

async function launch(context: Record<string, unknown>): Promise<string> {
  const res = await ehrLaunch(t, { aud: fake.base, clientId: CLIENT, ...context });
  expect(res.status).toBe(201);
  return res.body.launch as string;
}

const FULL_CONTEXT = {
  patient: 'pat-1',
  encounter: 'enc-9',
  fhirContext: [{ reference: 'ImagingStudy/img-1' }],
  need_patient_banner: false,
  smart_style_url: 'https://ehr.example.org/smart-style.json',
  intent: 'reconcile-medications',
};

beforeAll(async () => {
  fake = await startFakeFhir();
  fake.patients.push(
    { id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23' },
    { id: 'sam-1', given: 'Sam', family: 'Jones', birthDate: '2015-09-01' },
  );
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'launch/encounter', 'patient/*.rs', 'user/*.rs'],
  });
  await registerEhrLauncher(t);
  ({ dr: doctor } = await createPeople(t, {
    dr: { fhirUser: 'Practitioner/dr-1', staff: true },
    'dr.other': { fhirUser: 'Practitioner/dr-2', staff: true },
  }));
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

describe('EHR launch', () => {
  test('the token response carries the EHR’s patient, encounter, fhirContext, banner, style and intent', async () => {
    const value = await launch(FULL_CONTEXT);
    const flow = await authorizeThroughPages(t, params('launch openid fhirUser patient/*.rs', { launch: value }), doctor);
    expect(flow.pages).toEqual(['login', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({ ...FULL_CONTEXT, token_type: 'Bearer' });
    expect(token.body.scope.split(' ').sort()).toEqual(['fhirUser', 'launch', 'openid', 'patient/*.rs']);
    expect(await launchStoreOf(t).get(value)).toBeUndefined();
  });

  test('launch/patient next to an EHR launch with a patient is only a hint: no picker', async () => {
    const flow = await authorizeThroughPages(
      t,
      params('launch launch/patient launch/encounter patient/*.rs', { launch: await launch(FULL_CONTEXT) }),
      doctor,
    );
    // The consent page itself may be skipped: this doctor's Consent for pat-1 is remembered.
    expect(flow.pages).not.toContain('select_patient');
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body).toMatchObject({ patient: 'pat-1', encounter: 'enc-9' });
  });

  test('the consent page names the launch patient, read from the FHIR server', async () => {
    const value = await launch({ patient: 'sam-1' });
    const { agent, first } = await startAuthorization(t, params('launch patient/*.rs', { launch: value }));
    const login = await browse(agent, first);
    if (login.kind !== 'page') throw new Error('no login page');
    const consent = await browse(agent, await postForm(agent, login.uid, 'login', login.res, { username: 'dr', password: PASSWORD }));
    if (consent.kind !== 'page') throw new Error('no consent page');
    expect(consent.prompt).toBe('consent');
    expect(consent.res.text).toContain('is asking for access to <strong>Sam Jones</strong>');
    expect(consent.res.text).toContain('Read and search all of Sam Jones’s records');
  });

  test('a silent re-launch (prompt=none) in the same session gets the new launch’s context, not the old one', async () => {
    const first = await authorizeThroughPages(t, params('launch openid patient/*.rs', { launch: await launch(FULL_CONTEXT) }), doctor);
    const firstToken = await exchangeCode(t, first, params(''));
    expect(firstToken.body.patient).toBe('pat-1');

    // Same patient (the doctor's Consent for pat-1 covers it), different launch context.
    const second = await launch({ patient: 'pat-1', need_patient_banner: true });
    const { first: res, verifier } = await startAuthorizationIn(
      first.agent,
      params('launch openid patient/*.rs', { launch: second, prompt: 'none', state: 'silent' }),
    );
    const back = await browse(first.agent, res);
    if (back.kind !== 'app' || !back.code)
      throw new Error(
        `expected a code without interaction, got ${back.kind} ${back.kind === 'app' ? back.location.search : back.res.status}`,
      );
    expect(back.location.searchParams.get('state')).toBe('silent');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body).toMatchObject({ patient: 'pat-1', need_patient_banner: true });
    expect(token.body).not.toHaveProperty('encounter');
    expect(token.body).not.toHaveProperty('intent');
    expect(await launchStoreOf(t).get(second)).toBeUndefined();

    // A used launch never yields a code, silently or not.
    const { first: reused } = await startAuthorizationIn(
      first.agent,
      params('launch openid patient/*.rs', { launch: second, prompt: 'none' }),
    );
    const refused = await browse(first.agent, reused);
    expect(refused.kind === 'app' && refused.error).toBe('invalid_request');
    expect(refused.kind === 'app' && refused.code).toBeFalsy();
  });

  test('a silent re-launch for a patient nobody consented for gives consent_required, and uses nothing up', async () => {
    const first = await authorizeThroughPages(
      t,
      params('launch openid patient/*.rs', { launch: await launch({ patient: 'pat-1' }) }),
      doctor,
    );
    expect(first.code).toBeDefined();
    const other = await launch({ patient: 'silent-2' });
    const { first: res } = await startAuthorizationIn(first.agent, params('launch openid patient/*.rs', { launch: other, prompt: 'none' }));
    const back = await browse(first.agent, res);
    expect(back.kind === 'app' && back.error).toBe('consent_required');
    expect(back.kind === 'app' && back.code).toBeFalsy();
    expect(await launchStoreOf(t).get(other)).toBeDefined();
  });

  test('prompt=none cannot ask for consent: scopes not yet approved give consent_required', async () => {
    const first = await authorizeThroughPages(
      t,
      params('launch patient/Observation.rs', { launch: await launch({ patient: 'pat-1' }) }),
      doctor,
    );
    expect(first.code).toBeDefined();
    const { first: res } = await startAuthorizationIn(
      first.agent,
      params('launch patient/Observation.rs patient/Condition.rs', { launch: await launch({ patient: 'pat-1' }), prompt: 'none' }),
    );
    const back = await browse(first.agent, res);
    expect(back.kind === 'app' && back.error).toBe('consent_required');
  });

  test('a launch without a patient asks the practitioner to pick one for launch/patient', async () => {
    fake.requests.length = 0;
    const flow = await authorizeThroughPages(
      t,
      params('launch launch/patient patient/*.rs', { launch: await launch({ encounter: 'enc-2' }) }),
      { ...doctor, search: { name: 'sam' } },
    );
    expect(flow.pages).toEqual(['login', 'select_patient', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body).toMatchObject({ patient: 'sam-1', encounter: 'enc-2' });
  });

  test('a launch pinned to another user gives access_denied and stays unused', async () => {
    const value = await launch({ patient: 'pat-1', user: 'dr.other' });
    const flow = await authorizeThroughPages(t, params('launch patient/*.rs', { launch: value }), doctor);
    expect(flow.error).toBe('access_denied');
    expect(flow.code).toBeUndefined();
    expect(await launchStoreOf(t).get(value)).toBeDefined();
  });

  test('a launch used up while the user was on the consent page gives no code', async () => {
    const value = await launch({ patient: 'used-1' });
    const { agent, first } = await startAuthorization(t, params('launch patient/*.rs', { launch: value }));
    const login = await browse(agent, first);
    if (login.kind !== 'page') throw new Error('no login page');
    const consent = await browse(agent, await postForm(agent, login.uid, 'login', login.res, { username: 'dr', password: PASSWORD }));
    if (consent.kind !== 'page') throw new Error('no consent page');
    await launchStoreOf(t).consume(value);
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: checkedValues(consent.res.text, 'scope') }),
    );
    expect(back.kind === 'app' && back.error).toBe('invalid_request');
    expect(back.kind === 'app' && back.location.searchParams.get('error_description')).toContain('expired or was already used');
    expect(back.kind === 'app' && back.code).toBeFalsy();
  });
});
