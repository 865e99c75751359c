import { randomUUID } from 'node:crypto';
import { createTestApp, type TestApp } from '../../../support/test-app.js';
import { directoryOf } from '../login/support.js';
import { SMART_USER_SCHEMA } from '../../../../src/records/directory/model.js';
import { longDate, safeClientUri, safeLogoUri } from '../../../../src/smart/interaction/pages/client-display.js';
import { consentProblems } from '../../../records/consent/consent-shape.js';
import {
  authorizeThroughPages,
  browse,
  checkedValues,
  consentServiceOf,
  consentsOf,
  exchange,
  exchangeCode,
  grantContextsOf,
  launchStoreOf,
  openConsentPage,
  postForm,
  startAuthorization,
} from '../../../support/smart-flow.js';
import {
  createPerson,
  introspect,
  paramsFor,
  registerEhrLauncher,
  registerResourceServer,
  registerSmartApp,
  type Person,
} from '../../../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from '../fake-fhir.js';

/**
 * The consent page and the patient's Consent (consent/): what the page shows, that every Allow and
 * Deny becomes a valid R4 Consent, that no token with patient/ scopes exists without an active one,
 * and remembered consent (only the difference is asked).
 */

const REDIRECT = 'https://growth.example.org/cb';
const APP = 'growth-tracker';
const FORGETFUL = 'forgetful-app';
const SCOPES = ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.cruds', 'user/*.rs'];

let fake: FakeFhir;
let t: TestApp;

const params = paramsFor(() => ({ client_id: APP, redirect_uri: REDIRECT, aud: fake.base, state: 'st-7' }));

/** A patient user with a record of their own nobody has consented for yet. */
async function newPatient(): Promise<Person & { patientId: string }> {
  const patientId = `p-${randomUUID().slice(0, 8)}`;
  return {
    ...(await createPerson(
      t,
      { fhirUser: `Patient/${patientId}` },
      { userName: patientId, name: { givenName: 'Pat', familyName: patientId } },
    )),
    patientId,
  };
}

function newUser(smart: Record<string, unknown>): Promise<Person> {
  return createPerson(t, smart, { name: { givenName: 'Chris', familyName: 'Carer' } });
}

function refresh(refreshToken: string, clientId = APP) {
  return t.request.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });
}

async function grantOfCode(code: string): Promise<string> {
  const found = await t.app.AuthorizationCode.find(code);
  if (!found?.grantId) throw new Error('no grant for the code');
  return found.grantId;
}

beforeAll(async () => {
  fake = await startFakeFhir();
  fake.patients.push(
    { id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23' },
    { id: 'sam-1', given: 'Sam', family: 'Jones', birthDate: '2015-09-01' },
  );
  // Remembered consent as it applies to standalone launches (AUTHZ_CONSENT_REMEMBER=always); the
  // default, where a standalone launch always shows the page, is tested in test/interop/limited-access.test.ts.
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_CONSENT_REMEMBER: 'always' });
  await registerSmartApp(t, {
    id: APP,
    name: 'Growth Tracker',
    redirectUri: REDIRECT,
    scopes: SCOPES,
    metadata: {
      logo_uri: 'https://cdn.example.org/growth/logo.png',
      client_uri: 'https://growth.example.org/about',
      purposes_of_use: ['TREAT', 'PATRQT', 'HRESCH'],
    },
  });
  await registerSmartApp(t, {
    id: FORGETFUL,
    name: 'Forgetful',
    redirectUri: REDIRECT,
    scopes: SCOPES,
    metadata: { smart_remember_consent: false },
  });
  await registerEhrLauncher(t);
  await registerResourceServer(t);
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

describe('the consent page', () => {
  test('shows the app (https logo, home page), the patient, why and for how long', async () => {
    const who = await newPatient();
    const { html } = await openConsentPage(
      t,
      params('openid launch/patient patient/Observation.rs offline_access', { purpose_of_use: 'PATRQT' }),
      who,
    );
    expect(html).toContain('<img src="https://cdn.example.org/growth/logo.png" alt="" width="48" height="48" class="app-logo">');
    expect(html).toContain('<a href="https://growth.example.org/about" rel="noopener noreferrer">About this app</a>');
    expect(html).toContain('<strong>Growth Tracker</strong> is asking for access to <strong>your own record</strong>');
    expect(html).toContain('<strong>Why:</strong> at the patient’s own request.');
    const until =
      /<time datetime="([^"]+)">([^<]+)<\/time> if you let it keep access while you are away; otherwise only while you are signed in/.exec(
        html,
      );
    expect(until).not.toBeNull();
    const expected = Date.now() + t.config.ttl.refreshToken * 1000;
    expect(Math.abs(Date.parse(until![1]!) - expected)).toBeLessThan(60_000);
    expect(until![2]).toBe(longDate(Date.parse(until![1]!)));
    expect(html).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
  });

  test('reads v1, v2 and granular scopes as sentences; without offline_access access lasts while signed in', async () => {
    const who = await newPatient();
    const scope = [
      'openid',
      'launch/patient',
      'patient/Observation.read',
      'patient/Condition.rs',
      'patient/MedicationRequest.cruds',
      'patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs',
    ].join(' ');
    const { html } = await openConsentPage(t, params(scope), who);
    expect(html).toContain('<li>Confirm who you are when you sign in to it</li>');
    expect(checkedValues(html, 'scope')).toEqual(scope.split(' ').slice(2));
    expect(html).toContain('>Read and search your Observation records (lab results, vital signs and other measurements)</label>');
    expect(html).toContain('>Read and search your Condition records (problems and diagnoses)</label>');
    expect(html).toContain('>Create, read, update, delete and search your MedicationRequest records (prescriptions)</label>');
    expect(html).toContain(
      '>Read and search your Observation records (lab results, vital signs and other measurements), only those in the category “vital signs”</label>',
    );
    expect(html).toContain('<strong>For how long:</strong>\n    only while you are signed in.');
    // No purpose_of_use: a patient acting for themselves asserts PATRQT (domain/hcs/decision.ts).
    expect(html).toContain('<strong>Why:</strong> at the patient’s own request.');
  });

  test('purpose_of_use must be well-formed and registered for the app', async () => {
    for (const purpose of ['MARKETING', 'treat', 'TREAT;DROP']) {
      const { first } = await startAuthorization(t, params('openid launch/patient patient/*.rs', { purpose_of_use: purpose }));
      expect(first.status).toBe(303);
      const back = new URL(first.headers.location!);
      expect(back.searchParams.get('error')).toBe('invalid_request');
      expect(back.searchParams.get('error_description')).toMatch(/purpose_of_use/);
    }
  });

  test('a user who is not someone who can consent (fhirUser Person/…) gets access_denied, not a Consent', async () => {
    const who = await newUser({ fhirUser: 'Person/someone' });
    const patientId = `ehr-${randomUUID().slice(0, 8)}`;
    const launch = await launchStoreOf(t).create({ patient: patientId, clientId: APP, createdBy: 'ehr', aud: fake.base });
    const flow = await authorizeThroughPages(t, params('launch patient/*.rs', { launch }), who);
    expect(flow.error).toBe('access_denied');
    // An account linked to nothing gets no patient context at all (identity-access.md), so the refusal says that.
    expect(flow.stop.kind === 'app' && flow.stop.location.searchParams.get('error_description')).toMatch(
      /not linked to a patient record or a staff role/,
    );
    expect(await consentsOf(t, patientId)).toEqual([]);
  });
});

describe('Allow and Deny become R4 Consents', () => {
  test('Allow records an active permit, tied to the grant, named by the token', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(
      t,
      params('openid fhirUser launch/patient patient/Observation.rs patient/Condition.write'),
      who,
    );
    const grantId = await grantOfCode(flow.code!);
    const [consent, ...others] = await consentsOf(t, who.patientId);
    expect(others).toEqual([]);
    expect(consentProblems(consent!.resource as unknown as Record<string, unknown>)).toEqual([]);
    expect(consent!).toMatchObject({ status: 'active', clientId: APP, performer: `Patient/${who.patientId}`, patientId: who.patientId });
    expect(consent!.scopes.sort()).toEqual(['fhirUser', 'launch/patient', 'openid', 'patient/Condition.write', 'patient/Observation.rs']);
    expect(consent!.resource.provision).toMatchObject({
      type: 'permit',
      action: [{ coding: [{ code: 'access' }] }, { coding: [{ code: 'correct' }] }],
      purpose: [{ code: 'PATRQT' }],
      class: [{ code: 'Condition' }, { code: 'Observation' }],
    });
    // Without offline_access the Consent lasts as long as a sign-in session.
    expect(consent!.end! - Date.parse(consent!.resource.dateTime)).toBe(t.config.ttl.session * 1000);
    expect(await consentServiceOf(t).store.grantsOf(consent!.resource.id)).toEqual([grantId]);
    expect((await grantContextsOf(t).get(grantId))?.consentId).toBe(consent!.resource.id);

    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(token.body).not.toHaveProperty('consent');
    expect(token.body).not.toHaveProperty('consentId');
    const info = await introspect(t, token.body.access_token);
    expect(info.body).toMatchObject({ active: true, patient: who.patientId, consent: `Consent/${consent!.resource.id}` });
  });

  test('with offline_access the Consent lasts as long as the refresh token', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/*.rs offline_access'), who);
    expect(flow.code).toBeDefined();
    const [consent] = await consentsOf(t, who.patientId);
    expect(consent!.end! - Date.parse(consent!.resource.dateTime)).toBe(t.config.ttl.refreshToken * 1000);
    expect(consent!.resource.provision?.class).toBeUndefined();
  });

  test('unticking a scope narrows the token and the Consent', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(
      t,
      params('openid launch/patient patient/Observation.rs patient/Condition.rs offline_access'),
      { ...who, untick: ['patient/Condition.rs', 'offline_access'] },
    );
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body.scope.split(' ').sort()).toEqual(['launch/patient', 'openid', 'patient/Observation.rs']);
    expect(token.body.refresh_token).toBeUndefined();
    const [consent] = await consentsOf(t, who.patientId);
    expect(consent!.scopes.sort()).toEqual(['launch/patient', 'openid', 'patient/Observation.rs']);
    expect(consent!.resource.provision?.class).toEqual([{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }]);
  });

  test('Deny records a rejected Consent of what was asked, and the app gets access_denied', async () => {
    const who = await newUser({ fhirUser: `Patient/p-${randomUUID().slice(0, 8)}`, purposesOfUse: ['PATRQT', 'HRESCH'] });
    const patientId = (await directoryOf(t).users.findByUserName(who.username))![SMART_USER_SCHEMA]!.fhirUser!.split('/')[1]!;
    const flow = await authorizeThroughPages(t, params('openid launch/patient patient/*.rs', { purpose_of_use: 'HRESCH' }), {
      ...who,
      consent: 'deny',
    });
    expect(flow.error).toBe('access_denied');
    const [consent, ...others] = await consentsOf(t, patientId);
    expect(others).toEqual([]);
    expect(consentProblems(consent!.resource as unknown as Record<string, unknown>)).toEqual([]);
    expect(consent!).toMatchObject({ status: 'rejected', scopes: ['openid', 'launch/patient', 'patient/*.rs'] });
    expect(consent!.resource.policyRule?.coding[0]?.code).toBe('OPTOUT');
    expect(consent!.resource.provision).toMatchObject({ type: 'deny', purpose: [{ code: 'HRESCH' }] });
    expect(await consentServiceOf(t).store.grantsOf(consent!.resource.id)).toEqual([]);
  });

  test('a caregiver consents as a RelatedPerson for the patient they act for', async () => {
    const carerId = `carer-${randomUUID().slice(0, 8)}`;
    const patientId = `kid-${randomUUID().slice(0, 8)}`;
    const who = await newUser({ fhirUser: `RelatedPerson/${carerId}`, proxyPatients: [{ value: patientId, display: 'Kid Jones' }] });
    const flow = await authorizeThroughPages(t, params('launch/patient patient/Immunization.rs'), who);
    expect(flow.pages).toEqual(['login', 'select_patient', 'consent']);
    expect(flow.code).toBeDefined();
    const [consent] = await consentsOf(t, patientId);
    expect(consentProblems(consent!.resource as unknown as Record<string, unknown>)).toEqual([]);
    expect(consent!.resource.performer).toEqual([{ reference: `RelatedPerson/${carerId}`, display: 'Chris Carer' }]);
    expect(consent!.resource.verification?.[0]?.verifiedWith).toEqual({ reference: `RelatedPerson/${carerId}` });
  });

  test('a clinician in an EHR launch consents as a Practitioner, with the requested purpose and their clearance', async () => {
    const drId = `dr-${randomUUID().slice(0, 8)}`;
    const who = await newUser({ fhirUser: `Practitioner/${drId}`, staff: true, clearance: 'N', purposesOfUse: ['TREAT'] });
    const patientId = `ehr-${randomUUID().slice(0, 8)}`;
    const launch = await launchStoreOf(t).create({ patient: patientId, clientId: APP, createdBy: 'ehr', aud: fake.base });
    const flow = await authorizeThroughPages(t, params('launch openid fhirUser patient/*.rs', { launch, purpose_of_use: 'TREAT' }), who);
    expect(flow.pages).toEqual(['login', 'consent']);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.body.patient).toBe(patientId);
    const [consent] = await consentsOf(t, patientId);
    expect(consentProblems(consent!.resource as unknown as Record<string, unknown>)).toEqual([]);
    expect(consent!.resource.performer[0]!.reference).toBe(`Practitioner/${drId}`);
    expect(consent!.resource.provision?.purpose).toEqual([expect.objectContaining({ code: 'TREAT' })]);
    expect(consent!.resource.provision?.provision?.[0]).toMatchObject({ type: 'deny', securityLabel: [{ code: 'R' }, { code: 'V' }] });
  });

  test('user/ scopes without patient data need no Consent', async () => {
    const drId = `dr-${randomUUID().slice(0, 8)}`;
    const who = await newUser({ fhirUser: `Practitioner/${drId}`, staff: true });
    const flow = await authorizeThroughPages(t, params('openid fhirUser user/Observation.rs'), who);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect((await introspect(t, token.body.access_token)).body).not.toHaveProperty('consent');
    expect(await consentServiceOf(t).store.decidedBy(`Practitioner/${drId}`, 10)).toEqual([]);
  });
});

describe('no token with patient/ scopes without an active Consent', () => {
  test('a grant not tied to a Consent gets invalid_grant at the code exchange, and ends', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), who);
    const grantId = await grantOfCode(flow.code!);
    await t.redis.del(t.keyspace.grantConsent(grantId));
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(400);
    expect(token.body).toMatchObject({ error: 'invalid_grant', error_description: 'grant request is invalid' });
    expect(await t.app.Grant.find(grantId)).toBeUndefined();
  });

  test('a Consent withdrawn between the code and its exchange: invalid_grant', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), who);
    const [consent] = await consentsOf(t, who.patientId);
    await consentServiceOf(t).withdraw(consent!.resource.id, { reference: `Patient/${who.patientId}` });
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(400);
    expect(token.body.error).toBe('invalid_grant');
  });

  test('an expired Consent ends the grant at the next refresh', async () => {
    const who = await newPatient();
    const flow = await authorizeThroughPages(t, params('launch/patient patient/*.rs offline_access'), who);
    const token = await exchangeCode(t, flow, params(''));
    const fresh = await refresh(token.body.refresh_token);
    expect(fresh.status).toBe(200);
    const [consent] = await consentsOf(t, who.patientId);
    await t.redis.hset(t.keyspace.consent(consent!.resource.id), 'end', String(Date.now() - 1000));
    const after = await refresh(fresh.body.refresh_token);
    expect(after.status).toBe(400);
    expect(after.body.error).toBe('invalid_grant');
    expect((await introspect(t, fresh.body.access_token)).body).toEqual({ active: false });
    // Nor is it remembered: the next authorization asks again.
    expect((await authorizeThroughPages(t, params('launch/patient patient/*.rs offline_access'), who)).pages).toEqual(['login', 'consent']);
  });
});

describe('remembered consent', () => {
  test('the same person, app and patient with covered scopes: no page, even in a new browser; the grant stands on the same Consent', async () => {
    const who = await newPatient();
    const first = await authorizeThroughPages(t, params('openid launch/patient patient/Observation.rs patient/Condition.rs'), who);
    expect(first.pages).toEqual(['login', 'consent']);
    const second = await authorizeThroughPages(t, params('openid launch/patient patient/Observation.rs'), who);
    expect(second.pages).toEqual(['login']);
    const token = await exchangeCode(t, second, params(''));
    expect(token.body.scope.split(' ').sort()).toEqual(['launch/patient', 'openid', 'patient/Observation.rs']);
    const consents = await consentsOf(t, who.patientId);
    expect(consents).toHaveLength(1);
    expect((await introspect(t, token.body.access_token)).body.consent).toBe(`Consent/${consents[0]!.resource.id}`);
    expect(await consentServiceOf(t).store.grantsOf(consents[0]!.resource.id)).toHaveLength(2);
  });

  test('new scopes: only the difference is asked, and Allow records a Consent for the union', async () => {
    const who = await newPatient();
    await authorizeThroughPages(t, params('openid launch/patient patient/Observation.rs'), who);
    const { agent, verifier, consent, html } = await openConsentPage(
      t,
      params('openid launch/patient patient/Observation.rs patient/Condition.rs offline_access'),
      who,
    );
    expect(html).toContain('<h2 id="allowed-heading">You have already allowed the app to</h2>');
    expect(html).toMatch(/allowed-heading[\s\S]*<li>Read and search your Observation records[^<]*<\/li>[\s\S]*<\/section>/);
    expect(html).toContain('<legend>New: you choose whether the app may also</legend>');
    expect(checkedValues(html, 'scope')).toEqual(['patient/Condition.rs', 'offline_access']);
    const back = await browse(
      agent,
      await postForm(agent, consent.uid, 'consent', consent.res, { decision: 'allow', scope: ['patient/Condition.rs'] }),
    );
    if (back.kind !== 'app' || !back.code) throw new Error('no code');
    const token = await exchange(t, back.code, verifier, params(''));
    expect(token.body.scope.split(' ').sort()).toEqual(['launch/patient', 'openid', 'patient/Condition.rs', 'patient/Observation.rs']);
    // Both Consents can carry the same second, so they are told apart by what they allow.
    const both = await consentsOf(t, who.patientId);
    expect(both).toHaveLength(2);
    const newest = both.find((c) => c.scopes.includes('patient/Condition.rs'));
    const older = both.find((c) => !c.scopes.includes('patient/Condition.rs'));
    expect(newest!.scopes.sort()).toEqual(['launch/patient', 'openid', 'patient/Condition.rs', 'patient/Observation.rs']);
    expect(older!.scopes.sort()).toEqual(['launch/patient', 'openid', 'patient/Observation.rs']);
    expect((await introspect(t, token.body.access_token)).body.consent).toBe(`Consent/${newest!.resource.id}`);
    // offline_access stayed unticked: asking for it again asks again, nothing else.
    const third = await openConsentPage(t, params('openid launch/patient patient/Observation.rs patient/Condition.rs offline_access'), who);
    expect(checkedValues(third.html, 'scope')).toEqual(['offline_access']);
  });

  test('another patient is asked for anew', async () => {
    const carerId = `carer-${randomUUID().slice(0, 8)}`;
    const who = await newUser({ fhirUser: `RelatedPerson/${carerId}`, proxyPatients: [{ value: 'kid-a' }, { value: 'kid-b' }] });
    const first = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), { ...who, patient: 'kid-a' });
    expect(first.pages).toEqual(['login', 'select_patient', 'consent']);
    const again = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), { ...who, patient: 'kid-a' });
    expect(again.pages).toEqual(['login', 'select_patient']);
    const other = await authorizeThroughPages(t, params('launch/patient patient/*.rs'), { ...who, patient: 'kid-b' });
    expect(other.pages).toEqual(['login', 'select_patient', 'consent']);
  });

  test('a client registered with smart_remember_consent false asks every time', async () => {
    const who = await newPatient();
    const p = params('launch/patient patient/*.rs', { client_id: FORGETFUL });
    expect((await authorizeThroughPages(t, p, who)).pages).toEqual(['login', 'consent']);
    const again = await authorizeThroughPages(t, p, who);
    expect(again.pages).toEqual(['login', 'consent']);
    expect(again.code).toBeDefined();
    expect(await consentsOf(t, who.patientId)).toHaveLength(2);
  });

  test('a withdrawn Consent is not remembered', async () => {
    const who = await newPatient();
    await authorizeThroughPages(t, params('launch/patient patient/*.rs'), who);
    const [consent] = await consentsOf(t, who.patientId);
    await consentServiceOf(t).withdraw(consent!.resource.id, { reference: `Patient/${who.patientId}` });
    expect((await authorizeThroughPages(t, params('launch/patient patient/*.rs'), who)).pages).toEqual(['login', 'consent']);
  });

  test('smart_remember_consent must be a boolean', async () => {
    await expect(
      t.registry.upsert(
        {
          client_id: 'bad-remember',
          smart_client_kind: 'public_app',
          redirect_uris: [REDIRECT],
          smart_scopes: ['openid'],
          smart_remember_consent: 'yes',
        },
        { generateSecret: false },
      ),
    ).rejects.toThrow(/smart_remember_consent must be true or false/);
  });
});

describe('hostile client metadata', () => {
  test('the name is escaped; an http logo is not shown; javascript: URLs are refused at registration', async () => {
    await registerSmartApp(t, {
      id: 'hostile',
      name: '<script>alert("pwned")</script><img src=x onerror=alert(1)>',
      redirectUri: REDIRECT,
      scopes: ['launch/patient', 'patient/*.rs'],
      metadata: { logo_uri: 'http://cdn.example.org/logo.png', client_uri: 'https://evil.example.org/"><script>alert(2)</script>' },
    });
    const who = await newPatient();
    const { html } = await openConsentPage(t, params('launch/patient patient/*.rs', { client_id: 'hostile' }), who);
    expect(html).not.toMatch(/<script|<img src=x/i);
    expect(html).toContain('<strong>&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</strong>');
    expect(html).not.toContain('<img ');
    expect(html).toContain('<a href="https://evil.example.org/%22%3E%3Cscript%3Ealert(2)%3C/script%3E" rel="noopener noreferrer">');

    for (const field of ['logo_uri', 'client_uri']) {
      await expect(
        t.registry.upsert(
          {
            client_id: 'hostile-js',
            smart_client_kind: 'public_app',
            redirect_uris: [REDIRECT],
            smart_scopes: ['openid'],
            [field]: 'javascript:alert(1)',
          },
          { generateSecret: false },
        ),
      ).rejects.toThrow(new RegExp(`${field} must be a web uri`));
    }
  });

  test('only https logos and http(s) home pages pass, whatever is stored', () => {
    expect(safeLogoUri('https://cdn.example.org/a.png')).toBe('https://cdn.example.org/a.png');
    for (const bad of [
      'http://cdn.example.org/a.png',
      'javascript:alert(1)',
      'data:image/png;base64,AAAA',
      '//cdn.example.org/a.png',
      'not a url',
      undefined,
      42,
    ]) {
      expect(safeLogoUri(bad)).toBeUndefined();
    }
    expect(safeClientUri('http://app.example.org/')).toBe('http://app.example.org/');
    for (const bad of ['javascript:alert(1)', 'data:text/html,<script>', 'vbscript:x', 'mailto:a@b.c', ''])
      expect(safeClientUri(bad)).toBeUndefined();
  });
});
