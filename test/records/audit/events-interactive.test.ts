import { createTestApp, type TestApp } from '../../support/test-app.js';
import { directoryOf } from '../../smart/interaction/login/support.js';
import { authorizeThroughPages, browse, exchangeCode, postForm, startAuthorization } from '../../support/smart-flow.js';
import { createPerson, EHR, ehrLaunch, paramsFor, PASSWORD, registerEhrLauncher, registerSmartApp } from '../../support/fixtures.js';
import { backendKey, registerBackend, signAssertion, tokenRequest } from '../../support/backend-client.js';
import { startFakeFhir, type FakeFhir } from '../../smart/interaction/fake-fhir.js';
import {
  agentByType,
  clientIds,
  detail,
  expectNoSecrets,
  expectValid,
  localCode,
  one,
  patientOf,
  recordedBy,
  subtypeCodes,
  withLocal,
} from './events-support.js';
import { isDisclosure } from '../../../src/records/audit/disclosure.js';

/*
 * Events of what people do in the browser (launch, sign-in, consent, logout) and of Consent
 * withdrawal, through the real pages and APIs.
 */

const REDIRECT = 'https://chart.example.org/cb';
const CLIENT = 'chart';

let fake: FakeFhir;
let t: TestApp;
let drId: string;

const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'ehr-state' }));

async function launch(context: Record<string, unknown>) {
  return ehrLaunch(t, { aud: fake.base, clientId: CLIENT, ...context });
}

beforeAll(async () => {
  fake = await startFakeFhir();
  fake.patients.push(
    { id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23' },
    { id: 'pat-2', given: 'Sam', family: 'Jones', birthDate: '2015-09-01' },
  );
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_LOGIN_MAX_FAILURES: '3' });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'patient/*.rs', 'offline_access'],
  });
  await registerEhrLauncher(t);
  drId = (await createPerson(t, { fhirUser: 'Practitioner/dr-1', staff: true }, { userName: 'dr' })).id;
  await createPerson(t, { fhirUser: 'Practitioner/dr-9', staff: true }, { userName: 'dr.locked' });
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

describe('EHR launch, sign-in, consent and token, through the pages', () => {
  let value: string;
  let events: Awaited<ReturnType<typeof recordedBy>>['events'];
  let flowSecrets: string[];

  beforeAll(async () => {
    const created = await recordedBy(t, () => launch({ patient: 'pat-1', encounter: 'enc-9' }));
    expect(created.result.status).toBe(201);
    value = created.result.body.launch;
    events = created.events;
    const run = await recordedBy(t, async () => {
      const flow = await authorizeThroughPages(t, params('launch openid fhirUser patient/*.rs', { launch: value }), {
        username: 'dr',
        password: PASSWORD,
      });
      return { flow, token: await exchangeCode(t, flow, params('')) };
    });
    expect(run.result.token.status).toBe(200);
    events = [...events, ...run.events];
    flowSecrets = [
      value,
      PASSWORD,
      EHR.secret,
      run.result.flow.code!,
      run.result.flow.verifier,
      run.result.token.body.access_token,
      run.result.token.body.id_token,
    ];
  });

  test('every event is structurally valid and carries no secret of the flow', () => {
    expect(events.length).toBeGreaterThanOrEqual(5);
    for (const e of events) {
      expectValid(e);
      expectNoSecrets(e, flowSecrets);
    }
  });

  test('launch context created: by the EHR launcher, for the app, about the patient', () => {
    const e = one(events, 'launch-created');
    expect(e.action).toBe('C');
    expect(patientOf(e)).toBe('Patient/pat-1');
    expect(agentByType(e, '110151')[0]).toMatchObject({ requestor: true, who: { identifier: { value: 'ehr' } } });
    expect(clientIds(e)).toEqual([CLIENT]);
    expect(detail(e, 'encounter')).toBe('enc-9');
  });

  test('login success: DCM 110122, the account and its fhirUser, the browser address', () => {
    const e = events.find((x) => subtypeCodes(x).includes('110122') && x.outcome === '0')!;
    expect(e).toBeDefined();
    expect(e.type.code).toBe('110114');
    const [user] = agentByType(e, 'IRCP');
    expect(user).toMatchObject({
      requestor: true,
      who: { reference: 'Practitioner/dr-1', identifier: { value: drId } },
      network: { type: '2' },
    });
  });

  test('consent recorded (permit) and authorization granted, both naming the patient and the Consent', () => {
    const consent = one(events, 'consent-recorded');
    expect(consent.action).toBe('C');
    expect(patientOf(consent)).toBe('Patient/pat-1');
    expect(consent.entity!.find((x) => x.type?.code === 'Consent')?.what?.reference).toMatch(/^Consent\//);
    expect(detail(consent, 'decision')).toBe('permit');

    const granted = one(events, 'authorization-granted');
    expect(granted.outcome).toBe('0');
    expect(patientOf(granted)).toBe('Patient/pat-1');
    expect(granted.entity!.find((x) => x.type?.code === 'Consent')?.what?.reference).toBe(
      consent.entity!.find((x) => x.type?.code === 'Consent')?.what?.reference,
    );
  });

  test('the token issued with the patient in context is a disclosure', () => {
    const e = one(events, 'token-issued');
    expect(patientOf(e)).toBe('Patient/pat-1');
    expect(isDisclosure(e)).toBe(true);
    expect(isDisclosure(one(events, 'consent-recorded'))).toBe(false);
  });
});

describe('refusals', () => {
  test('consent denied: authorization denied (outcome 8) and a deny Consent', async () => {
    const created = await launch({ patient: 'pat-2' });
    const { agent, first } = await startAuthorization(t, params('launch openid patient/*.rs', { launch: created.body.launch }));
    const { events } = await recordedBy(t, async () => {
      let stop = await browse(agent, first);
      if (stop.kind === 'page' && stop.prompt === 'login')
        stop = await browse(agent, await postForm(agent, stop.uid, 'login', stop.res, { username: 'dr', password: PASSWORD }));
      expect(stop).toMatchObject({ kind: 'page', prompt: 'consent' });
      if (stop.kind !== 'page') return;
      const back = await browse(agent, await postForm(agent, stop.uid, 'consent', stop.res, { decision: 'deny' }));
      expect(back).toMatchObject({ kind: 'app', error: 'access_denied' });
    });
    const denied = one(events, 'authorization-denied');
    expectValid(denied);
    expect(denied.outcome).toBe('8');
    expect(denied.outcomeDesc).toMatch(/^access_denied/);
    expect(agentByType(denied, 'IRCP')[0]?.who?.identifier?.value).toBe(drId);
    const consent = one(events, 'consent-recorded');
    expectValid(consent);
    expect(detail(consent, 'decision')).toBe('deny');
    expect(patientOf(consent)).toBe('Patient/pat-2');
    for (const e of events) expectNoSecrets(e, [created.body.launch, PASSWORD]);
  });

  test('login failures: generic outcome text, the account only when the name is one, never the typed text; lock-out after 3', async () => {
    const { agent, first } = await startAuthorization(t, params('openid patient/*.rs launch/patient'));
    const stop = await browse(agent, first);
    if (stop.kind !== 'page') throw new Error('no login page');
    const typedSecret = 'MyS3cretTypedInTheWrongField!';
    const { events: unknown } = await recordedBy(t, () =>
      postForm(agent, stop.uid, 'login', stop.res, { username: typedSecret, password: 'whatever-1' }),
    );
    const u = one(unknown, 'login-failed');
    expectValid(u);
    expect(u.outcome).toBe('4');
    expect(subtypeCodes(u)).toContain('110122');
    expect(u.outcomeDesc).toBe('The username or password is incorrect, or the account cannot sign in.');
    expect(agentByType(u, 'IRCP')[0]?.who).toEqual({ display: 'unknown account' });
    expectNoSecrets(u, [typedSecret, 'whatever-1']);

    const lockedId = (await directoryOf(t).users.findByUserName('dr.locked'))!.id;
    const { events: wrong } = await recordedBy(t, async () => {
      for (let i = 0; i < 3; i += 1)
        await postForm(agent, stop.uid, 'login', stop.res, { username: 'dr.locked', password: `wrong password ${i}` });
    });
    const failures = withLocal(wrong, 'login-failed');
    expect(failures).toHaveLength(3);
    for (const f of failures) {
      expectValid(f);
      expect(agentByType(f, 'IRCP')[0]?.who?.identifier?.value).toBe(lockedId);
      expect(f.outcomeDesc).toBe(u.outcomeDesc);
    }
    const lock = one(wrong, 'account-locked');
    expectValid(lock);
    expect(lock.type.code).toBe('110113');
    expect(lock.outcome).toBe('8');
    expect(agentByType(lock, 'IRCP')[0]?.who?.identifier?.value).toBe(lockedId);
    expect(wrong.map(localCode)).toEqual(['login-failed', 'login-failed', 'login-failed', 'account-locked']);
    for (const e of wrong) expectNoSecrets(e, ['wrong password 0', 'wrong password 1', 'wrong password 2']);
  });
});

test('logout: DCM 110123 with the account', async () => {
  const flow = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/*.rs'), {
    username: 'dr',
    password: PASSWORD,
    patient: 'pat-1',
  });
  expect(flow.code).toBeDefined();
  const page = await flow.agent.get('/logout');
  expect(page.status).toBe(200);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)![1]!;
  const { result: done, events } = await recordedBy(t, () => flow.agent.post('/logout/confirm').type('form').send({ xsrf, logout: 'yes' }));
  expect([302, 303]).toContain(done.status);
  const e = events.find((x) => subtypeCodes(x).includes('110123'))!;
  expect(e).toBeDefined();
  expectValid(e);
  expect(e.outcome).toBe('0');
  expect(agentByType(e, 'IRCP')[0]?.who?.identifier?.value).toBe(drId);
  expectNoSecrets(e, [xsrf]);
});

test('consent withdrawn through the Consent API: the patient, the Consent, the grants revoked', async () => {
  const key = await backendKey('ES384');
  await registerBackend(t, 'consent-admin', [key], { smart_scopes: ['system/Consent.cruds'] });
  const tokenRes = await tokenRequest(t, await signAssertion(key, 'consent-admin', 'http://localhost:3000/token'), {
    scope: 'system/Consent.cruds',
  });
  expect(tokenRes.status).toBe(200);
  const admin = tokenRes.body.access_token as string;
  const run = await recordedBy(t, () =>
    authorizeThroughPages(t, params('launch/patient openid patient/*.rs'), { username: 'dr', password: PASSWORD, patient: 'pat-2' }),
  );
  const recorded = withLocal(run.events, 'consent-recorded').at(-1)!;
  const consentRef = recorded.entity!.find((x) => x.type?.code === 'Consent')!.what!.reference!;
  const { result: res, events } = await recordedBy(t, () =>
    t.request.delete(`/fhir/${consentRef}`).set('Authorization', `Bearer ${admin}`),
  );
  expect(res.status).toBeLessThan(300);
  const e = one(events, 'consent-withdrawn');
  expectValid(e);
  expect(e.action).toBe('U');
  expect(patientOf(e)).toBe('Patient/pat-2');
  expect(e.entity!.find((x) => x.type?.code === 'Consent')?.what?.reference).toBe(consentRef);
  expectNoSecrets(e, [admin]);
});
