import { createTestApp, type TestApp } from '../../support/test-app.js';
import { csrfFrom, pageOf, signIn, type Agent } from '../../support/smart-flow.js';
import { createPeople, paramsFor, PASSWORD, registerSmartApp } from '../../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from './fake-fhir.js';

/**
 * The forms of the pickers and the consent page: CSRF tokens bound to the interaction, no
 * cross-site posts, the uid in the path must be the interaction the cookie names, and a form only
 * works for the step the interaction is waiting for. Pages are never cached and run no script.
 */

const REDIRECT = 'https://app.example.org/cb';
const CLIENT = 'forms-app';

let fake: FakeFhir;
let t: TestApp;

const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'st' }));

async function pageFor(userName: string, scope: string): Promise<{ agent: Agent; uid: string; html: string; prompt: string }> {
  const { agent, stop } = await signIn(t, params(scope), { username: userName, password: PASSWORD });
  const next = pageOf(stop);
  return { agent, uid: next.uid, html: next.res.text, prompt: next.prompt };
}

beforeAll(async () => {
  fake = await startFakeFhir();
  fake.patients.push({ id: 'pat-1', given: 'Pat', family: 'Jones', birthDate: '1980-04-23' });
  fake.encounters.push({ id: 'enc-1', patient: 'pat-1', start: '2025-01-01', type: 'Visit' });
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: ['openid', 'launch/patient', 'launch/encounter', 'patient/*.rs'],
  });
  await createPeople(t, {
    carer: { fhirUser: 'RelatedPerson/c-1', proxyPatients: [{ value: 'pat-1', display: 'Pat Jones' }] },
    pat: { fhirUser: 'Patient/pat-1' },
    doc: { fhirUser: 'Practitioner/d-1', staff: true },
  });
});

afterAll(async () => {
  await t.close();
  await fake.close();
});

const FORMS: Array<{ user: string; scope: string; action: string; fields: Record<string, string> }> = [
  { user: 'carer', scope: 'launch/patient patient/*.rs', action: 'patient', fields: { patient: 'pat-1' } },
  { user: 'doc', scope: 'launch/patient patient/*.rs', action: 'patient-search', fields: { name: 'jones' } },
  { user: 'pat', scope: 'launch/patient launch/encounter patient/*.rs', action: 'encounter', fields: { encounter: 'enc-1' } },
  { user: 'pat', scope: 'openid launch/patient patient/*.rs', action: 'consent', fields: { decision: 'allow' } },
];

describe.each(FORMS)('the $action form', ({ user, scope, action, fields }) => {
  test('is refused without the right CSRF token, and nothing happens', async () => {
    const { agent, uid, html } = await pageFor(user, scope);
    const other = await pageFor(user, scope);
    for (const csrf of ['', 'forged', `${csrfFrom(html)}x`, csrfFrom(other.html)]) {
      const res = await agent
        .post(`/interaction/${uid}/${action}`)
        .type('form')
        .set('Accept', 'text/html')
        .send(new URLSearchParams({ ...fields, ...(csrf ? { csrf } : {}) }).toString());
      expect(res.status).toBe(403);
      expect(res.text).toContain('invalid_csrf');
      expect(res.text).toMatch(/^<!doctype html>/);
    }
    // The page still works afterwards: the failures changed nothing.
    const ok = await agent
      .post(`/interaction/${uid}/${action}`)
      .type('form')
      .set('Accept', 'text/html')
      .send(new URLSearchParams({ ...fields, csrf: csrfFrom(html) }).toString());
    expect([200, 303]).toContain(ok.status);
  });

  test('is refused cross-site', async () => {
    const { agent, uid, html } = await pageFor(user, scope);
    const res = await agent
      .post(`/interaction/${uid}/${action}`)
      .type('form')
      .set('Sec-Fetch-Site', 'cross-site')
      .send(new URLSearchParams({ ...fields, csrf: csrfFrom(html) }).toString());
    expect(res.status).toBe(403);
  });

  test('must name the interaction its cookie belongs to', async () => {
    const { agent, html } = await pageFor(user, scope);
    const res = await agent
      .post(`/interaction/not-this-one/${action}`)
      .type('form')
      .set('Accept', 'text/html')
      .send(new URLSearchParams({ ...fields, csrf: csrfFrom(html) }).toString());
    expect(res.status).toBe(400);
    expect(res.text).toContain('expired or was already used');
  });
});

test('a form for another step than the one waiting is refused', async () => {
  const { agent, uid, html, prompt } = await pageFor('carer', 'launch/patient patient/*.rs');
  expect(prompt).toBe('select_patient');
  for (const action of ['consent', 'encounter']) {
    const res = await agent
      .post(`/interaction/${uid}/${action}`)
      .type('form')
      .set('Accept', 'text/html')
      .send(new URLSearchParams({ decision: 'allow', encounter: 'enc-1', csrf: csrfFrom(html) }).toString());
    expect(res.status).toBe(400);
    expect(res.text).toContain('This step is already done for this request');
  }
});

test('a body that is not a form is refused', async () => {
  const { agent, uid, html } = await pageFor('carer', 'launch/patient patient/*.rs');
  const res = await agent
    .post(`/interaction/${uid}/patient`)
    .set('Content-Type', 'application/json')
    .send(JSON.stringify({ patient: 'pat-1', csrf: csrfFrom(html) }));
  expect(res.status).toBe(400);
});

test.each([
  ['patient picker', 'carer', 'launch/patient patient/*.rs'],
  ['patient search', 'doc', 'launch/patient patient/*.rs'],
  ['encounter picker', 'pat', 'launch/patient launch/encounter patient/*.rs'],
  ['consent page', 'pat', 'openid launch/patient patient/*.rs'],
])('the %s has the strict CSP, no script or inline style, a CSRF field, and is not cached', async (_name, user, scope) => {
  const { res } = pageOf((await signIn(t, params(scope), { username: user, password: PASSWORD })).stop);
  expect(res.headers['content-type']).toMatch(/^text\/html/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['content-security-policy']).toContain("default-src 'none'");
  expect(res.headers['content-security-policy']).toContain("form-action 'self'");
  expect(res.text).toMatch(/^<!doctype html>/);
  expect(res.text).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
  expect(res.text).toContain('<html lang="en">');
  expect(res.text).toMatch(/<input type="hidden" name="csrf" value="[^"]+">/);
  // Every visible input has a label.
  for (const [, id] of res.text.matchAll(/<input (?:type="(?:text|radio|checkbox)" )?id="([^"]+)"/g))
    expect(res.text).toContain(`for="${id}"`);
});
