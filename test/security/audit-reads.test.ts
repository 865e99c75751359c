import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import type { AuditEvent } from '../../src/records/audit/audit-event.js';
import { breakTrail } from '../records/audit/tamper.js';

/**
 * Audit the audit: every read of the trail through /fhir/AuditEvent (search, read, $export) is
 * itself an AuditEvent (IHE BALP Query / Read), appended before any of the trail leaves; when it
 * cannot be appended, nothing is read (503 OperationOutcome).
 */

const TOKEN_URL = 'http://localhost:3000/token';
const API = 'http://localhost:3000/fhir';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const tag = randomUUID().slice(0, 6);
const OFFICER = `officer-${tag}`;

type Bundle = { total: number; entry?: Array<{ resource: AuditEvent; search: { mode: string } }> };

let t: TestApp;
let key: BackendKey;
let officer: string;

const get = (path: string) => t.request.get(path).set('Authorization', `Bearer ${officer}`);
/** The whole streamed body as text, whatever its content type. */
const streamed = (req: ReturnType<typeof get>) =>
  req.buffer(true).parse((r, cb) => {
    let body = '';
    r.on('data', (c: Buffer) => (body += c.toString()));
    r.on('end', () => cb(null, body));
  });
const decodeQuery = (e: AuditEvent) => {
  const q = e.entity?.find((x) => x.role?.code === '24')?.query;
  return q === undefined ? undefined : Buffer.from(q, 'base64').toString('utf8');
};
const subtypes = (e: AuditEvent) => (e.subtype ?? []).map((c) => `${c.system}|${c.code}`);

/** Every event the officer's client is an agent of, straight from the stream (not through the API). */
async function officerEventsInRedis(): Promise<AuditEvent[]> {
  const entries = await t.redis.xrange(t.keyspace.auditStream('main'), '-', '+');
  return entries
    .map(([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!) as AuditEvent)
    .filter((e) => e.resourceType === 'AuditEvent' && e.agent?.some((a) => a.who?.identifier?.value === OFFICER));
}

beforeAll(async () => {
  t = await createTestApp();
  key = await backendKey('ES384');
  await registerBackend(t, OFFICER, [key], { smart_scopes: ['system/AuditEvent.rs'] });
  const res = await tokenRequest(t, await signAssertion(key, OFFICER, TOKEN_URL), { scope: 'system/AuditEvent.rs', resource: API });
  expect(res.status).toBe(200);
  officer = res.body.access_token as string;
});
afterAll(async () => {
  await t.close();
});

describe('each read of the trail leaves an AuditEvent before data leaves', () => {
  test('search: a BALP Query (rest / search-type) with the query, already in its own result', async () => {
    const res = await get(`/fhir/AuditEvent?agent=${OFFICER}&_count=50`);
    expect(res.status).toBe(200);
    const b = JSON.parse(res.text) as Bundle;
    // Recorded before the search ran, so the search finds its own record.
    const own = b.entry!.map((e) => e.resource).find((e) => subtypes(e).includes(`${RESTFUL}|search-type`));
    expect(own).toBeDefined();
    expect(own).toMatchObject({ type: { code: 'rest' }, action: 'E', outcome: '0' });
    expect(decodeQuery(own!)).toBe(`agent=${OFFICER}&_count=50`);
    expect(own!.entity![0]).toMatchObject({
      type: { code: '2' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24' },
    });
  });

  test('read: a BALP Read (rest / read) naming the AuditEvent read', async () => {
    const before = await officerEventsInRedis();
    const target = before[0]!;
    const res = await get(`/fhir/AuditEvent/${target.id}`);
    expect(res.status).toBe(200);
    const reads = (await officerEventsInRedis()).filter((e) => subtypes(e).includes(`${RESTFUL}|read`));
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ type: { code: 'rest' }, action: 'R', entity: [{ what: { reference: `AuditEvent/${target.id}` } }] });
  });

  test('$export: a BALP Query for the $export operation, the first line of its own NDJSON', async () => {
    const res = await streamed(get(`/fhir/AuditEvent/$export?agent=${OFFICER}&_sort=-date`));
    expect(res.status).toBe(200);
    const lines = (res.body as string)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEvent);
    // Newest first: the export's own record is already there when the first page is read.
    expect(subtypes(lines[0]!)).toContain(`${RESTFUL}|operation`);
    expect(decodeQuery(lines[0]!)).toBe(`agent=${OFFICER}&_sort=-date`);
    expect(lines[0]!.entity![0]!.detail).toContainEqual({ type: 'operation', valueString: '$export' });
  });
});

describe('a read that cannot be recorded does not happen', () => {
  test('export, search and read answer 503 OperationOutcome and send none of the trail', async () => {
    const ids = (await officerEventsInRedis()).map((e) => e.id!);
    const restore = await breakTrail(t);
    try {
      const exp = await streamed(get(`/fhir/AuditEvent/$export?agent=${OFFICER}`));
      expect(exp.status).toBe(503);
      expect(exp.headers['content-type']).toMatch(/^application\/fhir\+json/);
      expect(JSON.parse(exp.body as string)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
      for (const id of ids) expect(exp.body as string).not.toContain(id);

      const search = await get(`/fhir/AuditEvent?agent=${OFFICER}`);
      expect(search.status).toBe(503);
      for (const id of ids) expect(search.text).not.toContain(id);

      const read = await get(`/fhir/AuditEvent/${ids[0]}`);
      expect(read.status).toBe(503);
      expect(read.text).not.toContain(ids[0]);
    } finally {
      await restore();
    }
    // The trail works again once Redis does.
    expect((await get(`/fhir/AuditEvent/${ids[0]}`)).status).toBe(200);
  });
});
