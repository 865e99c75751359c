import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from '../support.js';
import { startPrivatePostgres, type PrivatePostgres } from '../../../support/private-postgres.js';
import { createPgTestDatabase } from '../../../support/postgres.js';
import { PgAuditStore } from '../../../../src/records/audit/pg/store.js';
import { pgHome } from '../../../../src/records/audit/pg/home.js';
import { verifyChains } from '../../../../src/records/audit/pg/verify.js';
import { bindTrail } from '../../../../src/records/audit/pg/connect.js';
import { AuditStore } from '../../../../src/records/audit/store.js';
import { search } from '../../../../src/records/audit/search.js';
import { type Key } from '../../../../src/records/audit/lane.js';
import { verifyChain, verifyPolicy } from '../../../../src/records/audit/verify.js';
import { AuditShipper } from '../../../../src/records/audit/shipper.js';
import { StoreUnavailableError } from '../../../../src/platform/redis/circuit-breaker.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';

/*
 * Redis as the intake, PostgreSQL as the home: 8 writers append for 7 s while the shipper (a
 * process of its own) is SIGKILLed, a second one takes over, and PostgreSQL (a private server) is
 * SIGKILLed and restarted. Afterwards every acknowledged event is in PostgreSQL exactly once, each
 * chain verifies there and in what Redis still holds, Redis holds only a short tail, and search
 * over both finds every event once.
 */

const WRITERS = 8;

let pgServer: PrivatePostgres;
let f: AuditFixture;
let pg: PgAuditStore;
const workers: ChildProcess[] = [];

function startWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/records/audit/pg/ship-worker.ts'], {
    env: {
      ...process.env,
      AUTHZ_REDIS_PREFIX: f.config.redis.prefix,
      AUTHZ_AUDIT_DATABASE_URL: pgServer.appUrl,
      AUTHZ_AUDIT_CHAINS: '2',
      AUTHZ_LOG_LEVEL: 'silent',
      SHIP_TRIM_MS: '400',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  workers.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`ship worker exited (${code})`)));
  });
}

beforeAll(async () => {
  pgServer = await startPrivatePostgres();
  f = await auditFixture({ AUTHZ_AUDIT_CHAINS: '2', AUTHZ_AUDIT_MAX_BATCH: '50' });
  pg = new PgAuditStore(pgServer.appUrl);
  await bindTrail({ store: pg, home: pgHome(pg), ownerUrl: pgServer.ownerUrl, close: () => pg.close() }, f.redis, f.keyspace);
}, 60_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await f?.close();
  await pg?.close();
  await pgServer?.stop();
});

describe('the Redis intake ships to PostgreSQL', () => {
  test('under load, through a shipper crash and a PostgreSQL crash, every acknowledged event lands once and every chain verifies', async () => {
    const acknowledged: string[] = [];
    const ackTimes: number[] = [];
    const refused: string[] = [];
    const marks: Record<string, number> = {};
    let stop = false;
    const started = Date.now();
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const id = randomUUID();
        try {
          await f.trail.record({ ...sampleEvent({ patient: `intake-${w}-${i % 4}`, clientId: `app-${w % 3}` }), id });
          acknowledged.push(id);
          ackTimes.push(Date.now());
        } catch (err) {
          refused.push(`${(err as Error).message}`);
        }
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    });
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    // Timed by relative pauses: under load a timer fires late, and each phase must still last.
    const first = await startWorker();
    await sleep(1_500);
    first.kill('SIGKILL');
    marks.shipperKilled = Date.now() - started;
    await sleep(1_000);
    await startWorker();
    await sleep(1_000);
    await pgServer.kill();
    const pgDownAt = Date.now();
    marks.pgKilled = pgDownAt - started;
    await sleep(2_000);
    await pgServer.restart();
    const pgUpAt = Date.now();
    marks.pgRestarted = pgUpAt - started;
    await sleep(2_000);
    stop = true;
    await Promise.all(writers);
    marks.loadStopped = Date.now() - started;
    const whilePgDown = ackTimes.filter((t) => t > pgDownAt && t < pgUpAt).length;

    // The second shipper catches up (and trims) once the load stops.
    const deadline = Date.now() + 60_000;
    let shipped: number;
    for (;;) {
      shipped = Number((await pg.pool.query<{ n: string }>('SELECT count(*) AS n FROM audit.entries')).rows[0]!.n);
      if (shipped >= acknowledged.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // Trim rounds follow the last batch (after the trim delay): Redis keeps only a short tail.
    const tailOf = async () =>
      (await Promise.all(['main', 'main-1'].map((c) => f.redis.xlen(f.keyspace.auditStream(c as 'main'))))).reduce((a, b) => a + b, 0);
    let tail = await tailOf();
    for (const until = Date.now() + 20_000; tail >= acknowledged.length / 10 && Date.now() < until; tail = await tailOf()) await sleep(200);
    console.log(
      `intake → PostgreSQL: ${acknowledged.length} events acknowledged in ${marks.loadStopped} ms (${whilePgDown} while PostgreSQL was down), ${refused.length} refused; ` +
        `${shipped} in PostgreSQL, ${tail} still in Redis; marks ${JSON.stringify(marks)}`,
    );

    expect(refused).toEqual([]);
    expect(whilePgDown).toBeGreaterThan(100);
    // Every acknowledged event exactly once.
    const { rows } = await pg.pool.query<{ id: string; n: string }>('SELECT id, count(*) AS n FROM audit.entries GROUP BY id');
    const counts = new Map(rows.map((r) => [r.id, Number(r.n)]));
    expect(acknowledged.filter((id) => counts.get(id) !== 1)).toEqual([]);
    expect(rows.length).toBe(acknowledged.length);
    // Redis keeps only a short tail: most of the trail was dropped from it.
    expect(tail).toBeLessThan(acknowledged.length / 10);

    // Each chain verifies in PostgreSQL (signed checkpoints checked) and in what Redis still holds.
    const reports = await verifyChains(pg, { keys: f.keys, every: f.config.audit.checkpointEvery });
    expect(reports.map((r) => ({ chain: r.chain, problem: r.problem }))).toEqual([
      { chain: 'main', problem: undefined },
      { chain: 'main-1', problem: undefined },
    ]);
    const store = new AuditStore(f.redis, f.keyspace, 2, pgHome(pg));
    for (const chain of ['main', 'main-1'] as const) {
      const report = await verifyChain(store, f.keys, chain, verifyPolicy(f.config));
      expect({ chain, problem: report.problem }).toEqual({ chain, problem: undefined });
    }

    // Search over PostgreSQL and the Redis tail finds every event once, page after page.
    const seen = new Set<string>();
    let offset = 0;
    let after: Key | undefined;
    let total: number;
    let asOf: number | undefined;
    for (;;) {
      const page = await search(store, {
        clauses: [],
        count: 1000,
        sort: '-date',
        offset,
        ...(after ? { after } : {}),
        ...(asOf ? { asOf } : {}),
      });
      asOf = page.asOf;
      total = page.total;
      for (const e of page.events) seen.add(e.id!);
      if (offset + 1000 >= page.total) break;
      offset += 1000;
      after = page.last;
    }
    expect(total).toBe(acknowledged.length);
    expect(seen.size).toBe(acknowledged.length);
    const patient = await search(store, { clauses: [{ param: 'patient', values: ['Patient/intake-3-1'] }], count: 5000, sort: 'date' });
    expect(patient.total).toBe(acknowledged.length ? patient.events.length : 0);
    expect(patient.total).toBeGreaterThan(0);
    // Read by id: from PostgreSQL once Redis dropped it.
    const oldest = acknowledged.slice(0, 3);
    expect((await store.events(oldest)).map((e) => e.id)).toEqual(oldest);
  }, 120_000);

  test('pages stay exact while the shipper moves entries from Redis to PostgreSQL between them', async () => {
    const g = await auditFixture({ AUTHZ_AUDIT_MAX_BATCH: '20' });
    const db = await createPgTestDatabase();
    const home = new PgAuditStore(db.appUrl);
    const shipper = new AuditShipper({
      redis: g.redis,
      keyspace: g.keyspace,
      store: new AuditStore(g.redis, g.keyspace, 1, pgHome(home)),
      pg: home,
      checkpoints: g.trail.checkpoints,
      logger: createLogger('silent'),
      options: { trimDelayMs: 0, trimEveryMs: 0 },
    });
    try {
      const ids: string[] = [];
      const record = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = randomUUID();
          await g.trail.record({ ...sampleEvent({ patient: 'paging' }), id });
          ids.push(id);
        }
      };
      await record(150);
      await shipper.drain();
      await record(150);
      const store = new AuditStore(g.redis, g.keyspace, 1, pgHome(home));
      const newestFirst = [...ids].reverse();
      const page1 = await search(store, { clauses: [], count: 100, sort: '-date' });
      expect(page1.total).toBe(300);
      expect(page1.events.map((e) => e.id)).toEqual(newestFirst.slice(0, 100));
      // Everything moves to PostgreSQL (and out of Redis) before the next page is asked for.
      await shipper.drain();
      await shipper.drain();
      expect(await g.redis.xlen(g.keyspace.auditStream('main'))).toBeLessThan(300);
      const page2 = await search(store, { clauses: [], count: 100, sort: '-date', offset: 100, after: page1.last!, asOf: page1.asOf });
      expect(page2.total).toBe(300);
      expect(page2.events.map((e) => e.id)).toEqual(newestFirst.slice(100, 200));
      const page3 = await search(store, {
        clauses: [{ param: 'patient', values: ['Patient/paging'] }],
        count: 100,
        sort: '-date',
        offset: 200,
        after: page2.last!,
        asOf: page1.asOf,
      });
      expect(page3.events.map((e) => e.id)).toEqual(newestFirst.slice(200, 300));
      const back = await search(store, { clauses: [], count: 100, sort: '-date', offset: 100, before: page3.first!, asOf: page1.asOf });
      expect(back.events.map((e) => e.id)).toEqual(newestFirst.slice(100, 200));
    } finally {
      await shipper.stop();
      await home.close();
      await db.drop();
      await g.close();
    }
  }, 60_000);

  test('a chain over the bound takes no appends while another is under it; when every chain is over, the intake refuses', async () => {
    const g = await auditFixture({ AUTHZ_AUDIT_CHAINS: '2', AUTHZ_AUDIT_INTAKE_MAX_EVENTS: '1000', AUTHZ_AUDIT_MAX_BATCH: '100' });
    const { createAuditTrail } = await import('../../../../src/records/audit/trail.js');
    const trail = createAuditTrail({
      config: g.config,
      redis: g.redis,
      keyspace: g.keyspace,
      logger: createLogger('silent'),
      checkpointKeys: g.keys,
      intake: true,
    });
    const head = async (chain: 'main' | 'main-1') => Number(await g.redis.hget(g.keyspace.auditHead(chain), 'seq'));
    const confirm = (chain: 'main' | 'main-1', seq: number) =>
      g.redis.hset(g.keyspace.auditShipped(chain), 'seq', String(seq), 'at', String(Date.now()));
    try {
      await Promise.all(Array.from({ length: 2_600 }, () => trail.record(sampleEvent({ patient: 'bound-2' }))));
      expect(await head('main')).toBeGreaterThan(1000);
      expect(await head('main-1')).toBeGreaterThan(1000);
      // PostgreSQL confirmed `main` (as a shipper would), not `main-1` (stalled).
      await confirm('main', await head('main'));
      await new Promise((r) => setTimeout(r, 1_300));
      const stalled = await head('main-1');
      await Promise.all(Array.from({ length: 300 }, () => trail.record(sampleEvent({ patient: 'bound-2' }))));
      expect(await head('main-1')).toBe(stalled);
      // Nothing confirmed anywhere: full.
      await confirm('main', 0);
      await new Promise((r) => setTimeout(r, 1_300));
      await expect(trail.record(sampleEvent())).rejects.toThrow(StoreUnavailableError);
    } finally {
      await trail.close();
      await g.close();
    }
  }, 60_000);

  test('the intake refuses new events (503) while PostgreSQL lags past its bound, and takes them again once shipped', async () => {
    const g = await auditFixture({ AUTHZ_AUDIT_INTAKE_MAX_EVENTS: '1000', AUTHZ_AUDIT_MAX_BATCH: '500' });
    const own = await startPrivatePostgres();
    const home = new PgAuditStore(own.appUrl);
    const { createAuditTrail } = await import('../../../../src/records/audit/trail.js');
    const trail = createAuditTrail({
      config: g.config,
      redis: g.redis,
      keyspace: g.keyspace,
      logger: createLogger('silent'),
      checkpointKeys: g.keys,
      intake: true,
    });
    try {
      await Promise.all(Array.from({ length: 1_200 }, () => trail.record(sampleEvent({ patient: 'bound' }))));
      // The watch reads the lag every second.
      await new Promise((r) => setTimeout(r, 1_300));
      await expect(trail.record(sampleEvent())).rejects.toThrow(StoreUnavailableError);
      const shipper = new AuditShipper({
        redis: g.redis,
        keyspace: g.keyspace,
        store: new AuditStore(g.redis, g.keyspace, 1, pgHome(home)),
        pg: home,
        checkpoints: trail.checkpoints,
        logger: createLogger('silent'),
      });
      expect(await shipper.drain()).toBeGreaterThanOrEqual(1_200);
      await shipper.stop();
      await new Promise((r) => setTimeout(r, 1_300));
      await expect(trail.record(sampleEvent())).resolves.toBeUndefined();
    } finally {
      await trail.close();
      await home.close();
      await own.stop();
      await g.close();
    }
  }, 60_000);
});
