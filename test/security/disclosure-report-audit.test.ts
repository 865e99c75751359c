import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import supertest from 'supertest';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { createUser, directoryOf } from '../smart/interaction/login/support.js';
import { SMART_USER_SCHEMA } from '../../src/records/directory/model.js';
import { csrfFrom, type Agent, type PageAnswers } from '../support/smart-flow.js';
import { createAuditTrail } from '../../src/records/audit/trail.js';
import { createLogger } from '../../src/platform/ops/logger.js';
import type { AuditEvent } from '../../src/records/audit/audit-event.js';
import { sampleEvent } from '../records/audit/support.js';
import { breakTrail } from '../records/audit/tamper.js';

/**
 * Audit the audit, on the management page too: "Who accessed my record" (/manage/disclosures and
 * its .csv/.json downloads) reads the audit trail, so each view or download is recorded (IHE BALP
 * Query, the signed-in person as agent, the patient as entity) before any of it is shown; when it
 * cannot be recorded, nothing is shown (503 readable page).
 */

const PASSWORD = 'correct horse battery staple';
const ISSUER = 'http://localhost:3000';
const LOCAL = 'https://smart-authz.dev/fhir/CodeSystem/audit-event-subtype';
const tag = randomUUID().slice(0, 6);
const ME = `me-${tag}`;
const SEEN_BY = `chart-app-${tag}`;

let t: TestApp;
let trail: ReturnType<typeof createAuditTrail>;
let me: PageAnswers;

async function follow(agent: Agent, from: supertest.Response): Promise<supertest.Response> {
  let res = from;
  for (let i = 0; i < 15 && (res.status === 302 || res.status === 303); i++) {
    const location = new URL(res.headers.location!, ISSUER);
    if (location.origin !== ISSUER && location.hostname !== '127.0.0.1') return res;
    res = await agent.get(`${location.pathname}${location.search}`).set('Accept', 'text/html');
  }
  return res;
}

/** A browser signed in on /manage as `who`. */
async function signedIn(who: PageAnswers): Promise<Agent> {
  const agent = supertest.agent(t.app.callback());
  let res = await follow(agent, await agent.get('/manage').set('Accept', 'text/html'));
  const login = /action="\/interaction\/([^/"]+)\/login"/.exec(res.text)!;
  const form = new URLSearchParams({ csrf: csrfFrom(res.text), username: who.username, password: who.password });
  res = await follow(agent, await agent.post(`/interaction/${login[1]}/login`).type('form').set('Accept', 'text/html').send(form.toString()));
  expect(res.status).toBe(200);
  return agent;
}

/** The records of views of the report, straight from the stream (not through any reader). */
async function reportViews(): Promise<AuditEvent[]> {
  const entries = await t.redis.xrange(t.keyspace.auditStream('main'), '-', '+');
  return entries
    .map(([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!) as AuditEvent)
    .filter((e) => e.resourceType === 'AuditEvent' && (e.subtype ?? []).some((c) => c.system === LOCAL && c.code === 'audit-disclosures-viewed'));
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  trail = createAuditTrail({ config: t.config, redis: t.redis, keyspace: t.keyspace, logger: createLogger('silent') });
  const username = `u-${tag}`;
  await createUser(directoryOf(t).users, username, PASSWORD, { name: { givenName: 'Pat', familyName: 'Jones' }, [SMART_USER_SCHEMA]: { fhirUser: `Patient/${ME}` } });
  me = { username, password: PASSWORD };
  await trail.record(sampleEvent({ patient: ME, clientId: SEEN_BY, recorded: '2026-04-01T08:00:00Z', scope: 'patient/Observation.rs' }));
});
afterAll(async () => {
  await trail.close();
  await t.close();
});

describe('each view and download of the accounting of disclosures is recorded', () => {
  test('page, CSV and Bundle: a BALP Query naming the person, the management client and the patient, not listed in the report', async () => {
    const agent = await signedIn(me);
    const before = (await reportViews()).length;
    const page = await agent.get('/manage/disclosures').set('Accept', 'text/html');
    expect(page.status).toBe(200);
    expect(page.text).toContain(SEEN_BY);
    expect((await agent.get('/manage/disclosures.csv').buffer(true)).status).toBe(200);
    const json = await agent.get('/manage/disclosures.json');
    expect(json.status).toBe(200);
    // The report's own views are no disclosures: only the seeded access is listed.
    expect((JSON.parse(json.text) as { entry: unknown[] }).entry).toHaveLength(1);

    const views = (await reportViews()).slice(before);
    expect(views.map((e) => e.entity![0]!.detail!.find((d) => d.type === 'format')!.valueString)).toEqual(['page', 'csv', 'json']);
    for (const e of views) {
      expect(e).toMatchObject({ type: { code: 'rest' }, action: 'E', outcome: '0' });
      expect(e.subtype).toContainEqual(expect.objectContaining({ system: 'http://hl7.org/fhir/restful-interaction', code: 'search-type' }));
      expect(Buffer.from(e.entity![0]!.query!, 'base64').toString('utf8')).toBe(`disclosure=Patient/${ME}`);
      expect(e.entity![0]!.role).toMatchObject({ code: '24' });
      expect(e.entity).toContainEqual(expect.objectContaining({ what: { reference: `Patient/${ME}` }, role: expect.objectContaining({ code: '1' }) }));
      const person = e.agent!.find((a) => a.requestor && a.who?.identifier?.system === ISSUER)!;
      expect(person.who!.reference).toMatch(new RegExp(`Patient/${ME}$`));
      expect(e.agent).toContainEqual(expect.objectContaining({ requestor: false, who: expect.objectContaining({ identifier: expect.objectContaining({ value: 'smart-authz-manage' }) }) }));
    }
  });
});

describe('a view that cannot be recorded shows nothing', () => {
  test('page, CSV and Bundle answer a readable 503 and none of the report', async () => {
    const agent = await signedIn(me);
    const restore = await breakTrail(t);
    try {
      const page = await agent.get('/manage/disclosures').set('Accept', 'text/html');
      expect(page.status).toBe(503);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['retry-after']).toBe('5');
      expect(page.text).toContain('could not be recorded');
      expect(page.text).not.toContain(SEEN_BY);
      for (const path of ['/manage/disclosures.csv', '/manage/disclosures.json']) {
        const res = await agent.get(path).set('Accept', 'text/html').buffer(true);
        expect(res.status).toBe(503);
        expect(res.headers['content-disposition']).toBeUndefined();
        expect(res.text).not.toContain(SEEN_BY);
      }
    } finally {
      await restore();
    }
    expect((await agent.get('/manage/disclosures.csv').buffer(true)).text).toContain(SEEN_BY);
  });
});
