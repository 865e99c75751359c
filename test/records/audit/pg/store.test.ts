import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createPgTestDatabase, PG_ADMIN_URL, type PgTestDatabase, asRole } from '../../../support/postgres.js';
import { PgAuditStore, AuditIntegrityError, AUDIT_SQLSTATE } from '../../../../src/records/audit/pg/store.js';
import { ensurePartitions, listPartitions } from '../../../../src/records/audit/pg/partitions.js';
import { entryHash } from '../../../../src/records/audit/chain.js';
import { sampleEvent } from '../support.js';
import { after, chainOf } from './entries.js';

let db: PgTestDatabase;
let store: PgAuditStore;

const at = (iso: string, i: number) => sampleEvent({ patient: `p-${i % 3}`, clientId: `app-${i % 2}`, recorded: iso });
const events = (n: number, start = Date.UTC(2026, 0, 10)) =>
  Array.from({ length: n }, (_, i) => ({ ...at(new Date(start + i * 60_000).toISOString(), i), id: `ev-${start}-${i}` }));

beforeAll(async () => {
  db = await createPgTestDatabase();
  store = new PgAuditStore(db.appUrl);
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

describe('insert', () => {
  test('two writers reaching a month without partitions at once both succeed (the shipper writes chains in parallel)', async () => {
    for (let round = 0; round < 4; round++) {
      const start = Date.UTC(2040 + round, 4, 10);
      const a = new PgAuditStore(db.appUrl);
      const b = new PgAuditStore(db.appUrl);
      try {
        const results = await Promise.allSettled([
          a.insert(chainOf(`race-a-${round}`, events(100, start))),
          b.insert(chainOf(`race-b-${round}`, events(100, start))),
        ]);
        expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([100, 100]);
      } finally {
        await a.close();
        await b.close();
      }
    }
  });

  test('re-inserting what is there is a no-op; an overlapping batch adds only what is new', async () => {
    const chain = chainOf('idem', events(15));
    expect(await store.insert(chain.slice(0, 10))).toBe(10);
    expect(await store.insert(chain.slice(0, 10))).toBe(0);
    expect(await store.insert(chain.slice(5, 15))).toBe(5);
    expect(await store.highestSeq('idem')).toBe(15);
    const read = await store.entries('idem', 0, 100);
    expect(read).toEqual(chain);
    // Keyset pages.
    expect((await store.entries('idem', 12, 2)).map((e) => e.seq)).toEqual([13, 14]);
    expect(await store.highestSeq('nothing-here')).toBe(0);
  });

  test('a different entry at a stored (chain, seq) is refused loudly, and nothing of its batch is written', async () => {
    const chain = chainOf('conflict', events(5, Date.UTC(2026, 0, 11)));
    await store.insert(chain);
    // A self-consistent but different entry 3 (another event, hashed properly) followed by new ones.
    const forged = chainOf('conflict', [{ ...at('2026-01-11T00:02:00Z', 9), id: 'forged' }], after(chain[1]!));
    const more = chainOf('conflict', events(2, Date.UTC(2026, 0, 12)), after(chain[4]!));
    const err = await store.insert([...more, ...forged]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect((err as AuditIntegrityError).code).toBe(AUDIT_SQLSTATE.conflict);
    expect((err as Error).message).toMatch(/conflict#3/);
    expect(await store.highestSeq('conflict')).toBe(5);
    // Two different entries at one seq in the same batch.
    const twin = chainOf('conflict', [{ ...at('2026-01-12T00:00:00Z', 1), id: 'twin' }], after(chain[4]!));
    await expect(store.insert([more[0]!, twin[0]!])).rejects.toMatchObject({ code: AUDIT_SQLSTATE.conflict });
    // The genuine continuation still goes in.
    expect(await store.insert(more)).toBe(2);
  });

  test('an entry that does not match its hash, or does not link to its stored neighbours, is refused', async () => {
    const chain = chainOf('links', events(4, Date.UTC(2026, 0, 13)));
    await store.insert(chain.slice(0, 2));
    const edited = { ...chain[2]!, event: chain[2]!.event.replace('"outcome":"0"', '"outcome":"4"') };
    await expect(store.insert([edited])).rejects.toMatchObject({ code: AUDIT_SQLSTATE.hashMismatch });
    // Self-consistent, but not chained onto the stored entry 2.
    const detached = chainOf('links', events(1, Date.UTC(2026, 0, 14)), { seq: 2, hash: 'f'.repeat(64), t: 0 });
    await expect(store.insert(detached)).rejects.toMatchObject({ code: AUDIT_SQLSTATE.brokenLink });
    // An entry whose successor is stored but links to something else.
    const other = chainOf('links2', events(3, Date.UTC(2026, 0, 15)));
    await store.insert([other[0]!, other[2]!]);
    const wrongMiddle = chainOf('links2', [{ ...at('2026-01-15T00:01:00Z', 4), id: 'mid' }], after(other[0]!));
    await expect(store.insert(wrongMiddle)).rejects.toMatchObject({ code: AUDIT_SQLSTATE.brokenLink });
    expect(await store.insert([other[1]!])).toBe(1);
    // A first entry that does not start at the genesis.
    const bad = { ...chain[0]!, chain: 'genesis', prev: '1'.repeat(64) };
    bad.hash = entryHash(1, bad.prev, bad.event);
    await expect(store.insert([bad])).rejects.toMatchObject({ code: AUDIT_SQLSTATE.brokenLink });
  });

  test('eventsByIds: in the order asked, unknown ids skipped, an archived copy wins', async () => {
    const main = chainOf('main', events(3, Date.UTC(2026, 0, 16)));
    const ev = JSON.parse(main[1]!.event);
    const archived = chainOf('archive', [{ ...ev, outcome: '0', purposeOfEvent: [{ text: 'archived copy' }] }]);
    await store.insert([...main, ...archived]);
    const found = await store.eventsByIds([main[2]!.id, 'unknown', main[1]!.id, main[0]!.id]);
    expect(found.map((e) => e.id)).toEqual([main[2]!.id, main[1]!.id, main[0]!.id]);
    expect(found[1]!.purposeOfEvent).toEqual([{ text: 'archived copy' }]);
    expect(await store.eventsByIds([])).toEqual([]);
  });

  test('checkpoints are stored once', async () => {
    const payload = { iss: 'x', chain: 'cp', seq: 3, hash: 'a'.repeat(64), iat: 1_767_225_600, reason: 'cadence' };
    const jws = `eyJhbGciOiJFUzM4NCJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
    expect(await store.insertCheckpoint(jws)).toBe(true);
    expect(await store.insertCheckpoint(jws)).toBe(false);
    expect(await store.checkpoints('cp')).toEqual([
      { chain: 'cp', seq: 3, hash: 'a'.repeat(64), iat: 1_767_225_600, reason: 'cadence', jws },
    ]);
    await expect(store.insertCheckpoint('not.a.jws')).rejects.toBeInstanceOf(AuditIntegrityError);
  });
});

describe('append-only', () => {
  test('the application role cannot UPDATE, DELETE or TRUNCATE (PostgreSQL refuses), nor drop partitions', async () => {
    await store.insert(chainOf('ro', events(2, Date.UTC(2026, 0, 17))));
    await asRole(db.appUrl, async (c) => {
      for (const sql of [
        "UPDATE audit.entries SET id = 'x' WHERE chain = 'ro'",
        "DELETE FROM audit.entries WHERE chain = 'ro'",
        'TRUNCATE audit.entries',
        "UPDATE audit.entry_values SET term = 'x'",
        'DELETE FROM audit.entry_values',
        'DELETE FROM audit.checkpoints',
        'DROP TABLE audit.entries_202601',
        'ALTER TABLE audit.entries DETACH PARTITION audit.entries_202601',
        "INSERT INTO audit.retention_cuts (chain, seq, hash, before) VALUES ('ro', 1, '\\x00', now())",
        "INSERT INTO audit.kept SELECT * FROM audit.entries WHERE chain = 'ro'",
        'DELETE FROM audit.kept',
      ]) {
        await expect(c.query(sql)).rejects.toMatchObject({ code: expect.stringMatching(/^(42501)$/) });
      }
      // Direct access to a partition is not granted either.
      await expect(c.query('SELECT count(*) FROM audit.entries_202601')).rejects.toMatchObject({ code: '42501' });
    });
    // Even the owner cannot change a row: the trigger refuses (retention drops partitions instead).
    await asRole(db.ownerUrl, async (c) => {
      await expect(c.query("UPDATE audit.entries SET id = 'x' WHERE chain = 'ro'")).rejects.toMatchObject({
        code: AUDIT_SQLSTATE.appendOnly,
      });
      await expect(c.query("DELETE FROM audit.entries WHERE chain = 'ro'")).rejects.toMatchObject({ code: AUDIT_SQLSTATE.appendOnly });
    });
    expect(await store.highestSeq('ro')).toBe(2);
  });
});

describe('partitions', () => {
  test('entries land in their UTC month, one partition per month, created on demand or ahead', async () => {
    const times = [
      '2025-11-30T23:59:59.999Z',
      '2025-12-01T00:00:00.000Z',
      '2025-12-31T23:59:59.999Z',
      '2026-02-01T00:00:00.000Z',
      '2026-02-03T00:00:00.000Z',
    ];
    const chain = chainOf(
      'months',
      times.map((iso, i) => ({ ...at(iso, i), id: `m-${i}` })),
    );
    // Another chain that also has December entries: its cut is recorded separately.
    const other = chainOf('months-1', [
      { ...at('2025-12-15T00:00:00Z', 1), id: 'o-0' },
      { ...at('2026-02-02T00:00:00Z', 2), id: 'o-1' },
    ]);
    await store.insert([...chain, ...other]);
    // Ahead of time too (the next month), idempotently.
    expect(await ensurePartitions(store.pool, [Date.UTC(2026, 2, 5)])).toBe(2);
    expect(await ensurePartitions(store.pool, [Date.UTC(2026, 2, 20)])).toBe(0);
    const months = (await listPartitions(store.pool)).map((p) => p.month);
    expect(months).toEqual(expect.arrayContaining(['2025-11', '2025-12', '2026-01', '2026-02', '2026-03']));
    expect(months).not.toContain('2026-04');
    const counts = await asRole(
      PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db.database}`),
      async (c) =>
        (
          await c.query<{ p: string; n: string }>(
            "SELECT tableoid::regclass::text AS p, count(*) AS n FROM audit.entries WHERE chain = 'months' GROUP BY 1 ORDER BY 1",
          )
        ).rows,
    );
    expect(counts).toEqual([
      { p: 'audit.entries_202511', n: '1' },
      { p: 'audit.entries_202512', n: '2' },
      { p: 'audit.entries_202602', n: '2' },
    ]);

    // Retention (dropping months, keeping disclosures) is test/records/audit/pg/retention.test.ts.
  });
});
