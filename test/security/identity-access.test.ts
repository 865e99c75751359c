/*
 * Identity decides access, absence never does (issue 14, item 2; docs/security/identity-access.md).
 *
 * The attack: an account created through SCIM without the SMART extension (no fhirUser), or linked
 * to a Person, signs in to an app asking `openid fhirUser user/*.rs`, clicks Allow, and used to get a
 * token reading every patient. Every account here is made through the SCIM API, as an identity
 * provider would, and every authorization goes through the real pages with a cookie-keeping browser.
 */
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { createScimApp, GROUP_SCHEMA, SMART, SMART_GROUP, USER_SCHEMA, type ScimTestApp } from '../apis/scim/support.js';
import {
  authorizeThroughPages,
  browse,
  consentServiceOf,
  exchangeCode,
  launchStoreOf,
  postForm,
  signIn,
  type PageAnswers,
  type PageFlow,
} from '../support/smart-flow.js';
import { paramsFor, PASSWORD, registerSmartApp } from '../support/fixtures.js';
import { DEMO, DEMO_USERS, seedDemoUsers } from '../../src/app/demo-seed.js';
import { createUserStore } from '../../src/records/directory/user-store.js';

const REDIRECT = 'http://localhost:4000/callback';
// The demo app's registration (app/demo-seed.ts), under its own id.
const APP = 'identity-demo-app';
const APP_SCOPES = ['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs', 'user/*.rs'];
const ROLE_CLASS = 'http://terminology.hl7.org/CodeSystem/v3-RoleClass';
const NOT_LINKED = /not linked to a patient record or a staff role/;

let t: ScimTestApp;
let fhir: string;

const params = paramsFor(() => ({ client_id: APP, redirect_uri: REDIRECT, aud: fhir, state: 'st-identity' }));

/** A user made through POST /scim/v2/Users: `smart` is the SMART extension, or undefined for none at all. */
async function scimUser(smart?: Record<string, unknown>): Promise<PageAnswers & { id: string }> {
  const userName = `u-${randomUUID().slice(0, 8)}`;
  const body = {
    schemas: smart ? [USER_SCHEMA, SMART] : [USER_SCHEMA],
    userName,
    password: PASSWORD,
    name: { givenName: 'Test', familyName: userName },
    ...(smart ? { [SMART]: smart } : {}),
  };
  const res = await t.post('/Users', body);
  if (res.status !== 201) throw new Error(`SCIM create failed: ${res.status} ${res.text}`);
  return { id: res.body.id as string, username: userName, password: PASSWORD };
}

function scopesOf(token: { body: { scope?: string } }): string[] {
  return (token.body.scope ?? '').split(' ').filter(Boolean).sort();
}

function errorDescription(flow: PageFlow): string | null {
  return flow.stop.kind === 'app' ? flow.stop.location.searchParams.get('error_description') : null;
}

beforeAll(async () => {
  t = await createScimApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  fhir = t.config.fhirServers[0]!.base;
  await registerSmartApp(t, { id: APP, redirectUri: REDIRECT, scopes: APP_SCOPES });
});

afterAll(async () => {
  await t.close();
});

describe('an account linked to nothing is not staff', () => {
  test.each([
    ['created without the SMART extension', undefined],
    ['with fhirUser Person/…', { fhirUser: 'Person/someone' }],
    ['with fhirUser Person/… and the staff flag', { fhirUser: 'Person/someone', staff: true }],
    ['with a staff role but no fhirUser', { roles: [{ system: ROLE_CLASS, code: 'PROV' }] }],
    ['with fhirUser Practitioner/… but no staff role or flag', { fhirUser: 'Practitioner/no-role' }],
  ])('%s: Allow on openid fhirUser user/*.rs gives no code, only access_denied', async (_label, smart) => {
    const who = await scimUser(smart);
    const flow = await authorizeThroughPages(t, params('openid fhirUser user/*.rs'), { ...who, consent: 'allow' });
    expect(flow.code).toBeUndefined();
    expect(flow.error).toBe('access_denied');
    expect(errorDescription(flow)).toMatch(NOT_LINKED);
  });

  test('the page says why in words, carries the page CSP, offers no Allow, and Return gives the app access_denied', async () => {
    const who = await scimUser();
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), who);
    if (stop.kind !== 'page') throw new Error(`expected a page, got ${stop.kind}`);
    expect(stop.res.status).toBe(200);
    expect(stop.res.headers['content-type']).toMatch(/^text\/html/);
    expect(stop.res.headers['content-security-policy']).toMatch(/default-src/);
    expect(stop.res.text).toContain('Access not possible with this account');
    expect(stop.res.text).toMatch(NOT_LINKED);
    expect(stop.res.text).toContain('Ask your administrator');
    expect(stop.res.text).not.toContain('value="allow"');
    const back = await browse(agent, await postForm(agent, stop.uid, 'consent', stop.res, { decision: 'deny' }));
    expect(back.kind).toBe('app');
    if (back.kind !== 'app') return;
    expect(back.code).toBeUndefined();
    expect(back.error).toBe('access_denied');
    expect(back.location.searchParams.get('state')).toBe('st-identity');
  });

  test('it may still sign in to an app: openid fhirUser profile, and no refresh token', async () => {
    const who = await scimUser();
    const flow = await authorizeThroughPages(t, params('openid fhirUser profile offline_access'), who);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(scopesOf(token)).toEqual(['fhirUser', 'openid', 'profile']);
    expect(token.body).not.toHaveProperty('refresh_token');
    expect(token.body).not.toHaveProperty('patient');
    expect(decodeJwt(token.body.id_token as string).sub).toBe(who.id);
  });

  test('asking for patient/ data in a standalone launch: no patient to choose, no patient context', async () => {
    const who = await scimUser({ fhirUser: 'Person/p-1' });
    const { agent, stop } = await signIn(t, params('openid fhirUser launch/patient patient/*.rs'), who);
    if (stop.kind !== 'page') throw new Error(`expected a page, got ${stop.kind}`);
    expect(stop.prompt).toBe('select_patient');
    expect(stop.res.text).toMatch(NOT_LINKED);
    expect(stop.res.text).not.toContain('/patient-search"');
    // Choosing or searching anyway is refused.
    const chosen = await postForm(agent, stop.uid, 'patient', stop.res, { patient: 'pat-1' });
    expect(chosen.status).toBe(403);
    const searched = await postForm(agent, stop.uid, 'patient-search', stop.res, { name: 'Jones' });
    expect(searched.status).toBe(403);
  });

  test('in an EHR launch naming a patient (pinned to this very user): no patient context, no Consent, access_denied', async () => {
    const who = await scimUser();
    const patientId = `ehr-${randomUUID().slice(0, 8)}`;
    const launch = await launchStoreOf(t).create({ patient: patientId, clientId: APP, createdBy: 'ehr', user: who.id, aud: fhir });
    const flow = await authorizeThroughPages(t, params('launch openid fhirUser patient/*.rs', { launch }), { ...who, consent: 'allow' });
    expect(flow.code).toBeUndefined();
    expect(flow.error).toBe('access_denied');
    expect(errorDescription(flow)).toMatch(NOT_LINKED);
    expect((await consentServiceOf(t).store.search({ patient: patientId, count: 10, offset: 0 })).consents).toEqual([]);
  });
});

describe('a patient or caregiver is not staff', () => {
  test('a Patient user asking openid fhirUser user/*.rs is told why and the app gets access_denied', async () => {
    const who = await scimUser({ fhirUser: 'Patient/pat-7' });
    const flow = await authorizeThroughPages(t, params('openid fhirUser user/*.rs'), who);
    expect(flow.code).toBeUndefined();
    expect(flow.error).toBe('access_denied');
    expect(errorDescription(flow)).toMatch(/not to a staff role/);
  });

  test('a Patient user holding a staff role still gets their own patient/ data and no user/ scope', async () => {
    const who = await scimUser({ fhirUser: 'Patient/pat-8', roles: [{ system: ROLE_CLASS, code: 'PROV' }], staff: true });
    const flow = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/*.rs user/*.rs'), who);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(scopesOf(token)).toEqual(['fhirUser', 'launch/patient', 'openid', 'patient/*.rs']);
    expect(token.body.patient).toBe('pat-8');
  });

  test('a caregiver gets only the patients they act for, never user/', async () => {
    const who = await scimUser({ fhirUser: 'RelatedPerson/rp-1', proxyPatients: [{ value: 'Patient/kid-1', display: 'Kid' }] });
    const flow = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/*.rs user/*.rs'), who);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(scopesOf(token)).not.toContain('user/*.rs');
    expect(token.body.patient).toBe('kid-1');
  });
});

describe('staff keep user/ scopes', () => {
  async function expectUserScopes(who: PageAnswers): Promise<void> {
    const flow = await authorizeThroughPages(t, params('openid fhirUser user/*.rs'), who);
    const token = await exchangeCode(t, flow, params(''));
    expect(token.status).toBe(200);
    expect(scopesOf(token)).toEqual(['fhirUser', 'openid', 'user/*.rs']);
  }

  test('a Practitioner holding a staff role of the HCS policy (v3-RoleClass PROV)', async () => {
    await expectUserScopes(
      await scimUser({ fhirUser: 'Practitioner/p-role', roles: [{ system: ROLE_CLASS, code: 'PROV', display: 'healthcare provider' }] }),
    );
  });

  test('a Practitioner with the SCIM staff flag', async () => {
    await expectUserScopes(await scimUser({ fhirUser: 'Practitioner/p-flag', staff: true }));
  });

  test('a Practitioner who is a member of a SCIM group conferring a staff role, and not once removed from it', async () => {
    const who = await scimUser({ fhirUser: 'Practitioner/p-group' });
    const group = await t.post('/Groups', {
      schemas: [GROUP_SCHEMA, SMART_GROUP],
      displayName: `Ward ${randomUUID().slice(0, 6)}`,
      members: [{ value: who.id }],
      [SMART_GROUP]: { roles: [{ system: ROLE_CLASS, code: 'EMP' }] },
    });
    expect(group.status).toBe(201);
    await expectUserScopes(who);
    expect((await t.del(`/Groups/${group.body.id as string}`)).status).toBe(204);
    const flow = await authorizeThroughPages(t, params('openid fhirUser user/*.rs'), who);
    expect(flow.error).toBe('access_denied');
  });

  test('the demo clinician dr.smith, as seeded', async () => {
    const users = createUserStore(t.config, t.redis, t.keyspace);
    await seedDemoUsers(users);
    expect(DEMO_USERS[0].userName).toBe('dr.smith');
    await expectUserScopes({ username: 'dr.smith', password: DEMO.users['dr.smith'] });
  });
});
