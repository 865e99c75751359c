import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { search, type AuditSearch } from '../../../src/records/audit/search.js';
import { type Clause } from '../../../src/records/audit/lane.js';
import { allIndexEntries, codeSearchValues } from '../../../src/records/audit/indexes.js';
import { disclosedPatients } from '../../../src/records/audit/disclosure.js';
import { FhirError } from '../../../src/domain/fhir/errors.js';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';

/**
 * The posting-list search against a plain in-memory reference: for a trail of a few hundred
 * events, every query gives the same matches, total and page order as filtering the events one by
 * one, whichever way the search gets there (a seq range, one list's slice, read-whole
 * intersections or probes in Redis).
 */

const T0 = Date.parse('2026-05-01T00:00:00Z');
const MINUTE = 60_000;
const N = 240;

let f: AuditFixture;
const events: AuditEvent[] = [];

beforeAll(async () => {
  f = await auditFixture();
  for (let i = 0; i < N; i++) {
    const event: AuditEvent = {
      ...sampleEvent({
        patient: `p${i % 7}`,
        clientId: i % 3 ? 'app-a' : 'app-b',
        outcome: i % 10 === 0 ? '4' : '0',
        subtype: i % 4 ? 'token-issued' : 'token-introspected',
        recorded: new Date(T0 + i * MINUTE).toISOString(),
        ...(i % 5 === 0 ? { user: { accountId: `u${i % 2}` } } : {}),
      }),
      id: `ps-${i}`,
    };
    events.push(event);
  }
  // Concurrently, so batches of several events (one APPEND per value per batch) are exercised.
  for (let i = 0; i < N; i += 40) await Promise.all(events.slice(i, i + 40).map((e) => f.trail.record(e)));
});
afterAll(async () => {
  await f.close();
});

function reference(q: AuditSearch): { total: number; ids: string[] } {
  const matching = events.filter((e) => {
    const at = Date.parse(e.recorded);
    if (q.dateFrom !== undefined && at < q.dateFrom) return false;
    if (q.dateTo !== undefined && at > q.dateTo) return false;
    const entries = allIndexEntries(e, disclosedPatients(e));
    return q.clauses.every((c) => c.values.some((v) => entries.some(([p, x]) => p === c.param && x === v)));
  });
  const ordered = q.sort === 'date' ? matching : [...matching].reverse();
  const offset = q.offset ?? 0;
  return { total: matching.length, ids: ordered.slice(offset, offset + q.count).map((e) => e.id!) };
}

const patient = (...ids: string[]): Clause => ({ param: 'patient', values: ids.map((p) => `Patient/${p}`) });
const agent = (...ids: string[]): Clause => ({ param: 'agent', values: ids });
const outcome = (...codes: string[]): Clause => ({ param: 'outcome', values: codes });
// As the API passes them: a bare code is looked for in each known code system.
const subtype = (...codes: string[]): Clause => ({ param: 'subtype', values: codes.flatMap(codeSearchValues) });

const queries: Array<[string, AuditSearch]> = [
  ['no parameters (a seq range)', { clauses: [], count: 25 }],
  ['no parameters, oldest first, second page', { clauses: [], count: 25, offset: 25, sort: 'date' }],
  ['a date range only', { clauses: [], count: 50, dateFrom: T0 + 30 * MINUTE, dateTo: T0 + 59 * MINUTE }],
  ['one value (one slice)', { clauses: [patient('p3')], count: 10 }],
  ['one value, a later page oldest first', { clauses: [patient('p3')], count: 10, offset: 20, sort: 'date' }],
  ['one value in a date range', { clauses: [agent('app-b')], count: 100, dateFrom: T0 + 100 * MINUTE, dateTo: T0 + 150 * MINUTE }],
  ['alternatives (a union)', { clauses: [patient('p1', 'p2')], count: 15, offset: 5 }],
  ['two parameters (an intersection)', { clauses: [patient('p4'), outcome('4')], count: 50 }],
  [
    'three parameters with alternatives',
    { clauses: [agent('app-a'), subtype('token-introspected'), patient('p0', 'p5', 'p6')], count: 7, offset: 3 },
  ],
  ['a user agent and a patient', { clauses: [agent('u1'), patient('p5')], count: 50 }],
  [
    'an intersection in a date range',
    { clauses: [agent('app-a'), outcome('0')], count: 30, dateFrom: T0 + 10 * MINUTE, dateTo: T0 + 90 * MINUTE, sort: 'date' },
  ],
  ['nothing matches', { clauses: [patient('nobody'), outcome('0')], count: 10 }],
  ['a page past the end', { clauses: [patient('p2')], count: 10, offset: 1000 }],
];

describe.each(queries)('%s', (name, q) => {
  const ids = (r: { events: AuditEvent[] }) => r.events.map((e) => e.id);

  test('matches the reference', async () => {
    const got = await search(f.store, q);
    expect({ total: got.total, ids: ids(got) }).toEqual(reference(q));
    // Every query but one finds something, so agreeing on nothing proves nothing.
    if (name !== 'nothing matches') expect(got.total).toBeGreaterThan(0);
  });

  test('the same when every other clause is probed in Redis instead of read whole', async () => {
    const got = await search(f.store, { ...q, limits: { readWhole: 0 } });
    expect({ total: got.total, ids: ids(got) }).toEqual(reference(q));
  });
});

test('a multi-parameter search whose smallest parameter is too large is refused as too costly', async () => {
  const q: AuditSearch = { clauses: [agent('app-a'), outcome('0')], count: 10 };
  const err = await search(f.store, { ...q, limits: { maxCandidates: 50 } }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FhirError);
  expect(err).toMatchObject({ status: 400, code: 'too-costly' });
  // A date range narrows it enough.
  const narrowed = { ...q, dateFrom: T0, dateTo: T0 + 40 * MINUTE };
  expect((await search(f.store, { ...narrowed, limits: { maxCandidates: 50 } })).total).toBe(reference(narrowed).total);
  // One parameter alone is a slice and never too costly.
  expect((await search(f.store, { clauses: [agent('app-a')], count: 1, limits: { maxCandidates: 50 } })).total).toBe(
    reference({ clauses: [agent('app-a')], count: 1 }).total,
  );
});

test('an event stamped earlier than the entry before it is found at that entry’s time (trail time never goes back)', async () => {
  const g = await auditFixture();
  try {
    await g.trail.record({ ...sampleEvent({ patient: 'late', recorded: '2026-06-01T12:00:00Z' }), id: 'first' });
    await g.trail.record({ ...sampleEvent({ patient: 'late', recorded: '2026-06-01T11:59:59.990Z' }), id: 'skewed' });
    const at = (from: string, to: string) =>
      search(g.store, { clauses: [patient('late')], count: 10, dateFrom: Date.parse(from), dateTo: Date.parse(to) });
    expect((await at('2026-06-01T12:00:00Z', '2026-06-01T12:00:00Z')).events.map((e) => e.id)).toEqual(['skewed', 'first']);
    // The event itself keeps the time it was stamped with.
    expect((await at('2026-06-01T12:00:00Z', '2026-06-01T12:00:00Z')).events[0]!.recorded).toBe('2026-06-01T11:59:59.990Z');
  } finally {
    await g.close();
  }
});
