import { randomUUID } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/test-app.js';
import {
  authorizeThroughPages,
  browse,
  checkedValues,
  consentsOf,
  exchange,
  exchangeCode,
  inputValues,
  openConsentPage,
  postForm,
  startAuthorizationIn,
} from '../support/smart-flow.js';
import { createPerson, introspect, paramsFor, registerResourceServer, registerSmartApp, type Person } from '../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from '../smart/interaction/fake-fhir.js';

/**
 * (g)(10) Granular Scope Selection (Inferno g10_smart_granular_scope_selection, US Core 6/7): an
 * app asks for whole Condition and Observation scopes, the patient narrows them on the consent
 * page to some of the categories the Certification Companion Guide names, and the token, the
 * introspection answer and the Consent all say exactly what was chosen. The scopes here are the
 * ones Inferno requests by default.
 */

const REDIRECT = 'https://inferno.example.org/suites/custom/smart/redirect';
const APP = 'inferno-granular';
const INFERNO_SCOPES = 'launch/patient openid fhirUser offline_access patient/Condition.rs patient/Observation.rs patient/Patient.rs';

const CONDITION = 'http://terminology.hl7.org/CodeSystem/condition-category';
const US_CORE_CONDITION = 'http://hl7.org/fhir/us/core/CodeSystem/condition-category';
const OBSERVATION = 'http://terminology.hl7.org/CodeSystem/observation-category';
const US_CORE = 'http://hl7.org/fhir/us/core/CodeSystem/us-core-category';

const CONDITION_KINDS = [
  `patient/Condition.rs?category=${CONDITION}|encounter-diagnosis`,
  `patient/Condition.rs?category=${CONDITION}|problem-list-item`,
  `patient/Condition.rs?category=${US_CORE_CONDITION}|health-concern`,
];
const OBSERVATION_KINDS = [
  `patient/Observation.rs?category=${US_CORE}|clinical-test`,
  `patient/Observation.rs?category=${OBSERVATION}|laboratory`,
  `patient/Observation.rs?category=${OBSERVATION}|social-history`,
  `patient/Observation.rs?category=${US_CORE}|sdoh`,
  `patient/Observation.rs?category=${OBSERVATION}|survey`,
  `patient/Observation.rs?category=${OBSERVATION}|vital-signs`,
];

let fake: FakeFhir;
let t: TestApp;

const params = paramsFor(() => ({ client_id: APP, redirect_uri: REDIRECT, aud: fake.base, state: 'granular' }));

async function newPatient(): Promise<Person & { patientId: string }> {
  const patientId = `g-${randomUUID().slice(0, 8)}`;
  return {
    ...(await createPerson(
      t,
      { fhirUser: `Patient/${patientId}` },
      { userName: patientId, name: { givenName: 'Gia', familyName: patientId } },
    )),
    patientId,
  };
}

function sorted(scope: string): string[] {
  return scope.split(' ').sort();
}

beforeAll(async () => {
  fake = await startFakeFhir();
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  await registerSmartApp(t, {
    id: APP,
    name: 'Inferno',
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs'],
  });
  await registerSmartApp(t, {
    id: 'narrow-app',
    name: 'Lab only',
    redirectUri: REDIRECT,
    scopes: ['launch/patient', `patient/Observation.rs?category=${OBSERVATION}|laboratory`],
  });
  await registerResourceServer(t);
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

describe('the consent page offers the (g)(10) categories', () => {
  test('under a whole Condition or Observation scope, unticked, with the whole ticked', async () => {
    const who = await newPatient();
    const { html } = await openConsentPage(t, params(INFERNO_SCOPES), who);
    const boxes = inputValues(html, 'checkbox', 'scope');
    expect(boxes).toEqual([
      'offline_access',
      'patient/Condition.rs',
      ...CONDITION_KINDS,
      'patient/Observation.rs',
      ...OBSERVATION_KINDS,
      'patient/Patient.rs',
    ]);
    expect(checkedValues(html, 'scope')).toEqual([
      'offline_access',
      'patient/Condition.rs',
      'patient/Observation.rs',
      'patient/Patient.rs',
    ]);
    expect(html).toContain(
      'Read and search your Observation records (lab results, vital signs and other measurements), only those in the category “laboratory results”',
    );
    expect(html).toContain('only those in the category “social needs (social determinants of health)”');
    expect(html).toContain('only those in the category “clinical tests”');
    expect(html).toContain('only those in the category “health concerns”');
    // Plain HTML: no script, so the strict CSP holds.
    expect(html).not.toContain('<script');
  });

  test('a v1 read scope is offered the same categories as v2 granular scopes', async () => {
    const who = await newPatient();
    const { html } = await openConsentPage(t, params('launch/patient patient/Observation.read'), who);
    expect(inputValues(html, 'checkbox', 'scope')).toEqual(['patient/Observation.read', ...OBSERVATION_KINDS]);
  });

  test('a scope that already names a category, or another resource type, offers none', async () => {
    const who = await newPatient();
    const { html } = await openConsentPage(
      t,
      params(`launch/patient patient/Observation.rs?category=${OBSERVATION}|laboratory patient/AllergyIntolerance.rs`),
      who,
    );
    expect(inputValues(html, 'checkbox', 'scope')).toEqual([
      `patient/Observation.rs?category=${OBSERVATION}|laboratory`,
      'patient/AllergyIntolerance.rs',
    ]);
  });
});

describe('narrowing', () => {
  test('Inferno’s selection: categories instead of the whole scopes; token, introspection and Consent list exactly those', async () => {
    const who = await newPatient();
    const chosen = [CONDITION_KINDS[0]!, CONDITION_KINDS[2]!, OBSERVATION_KINDS[1]!, OBSERVATION_KINDS[2]!];
    const flow = await authorizeThroughPages(t, params(INFERNO_SCOPES), {
      ...who,
      untick: ['patient/Condition.rs', 'patient/Observation.rs'],
      tick: chosen,
    });
    expect(flow.pages).toEqual(['login', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    const expected = ['fhirUser', 'launch/patient', 'offline_access', 'openid', 'patient/Patient.rs', ...chosen].sort();
    expect(sorted(token.body.scope)).toEqual(expected);
    // Inferno's check: no resource-level Condition or Observation scope, a granular one for each.
    expect(token.body.scope.split(' ').filter((s: string) => /^patient\/(Condition|Observation)\.rs$/.test(s))).toEqual([]);

    const intro = await introspect(t, token.body.access_token);
    expect(intro.body.active).toBe(true);
    expect(sorted(intro.body.scope)).toEqual(expected);

    const [consent] = await consentsOf(t, who.patientId);
    expect(consent!.scopes.sort()).toEqual(expected);
    expect(intro.body.consent).toBe(`Consent/${consent!.resource.id}`);

    // The narrowed grant survives a refresh unchanged.
    const refreshed = await t.request
      .post('/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: token.body.refresh_token, client_id: APP });
    expect(refreshed.status).toBe(200);
    expect(sorted(refreshed.body.scope)).toEqual(expected);
  });

  test('keeping the whole scope grants the whole, even with categories ticked as well', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs'), { ...who, tick: [OBSERVATION_KINDS[0]!] });
    const token = await exchangeCode(t, flow, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', 'patient/Observation.rs']);
  });

  test('unticking the whole and every category grants none of that type', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs patient/Patient.rs'), {
      ...who,
      untick: ['patient/Observation.rs'],
    });
    const token = await exchangeCode(t, flow, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', 'patient/Patient.rs']);
  });

  test('a v1 request narrowed on the page gets the v2 granular scope', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/Observation.read'), {
      ...who,
      untick: ['patient/Observation.read'],
      tick: [OBSERVATION_KINDS[5]!],
    });
    const token = await exchangeCode(t, flow, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', OBSERVATION_KINDS[5]!]);
  });
});

describe('a narrower choice never widens', () => {
  test('a posted category of a type the app did not ask for, or any other scope, is ignored', async () => {
    const who = await newPatient();
    const { agent, verifier, consent } = await openConsentPage(t, params('launch/patient patient/Observation.rs'), who);
    const forged = [
      ...CONDITION_KINDS,
      `patient/Observation.rs?category=${OBSERVATION}|imaging`,
      'patient/Observation.cruds',
      'patient/*.rs',
      OBSERVATION_KINDS[1]!,
    ];
    const back = await browse(agent, await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: forged }));
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', OBSERVATION_KINDS[1]!]);
  });

  test('what the client may have bounds the categories: a client allowed only laboratory is offered no split', async () => {
    const who = await newPatient();
    const p = params('launch/patient patient/Observation.rs', { client_id: 'narrow-app' });
    const { agent, verifier, consent, html } = await openConsentPage(t, p, who);
    expect(inputValues(html, 'checkbox', 'scope')).toEqual([`patient/Observation.rs?category=${OBSERVATION}|laboratory`]);
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, {
        decision: 'allow',
        scope: [OBSERVATION_KINDS[5]!, `patient/Observation.rs?category=${OBSERVATION}|laboratory`],
      }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params('', { client_id: 'narrow-app' }));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', `patient/Observation.rs?category=${OBSERVATION}|laboratory`]);
  });

  test('a silent re-authorization (prompt=none) keeps the narrowed scope: the remembered Consent covers only it', async () => {
    const who = await newPatient();
    const first = await authorizeThroughPages(t, params('launch/patient patient/Observation.rs'), {
      ...who,
      untick: ['patient/Observation.rs'],
      tick: [OBSERVATION_KINDS[1]!],
    });
    const { first: res, verifier } = await startAuthorizationIn(
      first.agent,
      params('launch/patient patient/Observation.rs', { prompt: 'none', state: 'silent' }),
    );
    const back = await browse(first.agent, res);
    if (back.kind !== 'app' || !back.code)
      throw new Error(`expected a silent code, got ${back.kind} ${back.kind === 'app' ? back.error : ''}`);
    const token = await exchange(t, back.code, verifier, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', OBSERVATION_KINDS[1]!]);
    expect(await consentsOf(t, who.patientId)).toHaveLength(1);
  });
});
