import { decodeJwt } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { PATIENT_SEARCH_CLIENT_ID } from '../../../src/smart/interaction/fhir-search/service-credential.js';
import {
  authorizeThroughPages,
  browse,
  checkedValues,
  exchange,
  exchangeCode,
  inputValues,
  pageOf,
  postForm,
  signIn,
  startAuthorizationIn,
  type PageAnswers,
} from '../../support/smart-flow.js';
import { createPeople, createPerson, introspect, paramsFor, registerResourceServer, registerSmartApp } from '../../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from './fake-fhir.js';

const REDIRECT = 'https://growth.example.org/cb';
const CLIENT = 'growth-chart';

let fake: FakeFhir;
let t: TestApp;
let patient: PageAnswers;
let caregiver: PageAnswers;
let doctor: PageAnswers;

const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'state-42' }));

beforeAll(async () => {
  fake = await startFakeFhir();
  // Remembered consent as it applies to standalone launches (AUTHZ_CONSENT_REMEMBER=always); the
  // default, where a standalone launch always shows the page, is tested in test/interop/limited-access.test.ts.
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_CONSENT_REMEMBER: 'always' });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: [
      'openid',
      'fhirUser',
      'launch',
      'launch/patient',
      'launch/encounter',
      'offline_access',
      'online_access',
      'patient/*.rs',
      'user/*.rs',
    ],
  });
  await registerResourceServer(t);
  fake.patients.push(
    { id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23', mrn: 'MRN-1' },
    { id: 'sam-1', given: 'Sam', family: 'Jones', birthDate: '2015-09-01', mrn: 'MRN-2' },
    { id: 'xss-1', given: '<img src=x onerror=alert(1)>', family: 'Evil"Name', birthDate: '1970-01-01' },
  );
  fake.encounters.push(
    { id: 'enc-old', patient: 'pat-1', start: '2023-01-10T09:00:00Z', type: 'Annual check-up' },
    { id: 'enc-new', patient: 'pat-1', start: '2025-03-02T14:30:00Z', type: 'Follow-up visit' },
    { id: 'enc-sam', patient: 'sam-1', start: '2024-06-01T08:00:00Z', type: 'Vaccination' },
  );
  patient = await createPerson(t, { fhirUser: 'Patient/pat-1' }, { userName: 'pat', name: { givenName: 'Pat', familyName: 'Jones' } });
  ({ carer: caregiver, doc: doctor } = await createPeople(t, {
    carer: {
      fhirUser: 'RelatedPerson/carer-1',
      proxyPatients: [
        { value: 'Patient/pat-1', display: 'Pat Jones' },
        { value: 'sam-1', display: 'Sam <script>alert("x")</script> Jones' },
      ],
    },
    doc: { fhirUser: 'Practitioner/doc-1', staff: true },
  }));
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

beforeEach(() => {
  fake.mode = 'ok';
  delete fake.nextLink;
  fake.requests.length = 0;
});

describe('a patient', () => {
  test('gets their own record without a picker; the token and id_token say so', async () => {
    const flow = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/Observation.rs'), patient);
    expect(flow.pages).toEqual(['login', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(token.body.patient).toBe('pat-1');
    expect(token.body).not.toHaveProperty('need_patient_banner');
    expect(token.body.scope.split(' ').sort()).toEqual(['fhirUser', 'launch/patient', 'openid', 'patient/Observation.rs']);
    expect(decodeJwt(token.body.id_token).fhirUser).toBe(`${fake.base}/Patient/pat-1`);
    expect(fake.requests).toEqual([]);
  });

  test('asking for user/ scopes gets none of them: they are shown as not available and not granted', async () => {
    // Another patient: pat-1's Consent for patient/Observation.rs would skip the page.
    const { agent, verifier, stop } = await signIn(
      t,
      params('openid fhirUser launch/patient patient/Observation.rs user/Observation.rs'),
      await createPerson(t, { fhirUser: 'Patient/pat-u' }, { userName: 'pat.u' }),
    );
    const consent = pageOf(stop);
    expect(consent.prompt).toBe('consent');
    expect(checkedValues(consent.res.text, 'scope')).toEqual(['patient/Observation.rs']);
    expect(consent.res.text).toContain('Also asked for, but not available to this app');
    expect(consent.res.text).toContain(
      'Read and search Observation records (lab results, vital signs and other measurements) that you may see',
    );
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, {
        decision: 'allow',
        scope: ['patient/Observation.rs', 'user/Observation.rs'],
      }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.status).toBe(200);
    expect(token.body.scope.split(' ')).not.toContain('user/Observation.rs');
    expect(token.body.scope.split(' ')).toContain('patient/Observation.rs');
  });

  test('asking only for user/ data is told why on a page, and the app gets access_denied', async () => {
    const flow = await authorizeThroughPages(t, params('launch/patient user/*.rs'), patient);
    expect(flow.error).toBe('access_denied');
    expect(flow.stop.kind === 'app' && flow.stop.location.searchParams.get('error_description')).toMatch(/not to a staff role/);
    expect(flow.stop.kind === 'app' && flow.stop.location.searchParams.get('state')).toBe('state-42');
  });

  test('launch/encounter offers the patient’s encounters, newest first, searched with the service credential', async () => {
    const { agent, verifier, stop } = await signIn(t, params('openid launch/patient launch/encounter patient/Encounter.rs'), patient);
    const picker = pageOf(stop);
    expect(picker.prompt).toBe('select_encounter');
    expect(inputValues(picker.res.text, 'radio', 'encounter')).toEqual(['enc-new', 'enc-old']);
    expect(picker.res.text).toContain('2025-03-02: Follow-up visit');
    expect(fake.requests[0]!.path).toBe('/fhir/Encounter?patient=pat-1&_count=10&_sort=-date');
    const consent = pageOf(await browse(agent, await postForm(agent, picker.uid, 'encounter', picker.res, { encounter: 'enc-old' })));
    expect(consent.prompt).toBe('consent');
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: checkedValues(consent.res.text, 'scope') }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body).toMatchObject({ patient: 'pat-1', encounter: 'enc-old' });
  });

  test('an encounter of another patient is refused', async () => {
    const { agent, stop } = await signIn(t, params('launch/patient launch/encounter patient/Encounter.rs'), patient);
    const picker = pageOf(stop);
    const refused = await postForm(agent, picker.uid, 'encounter', picker.res, { encounter: 'enc-sam' });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('role="alert"');
    expect(refused.text).toContain('Choose one of the visits listed.');
  });

  test('with no encounters on record the encounter step passes by itself', async () => {
    const other = await createPerson(t, { fhirUser: 'Patient/lonely-1' }, { userName: 'lonely' });
    const flow = await authorizeThroughPages(t, params('launch/patient launch/encounter patient/Observation.rs'), other);
    expect(flow.pages).toEqual(['login', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body.patient).toBe('lonely-1');
    expect(token.body).not.toHaveProperty('encounter');
  });
});

describe('a caregiver', () => {
  test('chooses among the patients they act for; the display names are escaped', async () => {
    const { agent, verifier, stop } = await signIn(t, params('openid fhirUser launch/patient patient/*.rs'), caregiver);
    const picker = pageOf(stop);
    expect(picker.prompt).toBe('select_patient');
    expect(inputValues(picker.res.text, 'radio', 'patient')).toEqual(['pat-1', 'sam-1']);
    expect(picker.res.text).toContain('<legend>Patients you may act for</legend>');
    expect(picker.res.text).not.toMatch(/<script/i);
    expect(picker.res.text).toContain('Sam &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Jones');

    const consent = pageOf(await browse(agent, await postForm(agent, picker.uid, 'patient', picker.res, { patient: 'sam-1' })));
    expect(consent.prompt).toBe('consent');
    expect(consent.res.text).not.toMatch(/<script/i);
    expect(consent.res.text).toContain('to <strong>Sam &lt;script&gt;');
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: checkedValues(consent.res.text, 'scope') }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body.patient).toBe('sam-1');
  });

  test('a patient not in their list is refused, and a listed one then works', async () => {
    const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), caregiver);
    const picker = pageOf(stop);
    for (const other of ['xss-1', 'Patient/xss-1', '']) {
      const refused = await postForm(agent, picker.uid, 'patient', picker.res, { patient: other });
      expect(refused.status).toBe(400);
      expect(refused.text).toContain('<p id="picker-error" class="error" role="alert">Choose one of the patients listed.</p>');
    }
    const ok = await postForm(agent, picker.uid, 'patient', picker.res, { patient: 'Patient/pat-1' });
    expect(ok.status).toBe(303);
  });

  test('a second launch of the same app with another patient gets its own context', async () => {
    const first = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs'), { ...caregiver, patient: 'pat-1' });
    const firstToken = await exchangeCode(t, first, params(''));
    expect(firstToken.body.patient).toBe('pat-1');
    // Same browser (SSO session, existing grant): the picker is asked again, consent is not.
    const agent = first.agent;
    const { first: res, verifier } = await startAuthorizationIn(agent, params('launch/patient patient/Observation.rs', { state: 's2' }));
    const picker = pageOf(await browse(agent, res));
    expect(picker.prompt).toBe('select_patient');
    const back = await browse(agent, await postForm(agent, picker.uid, 'patient', picker.res, { patient: 'sam-1' }));
    if (back.kind !== 'app' || !back.code) throw new Error(`no code: ${back.kind}`);
    const second = await exchange(t, back.code, verifier, params(''));
    expect(second.body.patient).toBe('sam-1');
    // The first grant keeps its patient: a refresh of the first token would still say pat-1.
    expect((await introspect(t, firstToken.body.access_token)).body.patient).toBe('pat-1');
    expect((await introspect(t, second.body.access_token)).body.patient).toBe('sam-1');
  });
});

describe('a practitioner', () => {
  test('searches the FHIR server with a service token this server issued, and picks a result', async () => {
    const { agent, verifier, stop } = await signIn(t, params('openid fhirUser launch/patient patient/*.rs'), doctor);
    const form = pageOf(stop);
    expect(form.prompt).toBe('select_patient');
    expect(form.res.text).toContain('<label for="name">Name</label>');
    expect(form.res.text).toContain('<label for="birthdate">Birth date</label>');
    expect(form.res.text).toContain('<label for="identifier">');

    const results = await postForm(agent, form.uid, 'patient-search', form.res, { name: 'jones', birthdate: '1980', identifier: '' });
    expect(results.status).toBe(200);
    expect(inputValues(results.text, 'radio', 'patient')).toEqual(['pat-1']);
    expect(results.text).toContain('Pat Jones');
    expect(results.text).toContain('Born 1980-04-23');
    expect(results.text).toContain('MRN-1 (MRN)');
    expect(fake.requests[0]!.path).toBe('/fhir/Patient?name=jones&birthdate=1980&_count=10');

    const bearer = /^Bearer (.+)$/.exec(fake.requests[0]!.authorization ?? '')?.[1];
    expect(bearer).toBeDefined();
    const info = await introspect(t, bearer!);
    expect(info.body).toMatchObject({ active: true, client_id: PATIENT_SEARCH_CLIENT_ID, aud: fake.base });
    expect(info.body.scope.split(' ')).toEqual(['system/Patient.rs', 'system/Encounter.rs']);

    const byId = await postForm(agent, form.uid, 'patient-search', results, { identifier: 'MRN-2' });
    expect(inputValues(byId.text, 'radio', 'patient')).toEqual(['sam-1']);
    // The token is reused while it is fresh.
    expect(fake.requests.map((r) => r.authorization)).toEqual(Array(fake.requests.length).fill(`Bearer ${bearer}`));

    const consent = pageOf(await browse(agent, await postForm(agent, form.uid, 'patient', byId, { patient: 'sam-1' })));
    expect(consent.res.text).toContain('to <strong>Sam Jones</strong>');
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: checkedValues(consent.res.text, 'scope') }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body.patient).toBe('sam-1');
  });

  test('pages through results with the Bundle’s next link', async () => {
    for (let i = 0; i < 12; i++) fake.patients.push({ id: `many-${i}`, given: `Person${i}`, family: 'Manyfold', birthDate: '1990-01-01' });
    try {
      const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), doctor);
      const form = pageOf(stop);
      const first = await postForm(agent, form.uid, 'patient-search', form.res, { name: 'manyfold' });
      expect(inputValues(first.text, 'radio', 'patient')).toHaveLength(10);
      const next = /name="page" value="([^"]+)"/.exec(first.text)?.[1];
      expect(next).toBeDefined();
      const second = await postForm(agent, form.uid, 'patient-search', first, { name: 'manyfold', page: next!.replaceAll('&amp;', '&') });
      expect(inputValues(second.text, 'radio', 'patient')).toEqual(['many-10', 'many-11']);
      expect(second.text).not.toContain('name="page"');
    } finally {
      fake.patients.splice(fake.patients.findIndex((p) => p.id === 'many-0'));
    }
  });

  test('a next link off the FHIR base is neither offered nor followed', async () => {
    for (let i = 0; i < 11; i++) fake.patients.push({ id: `far-${i}`, given: `Far${i}`, family: 'Away', birthDate: '1990-01-01' });
    try {
      fake.nextLink = 'https://attacker.example.org/fhir/Patient?_offset=10';
      const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), doctor);
      const form = pageOf(stop);
      const first = await postForm(agent, form.uid, 'patient-search', form.res, { name: 'away' });
      expect(inputValues(first.text, 'radio', 'patient')).toHaveLength(10);
      expect(first.text).not.toContain('name="page"');
      const before = fake.requests.length;
      const forged = await postForm(agent, form.uid, 'patient-search', form.res, {
        name: 'away',
        page: `${fake.base.replace('/fhir', '/other')}/Patient`,
      });
      expect(forged.status).toBe(502);
      expect(forged.text).toContain('role="alert"');
      expect(fake.requests.length).toBe(before);
    } finally {
      fake.patients.splice(fake.patients.findIndex((p) => p.id === 'far-0'));
    }
  });

  test('search errors and bad input give a readable page, never a 500', async () => {
    const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), doctor);
    const form = pageOf(stop);
    const empty = await postForm(agent, form.uid, 'patient-search', form.res, { name: ' ' });
    expect(empty.status).toBe(400);
    expect(empty.text).toContain('Enter a name, a birth date or an identifier to search for.');
    const badDate = await postForm(agent, form.uid, 'patient-search', form.res, { birthdate: '23/04/1980' });
    expect(badDate.status).toBe(400);
    expect(badDate.text).toContain('YYYY-MM-DD');
    for (const mode of ['fail', 'garbage'] as const) {
      fake.mode = mode;
      const res = await postForm(agent, form.uid, 'patient-search', form.res, { name: 'jones' });
      expect(res.status).toBe(502);
      expect(res.text).toMatch(/^<!doctype html>/);
      expect(res.text).toContain('role="alert"');
      expect(res.text).toContain('The patient directory is not answering right now.');
      expect(res.text).toContain('value="jones"');
    }
    fake.mode = 'ok';
    const ok = await postForm(agent, form.uid, 'patient-search', form.res, { name: 'jones' });
    expect(ok.status).toBe(200);
  });

  test('a patient id that the FHIR server does not know is refused', async () => {
    const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), doctor);
    const form = pageOf(stop);
    for (const id of ['nobody', '../Observation/1', '']) {
      const res = await postForm(agent, form.uid, 'patient', form.res, { patient: id });
      expect(res.status).toBe(400);
      expect(res.text).toContain('That patient could not be found.');
    }
  });

  test('search results are escaped', async () => {
    const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), doctor);
    const form = pageOf(stop);
    const res = await postForm(agent, form.uid, 'patient-search', form.res, { birthdate: '1970-01-01' });
    expect(res.status).toBe(200);
    expect(res.text).not.toMatch(/<img/i);
    expect(res.text).toContain('&lt;img src=x onerror=alert(1)&gt; Evil&#34;Name');
  });
});

describe('users without a patient context', () => {
  test('get a page that says so and can only return to the app (access_denied)', async () => {
    const nobody = await createPerson(t, {}, { userName: 'clerk' });
    const { agent, stop } = await signIn(t, params('launch/patient patient/*.rs'), nobody);
    const none = pageOf(stop);
    expect(none.prompt).toBe('select_patient');
    expect(none.res.text).toContain('not linked to a patient record');
    expect(inputValues(none.res.text, 'radio', 'patient')).toEqual([]);
    expect(none.res.text).not.toContain('/patient-search"');
    const search = await postForm(agent, none.uid, 'patient-search', none.res, { name: 'jones' });
    expect(search.status).toBe(403);
    const back = await browse(agent, await postForm(agent, none.uid, 'abort', none.res, {}));
    expect(back.kind === 'app' && back.error).toBe('access_denied');
  });
});

describe('consent', () => {
  test('describes each scope, fixes the required ones and lets the user untick the rest', async () => {
    const { agent, verifier, stop } = await signIn(
      t,
      params(
        'openid fhirUser launch/patient patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory patient/Condition.read offline_access',
      ),
      await createPerson(t, { fhirUser: 'Patient/pat-d' }, { userName: 'pat.d' }),
    );
    const consent = pageOf(stop);
    const html = consent.res.text;
    expect(consent.res.headers['cache-control']).toBe('no-store');
    expect(consent.res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(html).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
    expect(html).toContain('<strong>App growth-chart</strong> is asking for access to <strong>your own record</strong>');
    expect(html).toContain('<li>Confirm who you are when you sign in to it</li>');
    expect(html).toContain('<li>Know which patient record is open</li>');
    expect(html).toContain('<legend>You choose whether the app may</legend>');
    expect(html).toContain(
      'Read and search your Observation records (lab results, vital signs and other measurements), only those in the category “laboratory results”',
    );
    expect(html).toContain('Read and search your Condition records (problems and diagnoses)');
    expect(html).toContain('Keep access while you are away');
    expect(checkedValues(html, 'scope')).toEqual([
      'patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory',
      'patient/Condition.read',
      'offline_access',
    ]);
    expect(html.match(/type="checkbox"[^>]* checked>/g)).toHaveLength(3);
    expect(html).toContain('name="decision" value="allow"');
    expect(html).toContain('name="decision" value="deny"');

    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: ['patient/Condition.read'] }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.status).toBe(200);
    expect(token.body.scope.split(' ').sort()).toEqual(['fhirUser', 'launch/patient', 'openid', 'patient/Condition.read']);
    expect(token.body).not.toHaveProperty('refresh_token');
  });

  test('a kept offline_access gives a refresh token', async () => {
    const flow = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs offline_access'), patient);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body.scope.split(' ')).toContain('offline_access');
    expect(typeof token.body.refresh_token).toBe('string');
  });

  test('offline_access asks for consent (prompt=consent), yet a Consent that covers the request skips the page', async () => {
    const first = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs offline_access'), {
      ...caregiver,
      patient: 'pat-1',
    });
    expect(first.pages).toEqual(['login', 'select_patient', 'consent']);
    const { first: res, verifier } = await startAuthorizationIn(
      first.agent,
      params('launch/patient patient/Observation.rs offline_access', { state: 's4' }),
    );
    const picker = pageOf(await browse(first.agent, res));
    expect(picker.prompt).toBe('select_patient');
    const back = await browse(first.agent, await postForm(first.agent, picker.uid, 'patient', picker.res, { patient: 'pat-1' }));
    if (back.kind !== 'app' || !back.code) throw new Error(`expected a code after the picker, got ${back.kind}`);
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body.patient).toBe('pat-1');
    expect(token.body.scope.split(' ')).toContain('offline_access');
    expect(typeof token.body.refresh_token).toBe('string');
  });

  test('Deny sends access_denied to the app, with the state', async () => {
    const flow = await authorizeThroughPages(t, params('openid launch/patient patient/*.rs', { state: 'opaque state/with=chars' }), {
      ...patient,
      consent: 'deny',
    });
    if (flow.stop.kind !== 'app') throw new Error('not back at the app');
    const back = flow.stop.location;
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toBe('The user denied access.');
    expect(back.searchParams.get('state')).toBe('opaque state/with=chars');
    expect(back.searchParams.has('code')).toBe(false);
  });

  test('is skipped when the user’s grant already covers the request', async () => {
    const first = await authorizeThroughPages(
      t,
      params('openid launch/patient patient/Observation.rs'),
      await createPerson(t, { fhirUser: 'Patient/pat-s' }, { userName: 'pat.s' }),
    );
    expect(first.pages).toEqual(['login', 'consent']);
    const { first: res, verifier } = await startAuthorizationIn(
      first.agent,
      params('openid launch/patient patient/Observation.rs', { state: 's3' }),
    );
    const back = await browse(first.agent, res);
    if (back.kind !== 'app' || !back.code) throw new Error('expected a code without any page');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body).toMatchObject({ patient: 'pat-s' });
    expect(token.body.scope.split(' ').sort()).toEqual(['launch/patient', 'openid', 'patient/Observation.rs']);
  });
});
