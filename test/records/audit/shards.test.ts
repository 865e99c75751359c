import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';
import { byShardOrder, type ChainEntry, type ChainName } from '../../../src/records/audit/chain.js';
import { search, searchAll, type AuditSearch } from '../../../src/records/audit/search.js';
import { type Key } from '../../../src/records/audit/lane.js';
import { pageQuery, parseAuditSearch } from '../../../src/records/audit/search-params.js';
import { AuditStore } from '../../../src/records/audit/store.js';
import { FhirError } from '../../../src/domain/fhir/errors.js';

/*
 * A trail spread over three chains (AUTHZ_AUDIT_CHAINS=3) on one Redis: appends spread over the
 * chains, each chain verifies on its own, and search merges the chains by trail time, page by
 * page, forwards and backwards, exactly as one sorted list of every entry would.
 */

const EVENTS = 600;
const PATIENTS = 7;

let f: AuditFixture;
let entries: Array<ChainEntry & { chain: ChainName }>;

beforeAll(async () => {
  // Small batches, so concurrent records go out as many batches over every chain.
  f = await auditFixture({ AUTHZ_AUDIT_CHAINS: '3', AUTHZ_AUDIT_MAX_BATCH: '16' });
  const base = Date.now() - 60_000;
  // Several waves of concurrent records; some share a recorded time (ties across chains).
  for (let wave = 0; wave < 6; wave++) {
    await Promise.all(
      Array.from({ length: EVENTS / 6 }, (_, i) =>
        f.trail.record(
          sampleEvent({
            patient: `shard-p${(wave * 100 + i) % PATIENTS}`,
            clientId: `app-${i % 3}`,
            recorded: new Date(base + wave * 1000 + (i % 10) * 10).toISOString(),
          }),
        ),
      ),
    );
  }
  const chains = await f.store.chains();
  entries = [];
  for (const chain of chains) for await (const e of f.store.walk(chain)) entries.push({ ...e, chain });
}, 60_000);

afterAll(async () => {
  await f?.close();
});

/** Every entry in the order a search must return it. */
function reference(desc: boolean, keep: (e: ChainEntry) => boolean = () => true): string[] {
  return (
    entries
      .filter(keep)
      // Trail time, then chain name (byte order), then seq; newest first reverses all three.
      .sort((a, b) => (desc ? -1 : 1) * (a.t !== b.t ? a.t - b.t : a.chain !== b.chain ? (a.chain < b.chain ? -1 : 1) : a.seq - b.seq))
      .map((e) => e.id)
  );
}

/** Follows next links (the last match's key) to the end; returns every page's ids and each page's first match. */
async function pageThrough(
  q: Omit<AuditSearch, 'offset' | 'after' | 'before'>,
): Promise<{ pages: string[][]; firsts: Array<{ offset: number; first?: Key }>; asOf: number }> {
  const pages: string[][] = [];
  const firsts: Array<{ offset: number; first?: Key }> = [];
  let offset = 0;
  let after: Key | undefined;
  let asOf: number | undefined;
  for (;;) {
    const page = await search(f.store, { ...q, offset, ...(after ? { after } : {}), ...(asOf ? { asOf } : {}) });
    asOf = page.asOf;
    firsts.push({ offset, ...(page.first ? { first: page.first } : {}) });
    pages.push(page.events.map((e) => e.id!));
    if (offset + q.count >= page.total) return { pages, firsts, asOf };
    offset += q.count;
    after = page.last;
  }
}

describe('audit trail over several chains', () => {
  test('appends spread over every chain, and each chain verifies', async () => {
    const counts = new Map<ChainName, number>();
    for (const e of entries) counts.set(e.chain, (counts.get(e.chain) ?? 0) + 1);
    expect([...counts.keys()].sort(byShardOrder)).toEqual(['main', 'main-1', 'main-2']);
    for (const n of counts.values()) expect(n).toBeGreaterThan(EVENTS / 10);
    expect(entries).toHaveLength(EVENTS);
    expect(new Set(entries.map((e) => e.id)).size).toBe(EVENTS);
    expect((await f.redis.smembers(f.keyspace.auditShards())).sort()).toEqual(['main-1', 'main-2']);
    for (const chain of await f.store.chains()) {
      const report = await verifyChain(f.store, f.keys, chain, verifyPolicy(f.config));
      expect({ chain, ok: report.ok, problem: report.problem }).toEqual({ chain, ok: true, problem: undefined });
    }
  });

  test('a server configured with fewer chains still reads every chain an earlier setting wrote', async () => {
    const narrow = new AuditStore(f.redis, f.keyspace, 1);
    expect(await narrow.chains()).toEqual(['main', 'main-1', 'main-2', 'archive']);
    const some = entries
      .filter((e) => e.chain === 'main-2')
      .slice(0, 5)
      .map((e) => e.id);
    expect((await narrow.events(some)).map((e) => e.id)).toEqual(some);
  });

  test('newest first: the pages, followed by their links, are the merged order of every chain', async () => {
    const { pages } = await pageThrough({ clauses: [], count: 37, sort: '-date' });
    expect(pages.flat()).toEqual(reference(true));
    expect(pages.slice(0, -1).every((p) => p.length === 37)).toBe(true);
  });

  test('oldest first and with a filter: the same merge', async () => {
    const asc = await pageThrough({ clauses: [], count: 50, sort: 'date' });
    expect(asc.pages.flat()).toEqual(reference(false));
    const patient = 'Patient/shard-p3';
    const filtered = await pageThrough({ clauses: [{ param: 'patient', values: [patient] }], count: 9, sort: '-date' });
    const expected = reference(true, (e) => e.event.includes(`"${patient}"`));
    expect(expected.length).toBeGreaterThan(40);
    expect(filtered.pages.flat()).toEqual(expected);
  });

  test('entity: the events whose entity.what references the resource, as absolute URL or Type/id', async () => {
    const byEntity = await pageThrough({
      ...parseAuditSearch({ entity: 'http://fhir.example.org/r4/Patient/shard-p5' }),
      count: 25,
      sort: '-date',
    });
    const expected = reference(true, (e) => e.event.includes('"Patient/shard-p5"'));
    expect(expected.length).toBeGreaterThan(40);
    expect(byEntity.pages.flat()).toEqual(expected);
    expect(() => parseAuditSearch({ entity: '|' })).toThrow(/entity must be a reference/);
  });

  test('previous links lead back to exactly the page before', async () => {
    const q = { clauses: [], count: 41, sort: '-date' as const };
    const { pages, firsts, asOf } = await pageThrough(q);
    for (let i = 1; i < pages.length; i++) {
      const back = await search(f.store, { ...q, offset: firsts[i]!.offset - q.count, before: firsts[i]!.first!, asOf });
      expect(back.events.map((e) => e.id)).toEqual(pages[i - 1]);
    }
  });

  test('a page link without a key (an earlier version) still lands on the right page', async () => {
    const page = await search(f.store, { clauses: [], count: 25, sort: '-date', offset: 100 });
    expect(page.events.map((e) => e.id)).toEqual(reference(true).slice(100, 125));
    await expect(search(f.store, { clauses: [], count: 25, sort: '-date', offset: 20_000 })).rejects.toThrow(FhirError);
  });

  test('an export walks every match once, oldest first', async () => {
    const ids: string[] = [];
    for await (const events of searchAll(f.store, { clauses: [], sort: 'date' }, 64)) ids.push(...events.map((e) => e.id!));
    expect(ids).toEqual(reference(false));
  });

  test('page links carry the key of the last match, and a tampered link is refused', async () => {
    const q = parseAuditSearch({ _count: '10' });
    const page = await search(f.store, q);
    const next = new URLSearchParams(pageQuery({ _count: '10' }, [], 10, { offset: 10, asOf: page.asOf, after: page.last }));
    const parsed = parseAuditSearch(Object.fromEntries(next));
    expect(parsed.after).toEqual(page.last);
    const second = await search(f.store, parsed);
    expect(second.events.map((e) => e.id)).toEqual(reference(true).slice(10, 20));
    // Keys that name no chain, or are not (t, chain, seq), are not a cursor of this server.
    for (const forged of [
      [10, page.asOf, [1, 'main-99', 3], 'a'],
      [10, page.asOf, [1, 'main'], 'a'],
      [10, page.asOf, [1, 'main', 0], 'a'],
      [10, page.asOf, [1, 'main', 2], 'x'],
      [10, page.asOf, [10]],
    ]) {
      expect(() => parseAuditSearch({ _cursor: Buffer.from(JSON.stringify(forged)).toString('base64url') })).toThrow(
        /_cursor is not a paging token/,
      );
    }
  });
});
