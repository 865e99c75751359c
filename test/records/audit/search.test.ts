import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import { registerSmartApp } from '../../support/fixtures.js';
import { createAuditTrail } from '../../../src/records/audit/trail.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { sampleEvent, type EventSpec } from './support.js';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';

const FHIR_BASE = 'http://localhost:8080/fhir';
/** This server's own API audience: tokens for the AuditEvent API are issued for it. */
const API = 'http://localhost:3000/fhir';
const TOKEN_URL = 'http://localhost:3000/token';
const tag = randomUUID().slice(0, 6);
const P1 = `p1-${tag}`;
const P2 = `p2-${tag}`;
const APP = `app-${tag}`;
const OTHER_APP = `other-${tag}`;
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

let t: TestApp;
let key: BackendKey;
let officer: string;
let bulk: string;
let trail: ReturnType<typeof createAuditTrail>;
const recorded: AuditEvent[] = [];

type Bundle = {
  resourceType: string;
  type: string;
  total: number;
  link: Array<{ relation: string; url: string }>;
  entry?: Array<{ resource: AuditEvent; search: { mode: string } }>;
};

async function backendToken(clientId: string, scope: string, resource = API): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL), { scope, resource });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

/** A patient-context user token, as the code exchange mints it. */
async function patientToken(patient: string, scope: string): Promise<string> {
  const client = (await t.app.Client.find(`viewer-${tag}`))!;
  const grant = new t.app.Grant({ accountId: 'someone', clientId: client.clientId });
  grant.addResourceScope(API, scope);
  const grantId = await grant.save();
  const at = new t.app.AccessToken({ accountId: 'someone', client, grantId, scope, aud: API, gty: 'authorization_code' });
  const token = await at.save();
  const k = t.keyspace.model('AccessToken', token);
  const payload = JSON.parse((await t.redis.hget(k, 'payload'))!);
  payload.extra = { patient };
  await t.redis.hset(k, 'payload', JSON.stringify(payload));
  return token;
}

const get = (path: string, token?: string) => {
  const req = t.request.get(path);
  return token ? req.set('Authorization', `Bearer ${token}`) : req;
};
const bundle = (res: { text: string }) => JSON.parse(res.text) as Bundle;
const ids = (b: Bundle) => (b.entry ?? []).filter((e) => e.search.mode === 'match').map((e) => e.resource.id);
const idsOf = (pred: (e: AuditEvent, i: number) => boolean) => recorded.filter(pred).map((e) => e.id);

async function add(spec: EventSpec, tweak: (e: AuditEvent) => AuditEvent = (e) => e) {
  const event = { ...tweak(sampleEvent(spec)), id: `ev-${tag}-${recorded.length}` };
  await trail.record(event);
  recorded.push(event);
}

beforeAll(async () => {
  t = await createTestApp();
  trail = createAuditTrail({ config: t.config, redis: t.redis, keyspace: t.keyspace, logger: createLogger('silent') });
  const day = (d: number, h = 10) => `2026-03-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:00:00Z`;
  await add({
    patient: P1,
    clientId: APP,
    recorded: day(1),
    user: { accountId: 'u1', fhirUser: 'Practitioner/dr-1', name: 'Dr Smith', role: 'Physician', org: 'General Hospital' },
    purpose: 'TREAT',
    ip: '10.0.0.1',
  });
  await add({
    patient: P1,
    clientId: APP,
    recorded: day(1, 11),
    user: { accountId: 'u1', fhirUser: 'Practitioner/dr-1', name: 'Dr Smith', role: 'Physician', org: 'General Hospital' },
    purpose: 'TREAT',
    ip: '10.0.0.1',
  });
  await add({ patient: P1, clientId: OTHER_APP, recorded: day(2), subtype: 'token-introspected' });
  await add({ patient: P1, clientId: APP, recorded: day(3), subtype: 'token-refused', outcome: '4' });
  await add({ patient: P2, clientId: APP, recorded: day(4) });
  await add({ patient: P2, clientId: OTHER_APP, recorded: day(5), outcome: '8', subtype: 'refresh-reuse' });
  await add({ patient: P1, clientId: APP, recorded: day(6) }, (e) => ({
    ...e,
    type: { system: DCM, code: '110113', display: 'Security Alert' },
    action: 'R',
  }));
  // The events of getting the officer's tokens come after the March ones: the trail's time only
  // moves forward (an event stamped earlier than the one before it is found at that one's time).
  key = await backendKey('ES384');
  await registerBackend(t, `auditor-${tag}`, [key], { smart_scopes: ['system/AuditEvent.rs'] });
  await registerBackend(t, `bulk-${tag}`, [key], { smart_scopes: ['system/*.rs'] });
  await registerSmartApp(t, { id: `viewer-${tag}`, redirectUri: 'https://app.example.org/cb', scopes: ['launch/patient', 'patient/*.rs'] });
  officer = await backendToken(`auditor-${tag}`, 'system/AuditEvent.rs');
  bulk = await backendToken(`bulk-${tag}`, 'system/*.rs', FHIR_BASE);
});
afterAll(async () => {
  await trail.close();
  await t.close();
});

describe('authorization', () => {
  test('no token → 401, a bulk FHIR token → 401 (not for this API), a token without an AuditEvent scope → 403 (system/*.rs is not an officer)', async () => {
    const none = await get(`/fhir/AuditEvent?patient=${P1}`);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="audit"');
    expect(JSON.parse(none.text)).toMatchObject({ resourceType: 'OperationOutcome' });
    expect((await get(`/fhir/AuditEvent?patient=${P1}`, bulk)).status).toBe(401);
    // A wildcard data scope is refused by the API itself too (patientToken mints it for this API).
    expect((await get(`/fhir/AuditEvent?patient=${P1}`, await patientToken(P1, 'patient/*.rs'))).status).toBe(403);
    expect((await get(`/fhir/AuditEvent?patient=${P1}`, 'x'.repeat(43))).status).toBe(401);
  });

  test('a SMART v1 system/AuditEvent.read token is an officer too; a query-constrained scope is not', async () => {
    await registerBackend(t, `v1-${tag}`, [key], { smart_scopes: ['system/AuditEvent.read', 'system/AuditEvent.rs?outcome=0'] });
    const v1 = await backendToken(`v1-${tag}`, 'system/AuditEvent.read');
    expect(bundle(await get(`/fhir/AuditEvent?patient=${P2}`, v1)).total).toBe(2);
    const constrained = await backendToken(`v1-${tag}`, 'system/AuditEvent.rs?outcome=0');
    expect((await get(`/fhir/AuditEvent?patient=${P2}`, constrained)).status).toBe(403);
  });

  test('the trail is read-only', async () => {
    const res = await t.request.post('/fhir/AuditEvent').set('Authorization', `Bearer ${officer}`).send({});
    expect(res.status).toBe(405);
  });
});

describe('search by each parameter (officer)', () => {
  test('patient, as id or reference; comma = or', async () => {
    const b = bundle(await get(`/fhir/AuditEvent?patient=${P1}&_count=200`, officer));
    expect(b).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 5 });
    expect(ids(b).sort()).toEqual(idsOf((e) => JSON.stringify(e).includes(`Patient/${P1}"`)).sort());
    expect(bundle(await get(`/fhir/AuditEvent?patient=Patient/${P2}`, officer)).total).toBe(2);
    expect(bundle(await get(`/fhir/AuditEvent?patient=${P1},${P2}`, officer)).total).toBe(7);
  });

  test('agent: client id, system|value, a user reference', async () => {
    expect(bundle(await get(`/fhir/AuditEvent?agent=${OTHER_APP}`, officer)).total).toBe(2);
    expect(bundle(await get(`/fhir/AuditEvent?agent=${encodeURIComponent(`http://localhost:3000/clients|${APP}`)}`, officer)).total).toBe(
      5,
    );
    const b = bundle(await get(`/fhir/AuditEvent?agent=Practitioner/dr-1&patient=${P1}`, officer));
    expect(ids(b).sort()).toEqual([recorded[0]!.id, recorded[1]!.id].sort());
  });

  test('type and subtype (code or system|code), outcome, action', async () => {
    const scoped = `&patient=${P1},${P2}`;
    expect(ids(bundle(await get(`/fhir/AuditEvent?type=110113${scoped}`, officer)))).toEqual([recorded[6]!.id]);
    expect(bundle(await get(`/fhir/AuditEvent?type=${encodeURIComponent(`${DCM}|110114`)}${scoped}`, officer)).total).toBe(6);
    expect(ids(bundle(await get(`/fhir/AuditEvent?subtype=token-introspected${scoped}`, officer)))).toEqual([recorded[2]!.id]);
    expect(
      bundle(await get(`/fhir/AuditEvent?subtype=${encodeURIComponent('urn:ihe:event-type-code|ITI-71')}${scoped}`, officer)).total,
    ).toBe(7);
    expect(ids(bundle(await get(`/fhir/AuditEvent?outcome=4${scoped}`, officer)))).toEqual([recorded[3]!.id]);
    expect(bundle(await get(`/fhir/AuditEvent?outcome=4,8${scoped}`, officer)).total).toBe(2);
    expect(ids(bundle(await get(`/fhir/AuditEvent?action=R${scoped}`, officer)))).toEqual([recorded[6]!.id]);
  });

  test('date with prefixes, repeated date = range', async () => {
    const q = (d: string) => get(`/fhir/AuditEvent?patient=${P1},${P2}&${d}`, officer);
    expect(bundle(await q('date=2026-03-01')).total).toBe(2);
    expect(bundle(await q('date=ge2026-03-05')).total).toBe(2);
    expect(bundle(await q('date=gt2026-03-05')).total).toBe(1);
    expect(bundle(await q('date=lt2026-03-02')).total).toBe(2);
    expect(bundle(await q('date=le2026-03-02')).total).toBe(3);
    expect(bundle(await q('date=ge2026-03-02&date=le2026-03-04')).total).toBe(3);
    expect(bundle(await q('date=eq2026-03-01T10:00:00Z')).total).toBe(1);
  });

  test('parameters combine with AND', async () => {
    expect(bundle(await get(`/fhir/AuditEvent?patient=${P1}&agent=${APP}&outcome=0`, officer)).total).toBe(3);
  });

  test('unknown parameters are refused, or ignored with a warning under Prefer: handling=lenient', async () => {
    const res = await get(`/fhir/AuditEvent?patient=${P1}&entity-name=x`, officer);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'not-supported' }] });
    const lenient = await get(`/fhir/AuditEvent?patient=${P1}&entity-name=x`, officer).set('Prefer', 'handling=lenient');
    expect(lenient.status).toBe(200);
    const b = bundle(lenient);
    expect(b.total).toBe(5);
    expect(b.entry!.at(-1)).toMatchObject({ search: { mode: 'outcome' } });
    expect(b.link[0]!.url).not.toContain('entity-name');
    for (const bad of [
      'outcome=3',
      'action=X',
      'date=2026-13-01',
      '_count=abc',
      '_sort=agent',
      '_cursor=zzz',
      'date=ne2026-01-01',
      'type=sys|',
    ]) {
      expect([bad, (await get(`/fhir/AuditEvent?${bad}`, officer)).status]).toEqual([bad, 400]);
    }
  });
});

describe('paging and sorting', () => {
  test('_count pages with next/previous links until all matches are seen, newest first by default', async () => {
    const seen: string[] = [];
    let url: string | undefined = `/fhir/AuditEvent?patient=${P1},${P2}&_count=3`;
    let pages = 0;
    let previousSeen = false;
    while (url) {
      const b = bundle(await get(url, officer));
      expect(b.total).toBe(7);
      seen.push(...ids(b).map(String));
      if (b.link.some((l) => l.relation === 'previous')) previousSeen = true;
      const next = b.link.find((l) => l.relation === 'next')?.url;
      url = next ? next.replace('http://localhost:3000', '') : undefined;
      // New events while paging do not shift the pages (the cursor fixes the upper bound).
      if (pages === 0) await add({ patient: P1, clientId: APP });
      pages++;
    }
    expect(pages).toBe(3);
    expect(previousSeen).toBe(true);
    expect(seen).toEqual(
      recorded
        .slice(0, 7)
        .map((e) => e.id)
        .reverse(),
    );
  });

  test('_sort=date is oldest first; _count is capped; _count=0 gives only the total', async () => {
    const asc = bundle(await get(`/fhir/AuditEvent?patient=${P2}&_sort=date`, officer));
    expect(ids(asc)).toEqual([recorded[4]!.id, recorded[5]!.id]);
    const zero = bundle(await get(`/fhir/AuditEvent?patient=${P1}&_count=0`, officer));
    expect(zero.total).toBeGreaterThanOrEqual(5);
    expect(zero.entry ?? []).toEqual([]);
    const capped = bundle(await get('/fhir/AuditEvent?_count=5000', officer));
    expect(capped.link[0]!.url).toContain('_count=200');
  });
});

describe('read and export', () => {
  test('read by id; unknown id → 404', async () => {
    const res = await get(`/fhir/AuditEvent/${recorded[0]!.id}`, officer);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual(recorded[0]);
    expect((await get('/fhir/AuditEvent/nope', officer)).status).toBe(404);
  });

  test('$export streams NDJSON of the matches, oldest first, and is audited', async () => {
    const res = await get(`/fhir/AuditEvent/$export?patient=${P2}`, officer)
      .buffer(true)
      .parse((r, cb) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => cb(null, text));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+ndjson/);
    const lines = (res.body as string)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEvent);
    expect(lines.map((e) => e.id)).toEqual([recorded[4]!.id, recorded[5]!.id]);
    const audit = bundle(await get(`/fhir/AuditEvent?subtype=audit-exported&agent=auditor-${tag}`, officer));
    expect(audit.total).toBe(1);
    expect(JSON.stringify(audit.entry![0]!.resource)).toContain('"valueString":"2"');
    expect((await get(`/fhir/AuditEvent/$export?patient=${P2}&_count=5`, officer)).status).toBe(400);
  });
});

describe('patients: own record, disclosure view only', () => {
  test('a patient token sees only disclosures of its own patient, staff names per policy', async () => {
    const token = await patientToken(P1, 'patient/AuditEvent.rs');
    const b = bundle(await get('/fhir/AuditEvent', token));
    // P1's disclosures: the two token issues, the introspection, the later issue (not the refused one, not the alert type? it is token-issued subtype).
    const expected = idsOf((e) => JSON.stringify(e).includes(`Patient/${P1}"`) && e.outcome === '0');
    expect(ids(b).sort()).toEqual(expected.sort());
    const text = JSON.stringify(b);
    expect(text).not.toContain('Dr Smith');
    expect(text).toContain('Physician');
    expect((await get(`/fhir/AuditEvent?patient=${P2}`, token)).status).toBe(403);
    expect((await get(`/fhir/AuditEvent?outcome=0`, token)).status).toBe(403);
    expect((await get(`/fhir/AuditEvent/${recorded[4]!.id}`, token)).status).toBe(404);
    expect((await get(`/fhir/AuditEvent/${recorded[3]!.id}`, token)).status).toBe(404);
    expect((await get(`/fhir/AuditEvent/${recorded[0]!.id}`, token)).status).toBe(200);
    expect((await get('/fhir/AuditEvent/$export', token)).status).toBe(403);
  });

  test('a patient token without an AuditEvent scope is refused', async () => {
    expect((await get('/fhir/AuditEvent', await patientToken(P1, 'patient/*.rs'))).status).toBe(403);
  });
});
