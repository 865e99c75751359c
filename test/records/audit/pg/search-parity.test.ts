import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createPgTestDatabase, type PgTestDatabase } from '../../../support/postgres.js';
import { PgAuditStore, type PgEntry } from '../../../../src/records/audit/pg/store.js';
import { verifyChains } from '../../../../src/records/audit/pg/verify.js';
import { search, type AuditSearch } from '../../../../src/records/audit/search.js';
import { parseAuditSearch, type Query } from '../../../../src/records/audit/search-params.js';
import { ChainAppender } from '../../../../src/records/audit/append.js';
import { prepareEvent } from '../../../../src/records/audit/trail.js';
import { introspectionRecord } from '../../../../src/records/audit/forms/introspection.js';
import type { Recordable } from '../../../../src/records/audit/stored-event.js';
import type { AuditEvent } from '../../../../src/records/audit/audit-event.js';
import { auditFixture, sampleEvent, type AuditFixture } from '../support.js';

/**
 * The same events recorded through the Redis trail (append script, posting lists) and shipped
 * entry by entry into PostgreSQL: every search must answer the same total and the same ids in
 * the same order from both.
 */

let db: PgTestDatabase;
let pgStore: PgAuditStore;
let redis: AuditFixture;
const asOf = Date.UTC(2026, 5, 1);

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ISSUER = 'http://localhost:3000';

function fixtureEvents(): { main: Recordable[]; archive: Recordable[] } {
  const main: Recordable[] = [];
  const at = (i: number) => new Date(Date.UTC(2026, 0, 28) + i * 7 * 3_600_000 + (i % 5) * 137).toISOString();
  for (let i = 0; i < 60; i++) {
    const patient = `p${i % 4}`;
    const recorded = at(i);
    switch (i % 6) {
      case 0:
        main.push(
          sampleEvent({
            patient,
            clientId: 'app-a',
            recorded,
            user: { accountId: `u${i % 3}`, fhirUser: `Practitioner/dr-${i % 3}` },
            purpose: 'TREAT',
          }),
        );
        break;
      case 1:
        main.push(
          introspectionRecord(
            ISSUER,
            {
              callerId: 'rs-1',
              ip: '10.0.0.1',
              active: true,
              value: 'v',
              token: {
                format: 'jwt',
                id: `jti-${i}`,
                kind: 'AccessToken',
                clientId: i % 4 ? 'app-a' : 'app-b',
                scope: 'patient/*.rs',
                extra: { patient },
              },
            },
            new Date(recorded),
          ),
        );
        break;
      case 2:
        main.push(sampleEvent({ patient, clientId: 'app-b', recorded, subtype: 'token-refused', outcome: '4' }));
        break;
      case 3:
        main.push(introspectionRecord(ISSUER, { callerId: 'rs-2', ip: '10.0.0.2', active: false, value: `bad-${i}` }, new Date(recorded)));
        break;
      case 4:
        // A type of another system: indexed as code and system|code, so a bare-code search matches it twice.
        main.push({
          ...sampleEvent({ patient, clientId: 'app-a', recorded }),
          type: { system: 'urn:example:other', code: '110114' },
          action: 'R',
        } as AuditEvent);
        break;
      default:
        // Recorded a little before the entry ahead of it: the trail time clamps it forward.
        main.push(
          sampleEvent({
            patient,
            clientId: 'app-c',
            recorded: new Date(Date.parse(at(i - 1)) - 60_000).toISOString(),
            outcome: '8',
            subtype: 'refresh-reuse',
          }),
        );
    }
  }
  // Retention's archive chain: older disclosures, its own seqs.
  const archive: Recordable[] = Array.from({ length: 8 }, (_, i) =>
    sampleEvent({ patient: `p${i % 2}`, clientId: 'app-a', recorded: new Date(Date.UTC(2025, 11, 1) + i * 86_400_000).toISOString() }),
  );
  return { main, archive };
}

beforeAll(async () => {
  [db, redis] = await Promise.all([createPgTestDatabase(), auditFixture()]);
  pgStore = new PgAuditStore(db.appUrl);
  const { main, archive } = fixtureEvents();
  for (const e of main) await redis.trail.record(e);
  await new ChainAppender(redis.redis, redis.keyspace, 'archive').append(archive.map((e) => prepareEvent(e)));
  // Ship: every entry of both chains, as Redis holds it, in batches.
  for (const chain of ['main', 'archive'] as const) {
    let batch: PgEntry[] = [];
    for await (const e of redis.store.walk(chain, 7)) {
      const { sid: _sid, ...entry } = e;
      batch.push({ ...entry, chain });
      if (batch.length === 16) {
        await pgStore.insert(batch);
        batch = [];
      }
    }
    await pgStore.insert(batch);
  }
});
afterAll(async () => {
  await pgStore?.close();
  await redis?.close();
  await db?.drop();
});

const ids = (events: AuditEvent[]) => events.map((e) => e.id);

const queries: Array<[string, Query]> = [
  ['no filter', {}],
  ['no filter, oldest first', { _sort: 'date' }],
  ['patient', { patient: 'p1' }],
  ['patient, comma = or', { patient: 'Patient/p1,p2' }],
  ['agent (client id)', { agent: 'app-a' }],
  ['agent (reference)', { agent: 'Practitioner/dr-1' }],
  ['type, bare code (two systems)', { type: '110114' }],
  ['type, system|code', { type: `${DCM}|110114` }],
  ['type, two values one event carries both of', { type: '110114,urn:example:other|110114' }],
  ['subtype', { subtype: 'token-refused,refresh-reuse' }],
  ['outcome', { outcome: '4,8' }],
  ['action', { action: 'R' }],
  ['patient and subtype (AND)', { patient: 'p0', subtype: 'token-introspected' }],
  ['patient and agent and outcome', { patient: 'p2', agent: 'app-a,app-b', outcome: '0' }],
  ['repeated parameter = and', { agent: ['app-a', 'rs-1'] }],
  ['date range (eq day)', { date: '2026-02-03' }],
  ['date range (ge/lt) with patient', { date: ['ge2026-02-01', 'lt2026-02-10T12:00:00Z'], patient: 'p3' }],
  ['date, up to, oldest first', { date: 'le2026-01-29', _sort: 'date' }],
  ['archive and main together', { patient: 'p0', date: 'lt2026-02-01' }],
  ['nothing matches', { patient: 'nobody' }],
  ['nothing in the range', { date: 'ge2027-01-01' }],
];

describe('search parity: Redis trail and PostgreSQL store answer alike', () => {
  test.each(queries)('%s', async (_name, query) => {
    const parsed = parseAuditSearch({ _count: '200', ...query });
    const q: AuditSearch = { ...parsed, asOf };
    const [fromRedis, fromPg] = await Promise.all([search(redis.store, q), pgStore.search(q)]);
    expect(fromPg.total).toBe(fromRedis.total);
    expect(ids(fromPg.events)).toEqual(ids(fromRedis.events));
    expect(fromPg.events).toEqual(fromRedis.events);
    expect(fromPg.asOf).toBe(asOf);
  });

  test('the fixture exercises what it should', async () => {
    const all = await pgStore.search({ clauses: [], count: 200, asOf });
    expect(all.total).toBe(68);
    expect((await pgStore.search({ ...parseAuditSearch({ type: '110114' }), count: 200, asOf })).total).toBeGreaterThan(20);
  });

  test.each([
    ['no filter', {}],
    ['agent', { agent: 'app-a' }],
    ['patient and subtype', { patient: 'p1,p3', subtype: 'token-introspected,token-issued' }],
    ['type with a date, oldest first', { type: '110114', date: 'ge2026-02-02', _sort: 'date' }],
  ] as Array<[string, Query]>)('paging: %s, every page of 7 (and _count=0)', async (_name, query) => {
    const first = parseAuditSearch(query);
    const whole = await search(redis.store, { ...first, count: 200, asOf });
    for (let offset = 0; offset <= whole.total + 7; offset += 7) {
      const q: AuditSearch = { ...first, count: 7, offset, asOf };
      const [r, p] = await Promise.all([search(redis.store, q), pgStore.search(q)]);
      expect({ offset, total: p.total, ids: ids(p.events) }).toEqual({ offset, total: r.total, ids: ids(r.events) });
    }
    const zero = { ...first, count: 0, asOf };
    expect((await pgStore.search(zero)).total).toBe((await search(redis.store, zero)).total);
  });

  test('asOf hides later entries on both', async () => {
    const q: AuditSearch = { clauses: [], count: 200, asOf: Date.UTC(2026, 1, 5) };
    const [r, p] = await Promise.all([search(redis.store, q), pgStore.search(q)]);
    expect(p.total).toBe(r.total);
    expect(p.total).toBeGreaterThan(8);
    expect(p.total).toBeLessThan(68);
  });

  test('the shipped chains verify in PostgreSQL, and read by id matches', async () => {
    const reports = await verifyChains(pgStore);
    expect(reports.map((r) => [r.chain, r.ok, r.lastSeq])).toEqual([
      ['archive', true, 8],
      ['main', true, 60],
    ]);
    const some = (await search(redis.store, { clauses: [], count: 5, asOf })).events;
    expect(await pgStore.eventsByIds(some.map((e) => e.id!))).toEqual(some);
  });
});
