import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { authorizeThroughPages, exchangeCode, signedInOn, type Agent, type PageAnswers } from '../../support/smart-flow.js';
import { createPerson } from '../../support/fixtures.js';
import { createAuditTrail } from '../../../src/records/audit/trail.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { csvCell, disclosureRows } from '../../../src/records/audit/disclosure-report.js';
import { isDisclosure } from '../../../src/records/audit/disclosure.js';
import { sampleEvent, type EventSpec } from './support.js';

/**
 * "Who accessed my record" on the management page: only the signed-in patient's own record (or
 * those they act for), de-duplicated rows, escaping, the staff-name policy, CSV and Bundle.
 */

const REDIRECT = 'https://apps.example.org/cb';
const FHIR = 'http://localhost:8080/fhir';
const tag = randomUUID().slice(0, 6);
const ME = `me-${tag}`;
const OTHER = `other-${tag}`;

let t: TestApp;
let trail: ReturnType<typeof createAuditTrail>;
let me: PageAnswers;
let other: PageAnswers;

function newUser(patient: string): Promise<PageAnswers> {
  return createPerson(t, { fhirUser: `Patient/${patient}` }, { name: { givenName: 'Pat', familyName: 'Jones' } });
}

/** A browser signed in on /manage as `who`. */
async function signedIn(who: PageAnswers): Promise<Agent> {
  const { agent, page } = await signedInOn(t, '/manage', who);
  expect(page.status).toBe(200);
  return agent;
}

const record = (spec: EventSpec) => trail.record(sampleEvent(spec));

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  trail = createAuditTrail({ config: t.config, redis: t.redis, keyspace: t.keyspace, logger: createLogger('silent') });
  me = await newUser(ME);
  other = await newUser(OTHER);
  const dr = { accountId: 'dr', fhirUser: 'Practitioner/dr-1', name: 'Dr <b>Smith</b>', role: 'Physician', org: 'General Hospital' };
  // Same app, person, purpose, day: one row with a count of 3.
  for (const h of ['08', '09', '10'])
    await record({
      patient: ME,
      clientId: 'ehr',
      user: dr,
      purpose: 'TREAT',
      ip: '10.1.1.1',
      recorded: `2026-04-01T${h}:00:00Z`,
      scope: 'patient/Observation.rs',
    });
  // Another day, another purpose → separate rows.
  await record({
    patient: ME,
    clientId: 'ehr',
    user: dr,
    purpose: 'HPAYMT',
    ip: '10.1.1.2',
    recorded: '2026-04-01T12:00:00Z',
    scope: 'patient/Condition.rs',
  });
  await record({ patient: ME, clientId: 'ehr', user: dr, purpose: 'TREAT', recorded: '2026-04-02T08:00:00Z' });
  // An app with a hostile name and a formula-like scope.
  await record({ patient: ME, clientId: '=HYPERLINK("http://evil")', recorded: '2026-04-03T08:00:00Z', scope: 'patient/*.rs' });
  // Not disclosures: a refused request, and another patient's access.
  await record({ patient: ME, clientId: 'ehr', subtype: 'token-refused', outcome: '4', recorded: '2026-04-04T08:00:00Z' });
  await record({ patient: OTHER, clientId: 'secret-app', recorded: '2026-04-04T08:00:00Z' });
});
afterAll(async () => {
  await trail.close();
  await t.close();
});

describe('the page', () => {
  test('signed out → sign-in first, then back to this page', async () => {
    const res = await t.request.get('/manage/disclosures').set('Accept', 'text/html');
    expect(res.status).toBe(303);
    const { page } = await signedInOn(t, '/manage/disclosures', me);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<h1>Who accessed my record</h1>');
    expect((await t.request.get('/manage/disclosures.csv')).status).toBe(401);
  });

  test('lists the patient’s own disclosures, de-duplicated, escaped, staff as role and organisation', async () => {
    const agent = await signedIn(me);
    const res = await agent.get('/manage/disclosures').set('Accept', 'text/html');
    expect(res.status).toBe(200);
    const html = res.text;
    const rows = [...html.matchAll(/<tr>\s*<td>/g)];
    expect(rows).toHaveLength(4);
    expect(html).toContain('3 times that day');
    expect(html).toContain('<caption');
    expect(html).toContain('<th scope="col">Why</th>');
    expect(html).toContain('Physician');
    expect(html).toContain('General Hospital');
    expect(html).not.toContain('Smith'); // policy: no staff names by default
    expect(html).not.toContain('secret-app');
    expect(html).toContain('App =HYPERLINK(&#34;http://evil&#34;)');
    expect(html).not.toContain('<b>');
    expect(html).toContain('10.1.1.1');
    expect(html).toContain('Observation');
  });

  test('another patient’s record cannot be asked for', async () => {
    const agent = await signedIn(other);
    expect((await agent.get(`/manage/disclosures?patient=${ME}`).set('Accept', 'text/html')).status).toBe(404);
    expect((await agent.get(`/manage/disclosures.csv?patient=${ME}`)).status).toBe(404);
    const own = await agent.get('/manage/disclosures').set('Accept', 'text/html');
    expect(own.text).toContain('App secret-app');
    expect(own.text).not.toContain('HYPERLINK');
  });

  test('CSV download: quoted, formula-safe, one line per row', async () => {
    const agent = await signedIn(me);
    const res = await agent.get('/manage/disclosures.csv').buffer(true);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="disclosures-/);
    const lines = res.text
      .replace(/^\uFEFF/, '')
      .trim()
      .split('\r\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toBe(
      '"Day","First access","Last access","Times","App","Person","Role","Organisation","Resource types","Scopes","Purpose","Network addresses"',
    );
    expect(res.text).toContain('"App =HYPERLINK(""http://evil"")"');
    expect(lines.find((l) => l.includes('"3"'))).toContain('"2026-04-01T08:00:00Z","2026-04-01T10:00:00Z","3"');
  });

  test('Bundle download: redacted AuditEvents of the patient’s disclosures only', async () => {
    const agent = await signedIn(me);
    const res = await agent.get('/manage/disclosures.json');
    expect(res.status).toBe(200);
    const b = JSON.parse(res.text) as {
      resourceType: string;
      type: string;
      entry: Array<{ resource: { resourceType: string; agent: unknown[]; entity: unknown[] } }>;
    };
    expect(b).toMatchObject({ resourceType: 'Bundle', type: 'collection' });
    expect(b.entry).toHaveLength(6);
    expect(res.text).not.toContain('Smith');
    expect(res.text).not.toContain('secret-app');
    expect(b.entry.every((e) => e.resource.resourceType === 'AuditEvent')).toBe(true);
  });
});

describe('policy and helpers', () => {
  test('staff names are shown when the policy says so', () => {
    const events = [sampleEvent({ patient: 'x', user: { accountId: 'd', fhirUser: 'Practitioner/1', name: 'Dr Who', role: 'Nurse' } })];
    expect(disclosureRows(events, 'Patient/x', { showStaffNames: true })[0]).toMatchObject({ person: 'Dr Who', role: 'Nurse' });
    expect(disclosureRows(events, 'Patient/x', { showStaffNames: false })[0]).toMatchObject({ person: '', role: 'Nurse' });
    const self = [sampleEvent({ patient: 'x', user: { accountId: 'p', fhirUser: 'Patient/x', name: 'Pat' } })];
    expect(disclosureRows(self, 'Patient/x', { showStaffNames: false })[0]!.person).toBe('You');
  });

  test('csv cells never start a formula', () => {
    for (const bad of ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx']) expect(csvCell(bad).startsWith(`"'`)).toBe(true);
    expect(csvCell('plain "quoted"')).toBe('"plain ""quoted"""');
  });

  test('isDisclosure: success, a Patient entity in role 1, and a disclosure subtype', () => {
    expect(isDisclosure(sampleEvent({ patient: 'x' }))).toBe(true);
    expect(isDisclosure(sampleEvent({ patient: 'x', outcome: '4' }))).toBe(false);
    expect(isDisclosure(sampleEvent({ patient: 'x', subtype: 'login-failed' }))).toBe(false);
    expect(isDisclosure(sampleEvent({}))).toBe(false);
  });
});

describe('with the real event wiring', () => {
  test('an app that got a token for the patient shows up on the page', async () => {
    await t.registry.upsert(
      {
        client_id: `alpha-${tag}`,
        client_name: 'App Alpha',
        smart_client_kind: 'public_app',
        redirect_uris: [REDIRECT],
        smart_scopes: ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs'],
      },
      { generateSecret: false },
    );
    const params = { client_id: `alpha-${tag}`, redirect_uri: REDIRECT, scope: 'openid launch/patient patient/Observation.rs', aud: FHIR };
    const flow = await authorizeThroughPages(t, params, me);
    const token = await exchangeCode(t, flow, params);
    expect(token.status).toBe(200);
    const agent = await signedIn(me);
    const html = (await agent.get('/manage/disclosures').set('Accept', 'text/html')).text;
    expect(html).toContain('App Alpha');
  });
});
