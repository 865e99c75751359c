import { randomUUID } from 'node:crypto';
import supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { longDate } from '../../../src/smart/interaction/pages/client-display.js';
import { MANAGE_CLIENT_ID } from '../../../src/oauth/clients/manage-client.js';
import {
  authorizeThroughPages,
  consentServiceOf,
  csrfFrom,
  exchangeCode,
  launchStoreOf,
  type Agent,
  type AuthorizeParams,
  type PageAnswers,
} from '../../support/smart-flow.js';
import { createPerson, introspect, registerResourceServer, registerSmartApp, type Person } from '../../support/fixtures.js';

/**
 * The management page (`management_endpoint`): sign-in through this server's own OpenID Connect
 * flow, the list of apps with access, withdrawal, and who may see and withdraw what.
 */

const REDIRECT = 'https://apps.example.org/cb';
const FHIR = 'http://localhost:8080/fhir';
const ISSUER = 'http://localhost:3000';

let t: TestApp;

function params(clientId: string, scope: string, extra: Partial<AuthorizeParams> = {}): AuthorizeParams {
  return { client_id: clientId, redirect_uri: REDIRECT, scope, aud: FHIR, ...extra };
}

function newUser(smart: Record<string, unknown>, name = { givenName: 'Pat', familyName: 'Jones' }): Promise<Person> {
  return createPerson(t, smart, { name });
}

function refresh(clientId: string, refreshToken: string) {
  return t.request.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });
}

/** Every Set-Cookie header seen while following redirects. */
const cookiesSeen: string[] = [];

/** Follows redirects on this server (the issuer's host or the test host), as a browser would. */
async function follow(agent: Agent, from: supertest.Response): Promise<supertest.Response> {
  let res = from;
  for (let i = 0; i < 15 && (res.status === 302 || res.status === 303); i++) {
    cookiesSeen.push(...([] as string[]).concat(res.headers['set-cookie'] ?? []));
    const location = new URL(res.headers.location!, ISSUER);
    if (location.origin !== ISSUER && location.hostname !== '127.0.0.1') return res;
    res = await agent.get(`${location.pathname}${location.search}`).set('Accept', 'text/html');
  }
  return res;
}

/** Opens /manage in a browser, signing in on this server's sign-in page when asked. */
async function openManage(
  who: PageAnswers,
  agent: Agent = supertest.agent(t.app.callback()),
): Promise<{ agent: Agent; page: supertest.Response; steps: string[] }> {
  const steps: string[] = [];
  let res = await follow(agent, await agent.get('/manage').set('Accept', 'text/html'));
  const login = /action="\/interaction\/([^/"]+)\/login"/.exec(res.text);
  if (login) {
    steps.push('login');
    const form = new URLSearchParams({ csrf: csrfFrom(res.text), username: who.username, password: who.password });
    res = await follow(
      agent,
      await agent.post(`/interaction/${login[1]}/login`).type('form').set('Accept', 'text/html').send(form.toString()),
    );
  }
  if (/action="\/interaction\/[^/"]+\/consent"/.test(res.text)) steps.push('consent');
  return { agent, page: res, steps };
}

function withdrawForms(html: string): string[] {
  return [...html.matchAll(/action="\/manage\/consents\/([^/"]+)\/withdraw"/g)].map((m) => m[1]!);
}

async function withdraw(agent: Agent, page: supertest.Response, id: string, csrf = csrfFrom(page.text)) {
  return agent
    .post(`/manage/consents/${id}/withdraw`)
    .type('form')
    .set('Accept', 'text/html')
    .send(new URLSearchParams({ csrf }).toString());
}

async function consentFor(patientId: string, clientId: string) {
  const page = await consentServiceOf(t).store.search({ patient: patientId, count: 50, offset: 0 });
  const found = page.consents.find((c) => c.clientId === clientId && c.status === 'active');
  if (!found) throw new Error(`no active consent of ${clientId} for ${patientId}`);
  return found;
}

const patientId = `pm-${randomUUID().slice(0, 6)}`;
const sibling = `pm2-${randomUUID().slice(0, 6)}`;
let patient: PageAnswers;
let alpha: { access: string; refresh: string };

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  const scopes = ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs'];
  for (const [id, name] of [
    ['alpha', 'App Alpha'],
    ['beta', 'App Beta'],
    ['gamma', '<script>alert("gamma")</script>'],
  ] as const) {
    await registerSmartApp(t, { id, name, redirectUri: REDIRECT, scopes });
  }
  await registerResourceServer(t);
  patient = await newUser({ fhirUser: `Patient/${patientId}` });
  // Alpha: allowed and used (a token was issued); Beta: allowed, never used.
  const a = await authorizeThroughPages(t, params('alpha', 'openid launch/patient patient/Observation.rs offline_access'), patient);
  const token = await exchangeCode(t, a, params('alpha', ''));
  alpha = { access: token.body.access_token, refresh: token.body.refresh_token };
  await authorizeThroughPages(t, params('beta', 'launch/patient patient/Condition.rs'), patient);
});
afterAll(() => t.close());

describe('signing in', () => {
  test('runs this server’s own sign-in and asks no consent for itself; strict headers, no script', async () => {
    const { page, steps } = await openManage(patient);
    expect(steps).toEqual(['login']);
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.text).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
    const client = await t.registry.get(MANAGE_CLIENT_ID);
    expect(client).toMatchObject({
      smart_client_kind: 'public_app',
      redirect_uris: [`${ISSUER}/manage/callback`],
      smart_scopes: ['openid'],
    });
  });

  test('PKCE, no FHIR server; the sign-in state and the session live in signed, httpOnly, SameSite=Lax cookies for /manage', async () => {
    const agent = supertest.agent(t.app.callback());
    const start = await agent.get('/manage');
    expect(start.status).toBe(303);
    const authorize = new URL(start.headers.location!, ISSUER);
    expect(authorize.pathname).toBe('/authorize');
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      client_id: MANAGE_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      code_challenge_method: 'S256',
      redirect_uri: `${ISSUER}/manage/callback`,
    });
    expect(authorize.searchParams.has('aud')).toBe(false);
    const pending = ([] as string[]).concat(start.headers['set-cookie'] ?? []).find((c) => c.startsWith('manage_signin='));
    expect(pending).toMatch(/path=\/manage; .*samesite=lax; httponly/i);
    cookiesSeen.length = 0;
    const { page } = await openManage(patient, agent);
    expect(page.status).toBe(200);
    const session = cookiesSeen.filter((c) => c.startsWith('manage_session=') || c.startsWith('manage_session.sig='));
    expect(session).toHaveLength(2);
    for (const c of session) expect(c).toMatch(/; path=\/manage; expires=[^;]+; samesite=lax; httponly$/i);
    const expires = Date.parse(/expires=([^;]+)/i.exec(session[0]!)![1]!);
    expect(expires).toBeLessThanOrEqual(Date.now() + t.config.ttl.session * 1000 + 1000);
    expect(expires).toBeGreaterThan(Date.now() + t.config.ttl.session * 1000 - 60_000);
    // A forged (unsigned) session cookie counts for nothing.
    const forged = supertest.agent(t.app.callback());
    const value = Buffer.from(JSON.stringify({ sid: 'x', sub: 'someone', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
    const res = await forged.get('/manage').set('Cookie', `manage_session=${value}`);
    expect(res.status).toBe(303);
    expect(res.headers.location).toMatch(/^\/authorize\?/);
  });

  test('a callback with a wrong or reused state is refused', async () => {
    const agent = supertest.agent(t.app.callback());
    await agent.get('/manage');
    const wrong = await agent.get('/manage/callback?code=abc&state=not-the-state').set('Accept', 'text/html');
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('This sign-in link has expired or was already used.');
    const noPending = await supertest.agent(t.app.callback()).get('/manage/callback?code=abc&state=x').set('Accept', 'text/html');
    expect(noPending.status).toBe(400);
  });

  test('signing out ends the page’s session and the sign-in session', async () => {
    const { agent, page } = await openManage(patient);
    const out = await agent
      .post('/manage/logout')
      .type('form')
      .set('Accept', 'text/html')
      .send(new URLSearchParams({ csrf: csrfFrom(page.text) }).toString());
    expect(out.status).toBe(303);
    const confirm = await agent.get(out.headers.location!);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.text)?.[1];
    const done = await follow(agent, await agent.post('/logout/confirm').type('form').send({ xsrf: xsrf!, logout: 'yes' }));
    expect(done.status).toBe(200);
    expect(done.text).toContain('You are signed out.');
    expect((await openManage(patient, agent)).steps).toEqual(['login']);
  });

  test('the page’s session ends when the sign-in session does (sign-out elsewhere)', async () => {
    const { agent } = await openManage(patient);
    const again = await agent.get('/manage');
    expect(again.status).toBe(200);
    // Sign out through this server's logout, not the page's.
    const confirm = await agent.get('/logout');
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.text)?.[1];
    await agent.post('/logout/confirm').type('form').send({ xsrf: xsrf!, logout: 'yes' });
    const after = await agent.get('/manage');
    expect(after.status).toBe(303);
    expect(after.headers.location).toMatch(/^\/authorize\?/);
  });
});

describe('the list', () => {
  test('shows every app with access to the patient’s record: scopes as sentences, since, until, last used', async () => {
    const { page } = await openManage(patient);
    const html = page.text;
    expect(html).toContain('<h2 id="app-');
    expect(html).toContain('>App Alpha</h2>');
    expect(html).toContain('>App Beta</h2>');
    expect(html).toContain('<li>Read and search your Observation records (lab results, vital signs and other measurements)</li>');
    expect(html).toContain('<li>Keep access while you are away</li>');
    expect(html).toContain('<li>Read and search your Condition records (problems and diagnoses)</li>');
    const alphaConsent = await consentFor(patientId, 'alpha');
    const section = html.slice(html.indexOf('>App Alpha</h2>'), html.indexOf('</li>\n    \n', html.indexOf('>App Alpha</h2>')));
    expect(section).toContain(`<dt>Since</dt><dd><time datetime="${new Date(Date.parse(alphaConsent.resource.dateTime)).toISOString()}">`);
    expect(section).toContain(
      `<dt>Until</dt><dd><time datetime="${new Date(alphaConsent.end!).toISOString()}">${longDate(alphaConsent.end!)}</time>`,
    );
    expect(section).toMatch(new RegExp(`<dt>Last used</dt><dd><time datetime="[^"]+">${longDate(Date.now())}</time>`));
    expect(section).toContain('<dt>Allowed by</dt><dd>you</dd>');
    const betaSection = html.slice(html.indexOf('>App Beta</h2>'));
    expect(betaSection).toMatch(/<dt>Last used<\/dt><dd>not yet<\/dd>/);
    expect(withdrawForms(html)).toHaveLength(2);
  });

  test('a caregiver sees the apps of the patients they act for, whoever allowed them', async () => {
    const carer = await newUser(
      {
        fhirUser: `RelatedPerson/rp-${randomUUID().slice(0, 6)}`,
        proxyPatients: [
          { value: patientId, display: 'Pat Jones' },
          { value: sibling, display: 'Sam Jones' },
        ],
      },
      { givenName: 'Chris', familyName: 'Jones' },
    );
    await authorizeThroughPages(t, params('alpha', 'launch/patient patient/Immunization.rs'), { ...carer, patient: sibling });
    const { page } = await openManage(carer);
    expect(withdrawForms(page.text)).toHaveLength(3);
    expect(page.text).toContain('<dt>Record</dt><dd>Pat Jones</dd>');
    expect(page.text).toContain('<dt>Record</dt><dd>Sam Jones</dd>');
    expect(page.text).toContain('<dt>Allowed by</dt><dd>Pat Jones</dd>');
    expect(page.text).toContain('<li>Read and search Sam Jones’s Immunization records (vaccinations)</li>');
  });

  test('a clinician sees the Consents they decided, and nobody else’s', async () => {
    const drId = `dr-${randomUUID().slice(0, 6)}`;
    const doctor = await newUser({ fhirUser: `Practitioner/${drId}`, staff: true }, { givenName: 'Dana', familyName: 'Smith' });
    const ehrPatient = `ehr-${randomUUID().slice(0, 6)}`;
    const launch = await launchStoreOf(t).create({ patient: ehrPatient, clientId: 'beta', createdBy: 'ehr', aud: FHIR });
    await authorizeThroughPages(t, params('beta', 'launch patient/*.rs', { launch }), doctor);
    const { page } = await openManage(doctor);
    const ids = withdrawForms(page.text);
    expect(ids).toEqual([(await consentFor(ehrPatient, 'beta')).resource.id]);
    expect(page.text).toContain(`<dt>Record</dt><dd>Patient ${ehrPatient}</dd>`);
  });

  test('client names are escaped', async () => {
    const who = await newUser({ fhirUser: `Patient/esc-${randomUUID().slice(0, 6)}` });
    await authorizeThroughPages(t, params('gamma', 'launch/patient patient/*.rs'), who);
    const { page } = await openManage(who);
    expect(page.text).not.toMatch(/<script/i);
    expect(page.text).toContain('&lt;script&gt;alert(&#34;gamma&#34;)&lt;/script&gt;</h2>');
  });
});

describe('withdrawing', () => {
  test('ends the app’s access at once: introspection inactive, refresh invalid_grant, and says so', async () => {
    expect((await introspect(t, alpha.access)).body.active).toBe(true);
    const { agent, page } = await openManage(patient);
    const consent = await consentFor(patientId, 'alpha');
    const res = await withdraw(agent, page, consent.resource.id);
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/manage?withdrawn=${consent.resource.id}`);
    expect((await introspect(t, alpha.access)).body).toEqual({ active: false });
    expect((await introspect(t, alpha.refresh)).body).toEqual({ active: false });
    const refreshed = await refresh('alpha', alpha.refresh);
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');

    const after = await follow(agent, res);
    expect(after.text).toContain('<p class="notice" role="status">Access withdrawn: App Alpha can no longer use your own record.</p>');
    expect(withdrawForms(after.text)).not.toContain(consent.resource.id);
    const stored = await consentServiceOf(t).store.get(consent.resource.id);
    expect(stored?.status).toBe('inactive');
    const provenance = await consentServiceOf(t).store.provenance(consent.resource.id);
    expect(provenance.at(-1)).toMatchObject({
      activity: { coding: [{ code: 'UPDATE' }] },
      agent: [{ who: { reference: `Patient/${patientId}` } }],
    });
    // The app has to ask again.
    expect(
      (await authorizeThroughPages(t, params('alpha', 'openid launch/patient patient/Observation.rs offline_access'), patient)).pages,
    ).toEqual(['login', 'consent']);
  });

  test('needs the session’s form token and a same-site post; nothing changes otherwise', async () => {
    const { agent, page } = await openManage(patient);
    const id = withdrawForms(page.text)[0]!;
    const other = await openManage(await newUser({ fhirUser: `Patient/x-${randomUUID().slice(0, 6)}` }));
    for (const csrf of ['', 'forged', csrfFrom(other.page.text)]) {
      const res = await agent
        .post(`/manage/consents/${id}/withdraw`)
        .type('form')
        .set('Accept', 'text/html')
        .send(csrf ? `csrf=${encodeURIComponent(csrf)}` : '');
      expect(res.status).toBe(403);
    }
    const crossSite = await agent
      .post(`/manage/consents/${id}/withdraw`)
      .type('form')
      .set('Sec-Fetch-Site', 'cross-site')
      .send(`csrf=${encodeURIComponent(csrfFrom(page.text))}`);
    expect(crossSite.status).toBe(403);
    const anonymous = await t.request
      .post(`/manage/consents/${id}/withdraw`)
      .type('form')
      .set('Accept', 'text/html')
      .send(`csrf=${encodeURIComponent(csrfFrom(page.text))}`);
    expect(anonymous.status).toBe(401);
    expect((await consentServiceOf(t).store.get(id))?.status).toBe('active');
  });

  test('someone else’s Consent cannot be withdrawn (it looks like none at all)', async () => {
    const stranger = await openManage(await newUser({ fhirUser: `Patient/s-${randomUUID().slice(0, 6)}` }));
    const target = await consentFor(patientId, 'beta');
    for (const id of [target.resource.id, 'no-such-consent', '..%2F..%2Fx']) {
      const res = await withdraw(stranger.agent, stranger.page, id);
      expect(res.status).toBe(404);
    }
    expect((await consentServiceOf(t).store.get(target.resource.id))?.status).toBe('active');
  });

  test('a caregiver may withdraw a Consent the patient gave', async () => {
    const carer = await newUser({
      fhirUser: `RelatedPerson/rp-${randomUUID().slice(0, 6)}`,
      proxyPatients: [{ value: patientId, display: 'Pat Jones' }],
    });
    const { agent, page } = await openManage(carer);
    const beta = await consentFor(patientId, 'beta');
    expect(withdrawForms(page.text)).toContain(beta.resource.id);
    expect((await withdraw(agent, page, beta.resource.id)).status).toBe(303);
    expect((await consentServiceOf(t).store.get(beta.resource.id))?.status).toBe('inactive');
  });
});
