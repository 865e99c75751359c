// The Redis intake of the audit trail in front of PostgreSQL (issue 17; figures and how to read
// them in docs/audit-postgres.md, "The Redis intake" and "Operating the intake"), with its own
// baseline in the same run:
//   1. sustained load — backend tokens issued and introspected once (a token-issued event and a
//      compact introspection record per token) at a fixed rate, first with the trail kept in Redis
//      only (the baseline: memory grows with every event), then with Redis as the intake and the
//      shipper running (memory bounded by the lag and the trim delay); Redis used_memory and the
//      intake lag sampled every second; afterwards every acknowledged event is checked in
//      PostgreSQL (count, once each, chain verified);
//   2. shipping throughput — the intake filled with N events while no shipper runs, then one
//      shipper drains it, timed: per kind on one chain, and mixed on two chains (as the shipper
//      does it today, and with one shipper per chain, i.e. what shipping chains in parallel gives);
//   3. bytes per event in Redis (used_memory while the events sit in the intake) and in PostgreSQL
//      (pg_total_relation_size of the partitions of both tables after VACUUM) for both kinds.
// Everything runs against its own redis-server (free loopback port, no persistence) and its own
// PostgreSQL (initdb into a temp dir, fsync on, default configuration): nothing shared is touched.
// Usage: node --import tsx bench/audit-intake.ts [--seconds 60] [--rate 250] [--trim-ms 10000]
//        [--drain 20000] [--skip-sustained] [--skip-drain]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { startRedisServer } from '../test/support/redis-server.js';
import { startPrivatePostgres, type PrivatePostgres } from '../test/support/private-postgres.js';
import { loadConfig } from '../src/platform/config/load.js';
import { connectRedis, createRedis, type RedisClient } from '../src/platform/redis/connection.js';
import { Keyspace } from '../src/platform/redis/keyspace.js';
import { KeyStore } from '../src/platform/keys/keystore.js';
import { createLogger } from '../src/platform/ops/logger.js';
import { Metrics } from '../src/platform/ops/metrics.js';
import { createAuditTrail } from '../src/records/audit/trail.js';
import { AuditStore } from '../src/records/audit/store.js';
import { AuditShipper } from '../src/records/audit/shipper.js';
import { keyStoreCheckpointKeys } from '../src/records/audit/checkpoints.js';
import { shardChains, type ChainName } from '../src/records/audit/chain.js';
import { tokenIssued } from '../src/records/audit/events/token-events.js';
import { introspectionRecord, type IntrospectionRecord } from '../src/records/audit/forms/introspection.js';
import type { Recordable } from '../src/records/audit/stored-event.js';
import { PgAuditStore } from '../src/records/audit/pg/store.js';
import { pgHome } from '../src/records/audit/pg/home.js';
import { bindTrail } from '../src/records/audit/pg/connect.js';
import { migrateAuditDatabase } from '../src/records/audit/pg/migrate.js';
import { ensurePartitions } from '../src/records/audit/pg/partitions.js';
import { verifyChains } from '../src/records/audit/pg/verify.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    rate: { type: 'string', default: '250' },
    'trim-ms': { type: 'string', default: '10000' },
    drain: { type: 'string', default: '20000' },
    /** Shipper batch sizes to compare on the mixed load (the first is used everywhere else; shipper.ts default 1000). */
    batches: { type: 'string', default: '1000,250,100' },
    'skip-sustained': { type: 'boolean', default: false },
    'skip-drain': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
/** Backend tokens per second; each is two events (issued, introspected once). */
const RATE = Number(args.rate);
const TRIM_MS = Number(args['trim-ms']);
const DRAIN_N = Number(args.drain);
const BATCHES = args.batches.split(',').map(Number);
const BATCH = BATCHES[0]!;
const ISSUER = 'https://authz.example-hospital.org';
const FHIR = 'https://fhir.example-hospital.org/r4';

// ---------------------------------------------------------------------------------------------
// Realistic events: what the server records for a backend service's client_credentials token
// (provider-audit.ts → tokenIssued) and for one introspection of it (oauth/introspection/routes.ts).

type Kind = 'token-issued' | 'introspection';

function backendToken(i: number, value: string): Recordable {
  const app = i % 50;
  return tokenIssued(
    { issuer: ISSUER },
    {
      client: { clientId: `backend-${app}`, name: `Backend service ${app}`, ip: `10.1.${(i >> 8) & 255}.${i & 255}` },
      grantType: 'client_credentials',
      accessToken: {
        name: { opaqueValue: value },
        kind: 'ClientCredentials',
        format: 'opaque',
        scope: 'system/Patient.rs system/Observation.rs system/Encounter.rs',
        expiresIn: 300,
        audience: FHIR,
      },
      idTokenIssued: false,
    },
  );
}

function introspection(i: number, value: string): IntrospectionRecord {
  const app = i % 50;
  return introspectionRecord(ISSUER, {
    callerId: `fhir-server-${i % 3}`,
    ip: '10.3.0.1',
    active: true,
    value,
    token: {
      format: 'opaque',
      id: value,
      kind: 'ClientCredentials',
      clientId: `backend-${app}`,
      scope: 'system/Patient.rs system/Observation.rs system/Encounter.rs',
      extra: {},
    },
  });
}

const tokenValue = (i: number) => `${i}.${randomBytes(24).toString('base64url')}`;

function eventOfKind(kind: Kind | 'mixed', i: number): Recordable {
  const k: Kind = kind === 'mixed' ? (i % 2 ? 'introspection' : 'token-issued') : kind;
  const value = tokenValue(i >> (kind === 'mixed' ? 1 : 0));
  return k === 'token-issued' ? backendToken(i, value) : introspection(i, value);
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one redis-server and one PostgreSQL server for the whole run; each phase gets an empty
// Redis (FLUSHALL of our own server) and a fresh database on our own PostgreSQL.

const redisServer = await startRedisServer();
let pgServer: PrivatePostgres | undefined;
const anchorDirs: string[] = [];
const logger = createLogger('silent');

interface Phase {
  redis: RedisClient;
  keyspace: Keyspace;
  config: ReturnType<typeof loadConfig>;
  trail: ReturnType<typeof createAuditTrail>;
  metrics: Metrics;
  keys: ReturnType<typeof keyStoreCheckpointKeys>;
  home?: { store: PgAuditStore; owner: pg.Client; appUrl: string; ownerUrl: string; database: string };
  close(): Promise<void>;
}

let databases = 0;
async function freshDatabase(): Promise<{ appUrl: string; ownerUrl: string; database: string }> {
  pgServer ??= await startPrivatePostgres();
  const database = `intake_${++databases}`;
  const admin = new pg.Client({ connectionString: pgServer.server().url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database} OWNER audit_owner`);
  await admin.end();
  const url = (role: string) => `postgres://${role}@127.0.0.1:${pgServer!.server().port}/${database}`;
  await migrateAuditDatabase(url('audit_owner'), { appRole: 'audit_app' });
  return { appUrl: url('audit_app'), ownerUrl: url('audit_owner'), database };
}

async function phase(opts: { chains: number; postgres: boolean }): Promise<Phase> {
  const anchorDir = mkdtempSync(join(tmpdir(), 'bench-intake-anchor-'));
  anchorDirs.push(anchorDir);
  const db = opts.postgres ? await freshDatabase() : undefined;
  const config = loadConfig({
    REDIS_URL: redisServer.url,
    AUTHZ_REDIS_PREFIX: `bench-intake:`,
    AUTHZ_LOG_LEVEL: 'silent',
    AUTHZ_AUDIT_ANCHOR_DIR: anchorDir,
    AUTHZ_AUDIT_CHAINS: String(opts.chains),
    // As in production: the builders' shapes are held by the tests, not re-checked per event.
    AUTHZ_AUDIT_VALIDATE_EVENTS: 'false',
  });
  const redis = createRedis(config.redis);
  redis.on('error', () => {});
  await connectRedis(redis);
  await redis.flushall(); // our own redis-server: every phase starts from an empty Redis
  const keyspace = new Keyspace(config.redis.prefix);
  await new KeyStore(redis, keyspace).ensureKeys();
  const keys = keyStoreCheckpointKeys(redis, keyspace, undefined);
  const metrics = new Metrics({ defaultMetrics: false });
  let home: Phase['home'];
  if (db) {
    const store = new PgAuditStore(db.appUrl);
    await bindTrail({ store, home: pgHome(store), ownerUrl: db.ownerUrl, close: () => store.close() }, redis, keyspace);
    const owner = new pg.Client({ connectionString: db.ownerUrl });
    await owner.connect();
    // This month's and next month's partitions made ahead, as docs/audit-postgres.md advises (a
    // daily timer): the first batch does not pay the DDL, and two shippers reaching an empty month
    // at once do not race to create it (see the report on ensure_partitions).
    await ensurePartitions(store.pool, [Date.now(), Date.now() + 31 * 86_400_000]);
    home = { store, owner, appUrl: db.appUrl, ownerUrl: db.ownerUrl, database: db.database };
  }
  const trail = createAuditTrail({ config, redis, keyspace, logger, metrics, checkpointKeys: keys, intake: opts.postgres });
  await trail.settled();
  return {
    redis,
    keyspace,
    config,
    trail,
    metrics,
    keys,
    ...(home ? { home } : {}),
    async close() {
      await trail.close();
      if (home) {
        await home.owner.end();
        await home.store.close();
      }
      redis.disconnect();
    },
  };
}

function shipperFor(p: Phase, store: AuditStore, pgStore: PgAuditStore = p.home!.store, trimMs = TRIM_MS, batch = BATCH): AuditShipper {
  return new AuditShipper({
    redis: p.redis,
    keyspace: p.keyspace,
    store,
    pg: pgStore,
    checkpoints: p.trail.checkpoints,
    logger,
    metrics: p.metrics,
    options: { trimDelayMs: trimMs, trimEveryMs: trimMs, batch },
  });
}

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
}

async function pgBytes(owner: pg.Client): Promise<number> {
  const { rows } = await owner.query<{ n: string | null }>(
    `SELECT sum(pg_total_relation_size(h.inhrelid)) AS n FROM pg_inherits h WHERE h.inhparent IN ('audit.entries'::regclass, 'audit.entry_values'::regclass)`,
  );
  return Number(rows[0]!.n ?? 0);
}

const MB = (b: number) => (b / 2 ** 20).toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number) => Math.round(n).toLocaleString('en');

/** Each chain's head seq and shipper watermark, and the age of its oldest unconfirmed entry (its trail time). */
async function intakeState(
  p: Phase,
  chains: ChainName[],
): Promise<{ head: number; shipped: number; lag: number; oldestAgeS: number; reportedAgeS: number }> {
  let head = 0;
  let shipped = 0;
  let oldestAgeS = 0;
  const now = Date.now();
  for (const chain of chains) {
    const [[h], [s]] = await Promise.all([
      p.redis.hmget(p.keyspace.auditHead(chain), 'seq'),
      p.redis.hmget(p.keyspace.auditShipped(chain), 'seq'),
    ]);
    const hs = Number(h ?? 0);
    const ss = Number(s ?? 0);
    head += hs;
    shipped += ss;
    if (hs > ss) {
      // The stream id of an entry is `<seq>-0` (postings.ts): the first entry PostgreSQL lacks.
      const first = (await p.redis.xrange(p.keyspace.auditStream(chain), `${ss + 1}-0`, '+', 'COUNT', 1)) as Array<[string, string[]]>;
      const fields = first[0]?.[1] ?? [];
      const t = Number(fields[fields.indexOf('t') + 1]);
      if (Number.isFinite(t)) oldestAgeS = Math.max(oldestAgeS, (now - t) / 1000);
    }
  }
  // What /metrics says (the trail's watch sets it every second).
  const gauge = await p.metrics.auditIntakeLagSeconds.get();
  const reportedAgeS = Math.max(0, ...gauge.values.map((v) => v.value));
  return { head, shipped, lag: head - shipped, oldestAgeS, reportedAgeS };
}

// ---------------------------------------------------------------------------------------------
// 1. Sustained load.

interface Sample {
  s: number;
  mem: number;
  head: number;
  shipped: number;
  lag: number;
  oldestAgeS: number;
  reportedAgeS: number;
}

interface Sustained {
  mode: string;
  appended: number;
  refused: number;
  failed: number;
  seconds: number;
  samples: Sample[];
  memStart: number;
  introspectionIds: string[];
  p99AppendMs: number;
  /** Appends that failed (not the intake's 503), by message: a timed-out append may still have run. */
  errors: Map<string, number>;
  /** Longest the event loop was blocked (ms): appends and shipping share the process, as in the server. */
  loopMaxMs: number;
}

async function sustain(p: Phase, mode: string, chains: ChainName[]): Promise<Sustained> {
  const memStart = await usedMemory(p.redis);
  let appended = 0;
  let refused = 0;
  let failed = 0;
  const errors = new Map<string, number>();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let launched = 0;
  const introspectionIds: string[] = [];
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const record = async (e: Recordable) => {
    const t0 = performance.now();
    try {
      await p.trail.record(e);
      latencies.push(performance.now() - t0);
      appended += 1;
      return true;
    } catch (err) {
      if ((err as Error).name === 'StoreUnavailableError') refused += 1;
      else {
        failed += 1;
        const message = (err as Error).message;
        errors.set(message, (errors.get(message) ?? 0) + 1);
      }
      return false;
    }
  };
  // One backend token: issued (its event appended before the answer), then introspected once.
  const token = async (i: number) => {
    const value = tokenValue(i);
    if (!(await record(backendToken(i, value)))) return;
    const r = introspection(i, value);
    if (await record(r)) introspectionIds.push(r.id);
  };
  const samples: Sample[] = [];
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let nextSample = t0 + 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
    while (launched < due) {
      const w = token(launched++);
      inFlight.add(w);
      void w.finally(() => inFlight.delete(w));
    }
    if (performance.now() >= nextSample) {
      nextSample += 1000;
      const [mem, st] = await Promise.all([usedMemory(p.redis), intakeState(p, chains)]);
      samples.push({ s: Math.round((performance.now() - t0) / 1000), mem, ...st });
    }
    await sleep(5);
  }
  await Promise.all([...inFlight]);
  latencies.sort((a, b) => a - b);
  return {
    mode,
    appended,
    refused,
    failed,
    seconds: (performance.now() - t0) / 1000,
    samples,
    memStart,
    introspectionIds,
    p99AppendMs: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    errors,
    loopMaxMs: (loop.disable(), loop.max / 1e6),
  };
}

/** After the intake run: every acknowledged event in PostgreSQL exactly once, every chain verified. */
async function checkShipped(p: Phase, chains: ChainName[], run: Sustained): Promise<string> {
  const home = p.home!;
  const stopped = Date.now();
  const deadline = stopped + 120_000;
  let st = await intakeState(p, chains);
  while (st.lag > 0 && Date.now() < deadline) {
    await sleep(200);
    st = await intakeState(p, chains);
  }
  const drained = Date.now();
  const { rows } = await home.store.pool.query<{ n: string; ids: string }>(
    'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM audit.entries',
  );
  const inPg = Number(rows[0]!.n);
  const distinct = Number(rows[0]!.ids);
  const found = await home.store.pool.query<{ n: string }>('SELECT count(*) AS n FROM audit.entries WHERE id = ANY($1::text[])', [
    run.introspectionIds,
  ]);
  const reports = await verifyChains(home.store, { keys: p.keys, every: p.config.audit.checkpointEvery });
  const problems = reports.filter((r) => !r.ok).map((r) => `${r.chain}: ${JSON.stringify(r.problem)}`);
  const lines = [
    `acknowledged ${fmt(run.appended)} events; heads sum to ${fmt(st.head)}; PostgreSQL holds ${fmt(inPg)} rows, ${fmt(distinct)} distinct ids; ` +
      `introspection records found by id ${fmt(Number(found.rows[0]!.n))} of ${fmt(run.introspectionIds.length)}; lag 0 ${((drained - stopped) / 1000).toFixed(1)} s after the load stopped`,
    `verify in PostgreSQL (hashes, links, signed checkpoints): ${problems.length ? `PROBLEMS ${problems.join('; ')}` : `ok (${reports.map((r) => `${r.chain} ${fmt(r.entries)} entries`).join(', ')})`}`,
  ];
  if (run.errors.size) lines.push(`appends that failed: ${[...run.errors].map(([m, n]) => `${n} × ${m}`).join('; ')}`);
  // An append that timed out on the client may have run in Redis: it is in the chain though its caller got an error.
  const extra = inPg - run.appended;
  if (extra > 0)
    lines.push(
      `${fmt(extra)} events are in the chain (and PostgreSQL) although their append reported an error (of ${fmt(run.failed)} failed appends)`,
    );
  if (extra < 0 || extra > run.failed || distinct !== inPg || Number(found.rows[0]!.n) !== run.introspectionIds.length || problems.length)
    lines.push('LOST OR DUPLICATED EVENTS: see above');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// 2 + 3. Fill, measure Redis, drain (timed), measure PostgreSQL.

async function fill(p: Phase, kind: Kind | 'mixed', n: number): Promise<number> {
  const t0 = performance.now();
  const CHUNK = 2000;
  for (let i = 0; i < n; i += CHUNK) {
    await Promise.all(Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) => p.trail.record(eventOfKind(kind, i + k))));
  }
  return n / ((performance.now() - t0) / 1000);
}

interface DrainResult {
  label: string;
  n: number;
  appendRate: number;
  redisBytes: number;
  pgBytes: number;
  shipRate: number;
  seconds: number;
}

async function drainRun(
  label: string,
  kind: Kind | 'mixed',
  chains: number,
  how: 'one shipper' | 'one shipper per chain',
  batch = BATCH,
): Promise<DrainResult> {
  const p = await phase({ chains, postgres: true });
  try {
    const home = p.home!;
    const names = shardChains(chains);
    const mem0 = await usedMemory(p.redis);
    const appendRate = await fill(p, kind, DRAIN_N);
    await p.trail.settled();
    const mem1 = await usedMemory(p.redis);
    await home.owner.query('VACUUM ANALYZE audit.entries, audit.entry_values');
    const pg0 = await pgBytes(home.owner);
    // Trim held off while timing: a drain measures moving entries; trimming is measured in part 1.
    const store = new AuditStore(p.redis, p.keyspace, chains, pgHome(home.store));
    const shippers: AuditShipper[] = [];
    const extraPools: PgAuditStore[] = [];
    if (how === 'one shipper') {
      shippers.push(shipperFor(p, store, home.store, 3_600_000, batch));
    } else {
      // What shipping the chains in parallel would give: a shipper per chain, each on its own
      // connection pool, each seeing only its chain (the shipper itself walks its chains one after
      // the other, see the report).
      for (const chain of names) {
        const own = Object.create(store) as AuditStore;
        own.chains = () => Promise.resolve([chain]);
        const pool = new PgAuditStore(home.appUrl);
        extraPools.push(pool);
        shippers.push(shipperFor(p, own, pool, 3_600_000, batch));
      }
    }
    const t0 = performance.now();
    const moved = (await Promise.all(shippers.map((s) => s.drain()))).reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - t0) / 1000;
    await Promise.all(shippers.map((s) => s.stop()));
    await Promise.all(extraPools.map((x) => x.close()));
    const st = await intakeState(p, names);
    if (moved !== DRAIN_N || st.lag !== 0) console.log(`  ! ${label}: moved ${moved} of ${DRAIN_N}, lag ${st.lag}`);
    await home.owner.query('VACUUM ANALYZE audit.entries, audit.entry_values');
    const pg1 = await pgBytes(home.owner);
    return {
      label,
      n: DRAIN_N,
      appendRate,
      redisBytes: (mem1 - mem0) / DRAIN_N,
      pgBytes: (pg1 - pg0) / DRAIN_N,
      shipRate: moved / seconds,
      seconds,
    };
  } finally {
    await p.close();
  }
}

// ---------------------------------------------------------------------------------------------

const started = Date.now();
try {
  const info = await (async () => {
    const r = createRedis(loadConfig({ REDIS_URL: redisServer.url, AUTHZ_LOG_LEVEL: 'silent' }).redis);
    r.on('error', () => {});
    await connectRedis(r);
    const v = /redis_version:(\S+)/.exec(await r.info('server'))?.[1];
    r.disconnect();
    return v;
  })();
  console.log(`# Audit intake (Redis ${info}) → PostgreSQL — ${new Date().toISOString()}`);
  console.log(`node ${process.version}; own redis-server (no persistence) and own PostgreSQL (initdb, defaults, fsync on); loopback\n`);

  if (!args['skip-sustained']) {
    console.log(
      `## 1. sustained load: ${RATE} backend tokens/s (${RATE * 2} events/s: token-issued + one introspection each) for ${SECONDS} s`,
    );
    console.log(`shipper: batch ${BATCH}, trim delay and interval ${TRIM_MS / 1000} s (production default 30 s each)\n`);
    const runs: Sustained[] = [];
    const chains: ChainName[] = ['main'];

    const base = await phase({ chains: 1, postgres: false });
    try {
      runs.push(await sustain(base, 'Redis only (no shipper: the baseline)', chains));
    } finally {
      await base.close();
    }

    const intake = await phase({ chains: 1, postgres: true });
    let check = '';
    try {
      const shipper = shipperFor(intake, new AuditStore(intake.redis, intake.keyspace, 1, pgHome(intake.home!.store)));
      shipper.start();
      runs.push(await sustain(intake, 'intake → PostgreSQL (shipper running)', chains));
      check = await checkShipped(intake, chains, runs[1]!);
      await shipper.stop();
    } finally {
      await intake.close();
    }

    const at = (r: Sustained, s: number) => r.samples.find((x) => x.s >= s) ?? r.samples[r.samples.length - 1]!;
    // 10 s, 30 s, then every 30 s up to the end of the run.
    const marks = [10, ...Array.from({ length: Math.floor(SECONDS / 30) }, (_, k) => 30 * (k + 1))].filter(
      (s) => s < SECONDS - 0.5 || s === SECONDS,
    );
    if (!marks.length) marks.push(SECONDS);
    console.log(
      `| mode | events/s appended | events/s shipped | ${marks.map((s) => `Redis MB at ${s} s`).join(' | ')} | max Redis MB (2nd half) | max lag (events) | max lag (s, oldest unshipped) | max lag_seconds metric | append p99 ms | event loop max ms | refused (503) / failed |`,
    );
    console.log(`|---|---|---|${marks.map(() => '---|').join('')}---|---|---|---|---|---|---|`);
    for (const r of runs) {
      const last = r.samples[r.samples.length - 1]!;
      const first = r.samples[0]!;
      const shipped = r.mode.startsWith('intake') ? `${fmt((last.shipped - first.shipped) / (last.s - first.s))}` : '—';
      const second = r.samples.filter((x) => x.s > SECONDS / 2);
      const maxMem = Math.max(...second.map((x) => x.mem - r.memStart));
      const lagged = r.mode.startsWith('intake');
      console.log(
        `| ${r.mode} | ${fmt(r.appended / r.seconds)} | ${shipped} | ${marks.map((s) => MB(at(r, s).mem - r.memStart)).join(' | ')} | ${MB(maxMem)} | ` +
          `${lagged ? fmt(Math.max(...r.samples.map((x) => x.lag))) : '—'} | ${lagged ? Math.max(...r.samples.map((x) => x.oldestAgeS)).toFixed(1) : '—'} | ${lagged ? Math.max(...r.samples.map((x) => x.reportedAgeS)).toFixed(1) : '—'} | ${r.p99AppendMs.toFixed(1)} | ${r.loopMaxMs.toFixed(0)} | ${r.refused} / ${r.failed} |`,
      );
    }
    console.log('\nRedis MB = used_memory minus used_memory before the run (an empty Redis holds ~1 MB).');
    console.log('Per second (s: MB baseline / MB intake, intake lag events, oldest unshipped s):');
    const [b, i] = runs as [Sustained, Sustained];
    const rows: string[] = [];
    for (let k = 0; k < Math.max(b.samples.length, i.samples.length); k++) {
      const x = b.samples[k];
      const y = i.samples[k];
      rows.push(
        `${y?.s ?? x?.s}: ${x ? MB(x.mem - b.memStart) : '-'}/${y ? MB(y.mem - i.memStart) : '-'} ${y ? `${y.lag} ${y.oldestAgeS.toFixed(1)}` : ''}`,
      );
    }
    console.log(rows.join('; '));
    console.log(`\n${check}\n`);
  }

  if (!args['skip-drain']) {
    console.log(
      `## 2–3. shipping throughput and bytes per event: the intake filled with ${fmt(DRAIN_N)} events while no shipper runs, then drained (shipper batch ${BATCH} unless said)\n`,
    );
    const results: DrainResult[] = [];
    results.push(await drainRun('token-issued (backend token), 1 chain', 'token-issued', 1, 'one shipper'));
    results.push(await drainRun('introspection record, 1 chain', 'introspection', 1, 'one shipper'));
    results.push(await drainRun('1:1 mixed, 1 chain', 'mixed', 1, 'one shipper'));
    results.push(await drainRun('1:1 mixed, 2 chains, one shipper (as shipper.ts does it)', 'mixed', 2, 'one shipper'));
    results.push(await drainRun('1:1 mixed, 2 chains, one shipper per chain (parallel)', 'mixed', 2, 'one shipper per chain'));
    for (const batch of BATCHES.slice(1))
      results.push(await drainRun(`1:1 mixed, 1 chain, shipper batch ${batch}`, 'mixed', 1, 'one shipper', batch));
    console.log(
      '| events | appended to Redis (events/s, no HTTP) | shipped (events/s) | drain (s) | bytes/event in Redis (intake) | bytes/event in PostgreSQL |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const r of results)
      console.log(
        `| ${r.label} | ${fmt(r.appendRate)} | ${fmt(r.shipRate)} | ${r.seconds.toFixed(1)} | ${fmt(r.redisBytes)} | ${fmt(r.pgBytes)} |`,
      );
    console.log(
      '\nbytes in Redis: used_memory growth while the events sit in the intake (stream entry, location hash, posting lists) / events;',
    );
    console.log(
      'bytes in PostgreSQL: pg_total_relation_size of all partitions of audit.entries and audit.entry_values (heap, indexes, TOAST), after VACUUM, growth / events.',
    );
  }
  console.log(`\nwhole run ${((Date.now() - started) / 1000).toFixed(0)} s`);
} finally {
  await pgServer?.stop();
  await redisServer.stop();
  for (const d of anchorDirs) rmSync(d, { recursive: true, force: true });
}
