import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { signedInOn, type Agent, type PageAnswers } from '../support/smart-flow.js';
import { createPerson } from '../support/fixtures.js';
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

const ISSUER = 'http://localhost:3000';
const LOCAL = 'https://smart-authz.dev/fhir/CodeSystem/audit-event-subtype';
const tag = randomUUID().slice(0, 6);
const ME = `me-${tag}`;
const SEEN_BY = `chart-app-${tag}`;

let t: TestApp;
let trail: ReturnType<typeof createAuditTrail>;
let me: PageAnswers;

/** A browser signed in on /manage as `who`. */
async function signedIn(who: PageAnswers): Promise<Agent> {
  const { agent, page } = await signedInOn(t, '/manage', who);
  expect(page.status).toBe(200);
  return agent;
}

/** The records of views of the report, straight from the stream (not through any reader). */
async function reportViews(): Promise<AuditEvent[]> {
  const entries = await t.redis.xrange(t.keyspace.auditStream('main'), '-', '+');
  return entries
    .map(([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!) as AuditEvent)
    .filter(
      (e) => e.resourceType === 'AuditEvent' && (e.subtype ?? []).some((c) => c.system === LOCAL && c.code === 'audit-disclosures-viewed'),
    );
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  trail = createAuditTrail({ config: t.config, redis: t.redis, keyspace: t.keyspace, logger: createLogger('silent') });
  me = await createPerson(t, { fhirUser: `Patient/${ME}` }, { userName: `u-${tag}`, name: { givenName: 'Pat', familyName: 'Jones' } });
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
      expect(e.entity).toContainEqual(
        expect.objectContaining({ what: { reference: `Patient/${ME}` }, role: expect.objectContaining({ code: '1' }) }),
      );
      const person = e.agent!.find((a) => a.requestor && a.who?.identifier?.system === ISSUER)!;
      expect(person.who!.reference).toMatch(new RegExp(`Patient/${ME}$`));
      expect(e.agent).toContainEqual(
        expect.objectContaining({
          requestor: false,
          who: expect.objectContaining({ identifier: expect.objectContaining({ value: 'smart-authz-manage' }) }),
        }),
      );
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
