import { randomUUID } from 'node:crypto';
import {
  authorizeThroughPages,
  browse,
  consentServiceOf,
  exchangeCode,
  inputValues,
  launchStoreOf,
  postForm,
  startAuthorization,
} from '../../support/smart-flow.js';
import type { TestApp } from '../../support/test-app.js';
import {
  ACT_CODE,
  ACT_REASON,
  APP,
  CONFIDENTIALITY,
  JWT_BASE,
  REDIRECT,
  createHcsApp,
  introspect,
  jwtClaims,
  newUser,
  params,
  registerApp,
  type HcsApp,
} from './support.js';

/**
 * Interactive launches: the purpose of use asserted (parameter, system-qualified, client default),
 * who may assert what, and the exact HCS claims in opaque-token introspection and JWT access tokens.
 */

let h: HcsApp;
let t: TestApp;
const SNOMED = 'http://snomed.info/sct';
const PHYSICIAN = { system: SNOMED, code: '309343006', display: 'Physician' };
const ORG_ID = 'urn:oid:2.16.840.1.113883.19.5';

beforeAll(async () => {
  h = await createHcsApp();
  t = h.t;
  await registerApp(t, APP, { purposes_of_use: ['TREAT', 'HRESCH', 'HPAYMT', 'PATRQT'] });
  await registerApp(t, 'coc-app', { purposes_of_use: ['TREAT'], default_purposes_of_use: ['COC'] });
  await registerApp(t, 'any-purpose-app');
});

afterAll(async () => {
  await t.close();
});

function clinician(extra: Record<string, unknown> = {}) {
  return newUser(
    t,
    {
      fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`,
      staff: true,
      roles: [PHYSICIAN],
      purposesOfUse: ['TREAT'],
      clearance: 'R',
      npi: '1234567893',
      organizationId: ORG_ID,
      ...extra,
    },
    { organization: 'Good Health Clinic' },
  );
}

async function ehrLaunch(
  clientId: string,
  extra: Record<string, string>,
  who: Awaited<ReturnType<typeof clinician>>,
  aud = params(clientId, '').aud!,
) {
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  const launch = await launchStoreOf(t).create({ patient, clientId, createdBy: 'ehr', aud });
  const flow = await authorizeThroughPages(t, params(clientId, 'launch openid fhirUser patient/*.rs', { launch, aud, ...extra }), who);
  return { flow, patient };
}

describe('a clinician asserts a purpose of use', () => {
  test('purpose_of_use=TREAT: the exact IUA and HCS claims in introspection', async () => {
    const who = await clinician();
    const { flow, patient } = await ehrLaunch(APP, { purpose_of_use: 'TREAT' }, who);
    const token = await exchangeCode(t, flow, params(APP, ''));
    expect(token.status).toBe(200);
    // The token response carries SMART context only; the HCS claims are for resource servers.
    expect(token.body).not.toHaveProperty('extensions');
    const active = await introspect(t, token.body.access_token);
    expect(active).toMatchObject({ active: true, patient });
    expect(active.extensions).toEqual({
      ihe_iua: {
        subject_name: 'Dr Alex Rivera',
        subject_organization: 'Good Health Clinic',
        subject_organization_id: ORG_ID,
        subject_role: [PHYSICIAN],
        purpose_of_use: [{ system: ACT_REASON, code: 'TREAT', display: 'treatment' }],
        national_provider_identifier: '1234567893',
      },
      smart_authz_hcs: { confidentiality: { system: CONFIDENTIALITY, code: 'R', display: 'restricted' }, obligations: [] },
    });
  });

  test('the same claims inside a JWT access token, and in its introspection', async () => {
    const who = await clinician();
    const { flow } = await ehrLaunch(APP, { purpose_of_use: 'urn:oid:2.16.840.1.113883.5.8#TREAT' }, who, JWT_BASE);
    const token = await exchangeCode(t, flow, params(APP, ''));
    expect(token.status).toBe(200);
    const claims = jwtClaims(token.body.access_token);
    expect(claims.aud).toBe(JWT_BASE);
    expect(claims.extensions).toEqual((await introspect(t, token.body.access_token)).extensions);
    expect((claims.extensions as { ihe_iua: { purpose_of_use: unknown } }).ihe_iua.purpose_of_use).toEqual([
      { system: ACT_REASON, code: 'TREAT', display: 'treatment' },
    ]);
  });

  test('a system-qualified purpose with the THO URL, and a refresh keeps the claims', async () => {
    const who = await clinician();
    const patient = `pat-${randomUUID().slice(0, 6)}`;
    const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
    const flow = await authorizeThroughPages(
      t,
      params(APP, 'launch openid fhirUser patient/*.rs offline_access', { launch, purpose_of_use: `${ACT_REASON}|TREAT` }),
      who,
    );
    const token = await exchangeCode(t, flow, params(APP, ''));
    expect(token.body.refresh_token).toBeDefined();
    const refreshed = await t.request
      .post('/token')
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: token.body.refresh_token, client_id: APP });
    expect(refreshed.status).toBe(200);
    const [first, second] = [await introspect(t, token.body.access_token), await introspect(t, refreshed.body.access_token)];
    expect(second.extensions).toEqual(first.extensions);
  });

  test("no purpose sent: the client's default applies (COC, permitted through the user's TREAT)", async () => {
    const who = await clinician();
    const { flow } = await ehrLaunch('coc-app', {}, who);
    const token = await exchangeCode(t, flow, params('coc-app', ''));
    const active = await introspect(t, token.body.access_token);
    expect((active.extensions as { ihe_iua: unknown }).ihe_iua).toMatchObject({
      purpose_of_use: [{ system: ACT_REASON, code: 'COC', display: 'coordination of care' }],
    });
  });

  test('a patient acting for themselves asserts PATRQT without asking', async () => {
    const patientId = `p-${randomUUID().slice(0, 6)}`;
    const who = await newUser(t, { fhirUser: `Patient/${patientId}` }, { name: 'Pat Doe' });
    const flow = await authorizeThroughPages(t, params('any-purpose-app', 'openid launch/patient patient/*.rs'), who);
    const token = await exchangeCode(t, flow, params('any-purpose-app', ''));
    const active = await introspect(t, token.body.access_token);
    expect(active.extensions).toEqual({
      ihe_iua: { subject_name: 'Pat Doe', purpose_of_use: [{ system: ACT_REASON, code: 'PATRQT', display: 'patient requested' }] },
      smart_authz_hcs: { confidentiality: { system: CONFIDENTIALITY, code: 'N', display: 'normal' }, obligations: [] },
    });
  });
});

describe('purposes nobody may assert are refused, never dropped', () => {
  async function refusal(clientId: string, purpose: string, who?: Awaited<ReturnType<typeof clinician>>) {
    if (!who) {
      const { first } = await startAuthorization(t, params(clientId, 'openid fhirUser user/*.rs', { purpose_of_use: purpose }));
      expect(first.status).toBe(303);
      const back = new URL(first.headers.location!);
      expect(back.origin + back.pathname).toBe(REDIRECT);
      expect(back.searchParams.get('code')).toBeNull();
      return { error: back.searchParams.get('error'), description: back.searchParams.get('error_description') };
    }
    const flow = await authorizeThroughPages(t, params(clientId, 'openid fhirUser user/*.rs', { purpose_of_use: purpose }), who);
    expect(flow.code).toBeUndefined();
    const stop = flow.stop as { location?: URL };
    return { error: flow.error, description: stop.location?.searchParams.get('error_description') };
  }

  test('an unknown code, or another code system, at the authorization endpoint', async () => {
    expect(await refusal(APP, 'MARKETING')).toEqual({
      error: 'invalid_request',
      description: expect.stringMatching(/purpose_of_use: purpose of use "MARKETING" is not a v3-PurposeOfUse code/),
    });
    expect(await refusal(APP, 'urn:oid:1.2.3#TREAT')).toEqual({
      error: 'invalid_request',
      description: expect.stringMatching(/names the code system "urn:oid:1.2.3"/),
    });
  });

  test('a purpose the client did not register', async () => {
    expect(await refusal('coc-app', 'HPAYMT')).toEqual({
      error: 'invalid_request',
      description: 'purpose_of_use HPAYMT is not registered for this app',
    });
  });

  test('a purpose the user may not assert: back to the app after sign-in', async () => {
    const who = await clinician();
    expect(await refusal(APP, 'HRESCH', who)).toEqual({
      error: 'invalid_request',
      description: 'you are not permitted to assert purpose of use HRESCH',
    });
  });
});

describe('the policy maps purposes to obligations and ceilings', () => {
  test('research: DEID and NOREUSE, ceiling lowered from the user clearance R to N', async () => {
    const who = await clinician({ purposesOfUse: ['TREAT', 'HRESCH'] });
    const flow = await authorizeThroughPages(t, params(APP, 'openid fhirUser user/*.rs', { purpose_of_use: 'HRESCH' }), who);
    const token = await exchangeCode(t, flow, params(APP, ''));
    const hcs = ((await introspect(t, token.body.access_token)).extensions as { smart_authz_hcs: unknown }).smart_authz_hcs;
    expect(hcs).toEqual({
      confidentiality: { system: CONFIDENTIALITY, code: 'N', display: 'normal' },
      obligations: [
        { system: ACT_CODE, code: 'DEID', display: 'deidentify' },
        { system: ACT_CODE, code: 'NOREUSE', display: 'no reuse beyond purpose of use' },
      ],
    });
  });

  test('payment: minimum necessary, ceiling N', async () => {
    const who = await clinician({ purposesOfUse: ['HPAYMT'], clearance: 'V' });
    const flow = await authorizeThroughPages(t, params(APP, 'openid fhirUser user/*.rs', { purpose_of_use: 'HPAYMT' }), who);
    const token = await exchangeCode(t, flow, params(APP, ''));
    expect(((await introspect(t, token.body.access_token)).extensions as { smart_authz_hcs: unknown }).smart_authz_hcs).toEqual({
      confidentiality: { system: CONFIDENTIALITY, code: 'N', display: 'normal' },
      obligations: [{ system: ACT_CODE, code: 'MINEC', display: 'minimum necessary' }],
    });
  });
});

describe('test accounts get HTEST', () => {
  test('a test user: HTEST and test_data, whatever the client default; another purpose is refused', async () => {
    const who = await clinician({ testAccount: true });
    const { flow } = await ehrLaunch('coc-app', {}, who);
    const token = await exchangeCode(t, flow, params('coc-app', ''));
    const ext = (await introspect(t, token.body.access_token)).extensions as {
      ihe_iua: { purpose_of_use: unknown };
      smart_authz_hcs: { test_data?: boolean };
    };
    expect(ext.ihe_iua.purpose_of_use).toEqual([{ system: ACT_REASON, code: 'HTEST', display: 'test health data' }]);
    expect(ext.smart_authz_hcs.test_data).toBe(true);
    const refused = await authorizeThroughPages(
      t,
      params(APP, 'openid fhirUser user/*.rs', { purpose_of_use: 'TREAT' }),
      await clinician({ testAccount: true }),
    );
    expect(refused.error).toBe('invalid_request');
    expect((refused.stop as { location: URL }).location.searchParams.get('error_description')).toBe(
      'this is a test account: it may only assert purpose of use HTEST, not TREAT',
    );
  });

  test('a test client: every user of it gets HTEST', async () => {
    await registerApp(t, 'test-client-app', { test_account: true });
    const who = await clinician();
    const flow = await authorizeThroughPages(t, params('test-client-app', 'openid fhirUser user/*.rs'), who);
    const token = await exchangeCode(t, flow, params('test-client-app', ''));
    expect(((await introspect(t, token.body.access_token)).extensions as { smart_authz_hcs: unknown }).smart_authz_hcs).toMatchObject({
      test_data: true,
    });
  });
});

describe('the consent page shows the purpose', () => {
  test('and the Consent records the decided purpose', async () => {
    const who = await clinician({ purposesOfUse: ['TREAT', 'HRESCH'] });
    const patient = `pat-${randomUUID().slice(0, 6)}`;
    const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud: params(APP, '').aud! });
    const { agent, first } = await startAuthorization(
      t,
      params(APP, 'launch openid fhirUser patient/*.rs', { launch, purpose_of_use: 'HRESCH' }),
    );
    const login = await browse(agent, first);
    if (login.kind !== 'page') throw new Error('expected the login page');
    const consent = await browse(
      agent,
      await postForm(agent, login.uid, 'login', login.res, { username: who.username, password: who.password }),
    );
    if (consent.kind !== 'page') throw new Error('expected the consent page');
    expect(consent.res.text).toContain('<strong>Why:</strong> for health research.');
    const scopes = inputValues(consent.res.text, 'checkbox', 'scope');
    const done = await browse(agent, await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: scopes }));
    expect(done.kind === 'app' && done.code).toBeTruthy();
    const [recorded] = (await consentServiceOf(t).store.search({ patient: patient, count: 10, offset: 0 })).consents;
    expect(recorded!.resource.provision?.purpose).toEqual([{ system: ACT_REASON, code: 'HRESCH', display: 'healthcare research' }]);
  });
});
