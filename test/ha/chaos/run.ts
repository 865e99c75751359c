/**
 * The chaos suite (issue 16): `npm run chaos` (every scenario) or `npm run chaos -- --short` (the
 * CI subset). It starts its own single Redis (AOF, appendfsync always), Sentinel group (1 master,
 * 1 replica, 3 sentinels) and 6-node Cluster on free loopback ports with temp dirs, runs bounded
 * load against one or two real server processes (src/main.ts) sharing the Redis set-up, injects
 * one fault per scenario, checks afterwards through public interfaces only (introspection, the
 * `smart-authz audit export|verify` CLI), prints a table and exits 1 if any bound was violated.
 *
 * Options: --short, --only <part of a name,...> (`name$`: exactly that name), --json <file> (results for .ci/run's summary), --workers N.
 * docs/operations.md "Chaos suite" describes each scenario, its bounds and a run's figures.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { backendKey, type BackendKey } from '../../support/backend-client.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';
import { startSentinelGroup, type SentinelGroup } from '../../support/redis-sentinel.js';
import { clusterToolsAvailable, startRedisCluster, type RedisClusterHandle } from '../../support/redis-cluster.js';
import { getStatus, startServerProcess, type ServerProcess } from '../../support/server-process.js';
import { balancer, ISSUER, startLoad, type Answer, type Balancer, type LoadResult } from './load.js';
import { introspectAll, issuedInTrail, recordedAs, verifyTrail } from './checks.js';

const { values: opts } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    workers: { type: 'string' },
    // Sentinel data nodes' appendfsync (always | everysec): to see what `everysec` costs with a fast restart.
    'sentinel-fsync': { type: 'string', default: 'always' },
  },
});
const SHORT = opts.short!;
const WORKERS = Number(opts.workers ?? (SHORT ? 16 : 20));
/** Load before the fault, and after the service has recovered. */
const BEFORE_MS = SHORT ? 3_000 : 5_000;
const AFTER_MS = SHORT ? 2_000 : 4_000;
/**
 * Recovered: every instance expected alive answers /readyz 200, and no request failed for this long
 * since the fault ended or the last failure (a Cluster's errors start only once a node times out).
 */
const QUIET_MS = 3_000;
const MAX_RECOVERY_MS = 60_000;
const FHIR = 'http://localhost:8080/fhir';
const RS = { id: 'chaos-rs', secret: 'chaos-rs-secret-0123456789' };
const BACKEND = 'chaos-backend';
const DRAIN_MS = 2_000;

// ---------------------------------------------------------------------------------------------
// Redis set-ups, started when a scenario first needs one and stopped after the last that does.

type SetupKind = 'single' | 'sentinel' | 'sentinel2' | 'cluster';

interface Setup {
  kind: SetupKind;
  env: Record<string, string>;
  /** Resolves once the set-up is whole again (replicas in sync) before the next scenario. */
  healthy(): Promise<void>;
  stop(): Promise<void>;
  single?: RedisServerHandle;
  sentinel?: SentinelGroup;
  cluster?: RedisClusterHandle;
}

/** The Redis settings docs/operations.md recommends for Sentinel data nodes. */
const SENTINEL_NODE_ARGS = [
  '--appendonly',
  'yes',
  '--appendfsync',
  opts['sentinel-fsync']!,
  '--min-replicas-to-write',
  '1',
  '--min-replicas-max-lag',
  '10',
  '--repl-diskless-sync',
  'yes',
  '--repl-diskless-sync-delay',
  '0',
];

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function replicasOnline(port: number): Promise<number> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    return (await c.info('replication')).split('\n').filter((l) => /^slave\d+:.*state=online/.test(l)).length;
  } finally {
    c.disconnect();
  }
}

async function startSetup(kind: SetupKind): Promise<Setup> {
  if (kind === 'single') {
    const single = await startRedisServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    return { kind, single, env: { REDIS_URL: single.url }, healthy: async () => {}, stop: () => single.destroy() };
  }
  if (kind === 'sentinel' || kind === 'sentinel2') {
    const replicas = kind === 'sentinel' ? 1 : 2;
    const sentinel = await startSentinelGroup({ name: `chaos-${kind}`, nodeArgs: SENTINEL_NODE_ARGS, replicas });
    return {
      kind,
      sentinel,
      env: {
        AUTHZ_REDIS_SENTINELS: sentinel.sentinels,
        AUTHZ_REDIS_SENTINEL_NAME: sentinel.name,
        AUTHZ_REDIS_MIN_REPLICAS: '1',
        AUTHZ_REDIS_WAIT_TIMEOUT_MS: '500',
      },
      healthy: () =>
        until(
          'the Sentinel master to have its replicas online',
          async () => (await replicasOnline(await sentinel.masterPort())) >= replicas,
          60_000,
        ),
      stop: () => sentinel.stop(),
    };
  }
  const cluster = await startRedisCluster();
  return {
    kind,
    cluster,
    env: { AUTHZ_REDIS_CLUSTER_NODES: cluster.nodesEnv },
    healthy: () => cluster.waitUntilOk(30_000),
    stop: () => cluster.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Ctx {
  setup: Setup;
  servers: ServerProcess[];
  /** ms since the load started. */
  now(): number;
  /** Notes a point of the fault's timeline (printed with the scenario). */
  mark(what: string): void;
  /** Instances that are expected to be gone after the fault. */
  gone: Set<number>;
}

interface Scenario {
  name: string;
  setup: SetupKind;
  instances: 1 | 2;
  short: boolean;
  /** What it does, for the docs and the log. */
  what: string;
  /** Bound on the error window (first to last failed request), seconds. */
  windowS: number;
  /** Requests that got no HTTP answer (connection lost mid-request, no instance) allowed. */
  connErrors: number;
  /** Injects the fault; resolves when the fault itself is over (a node restarted, a process gone). */
  inject(ctx: Ctx): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'steady (1 instance)',
    setup: 'single',
    instances: 1,
    short: false,
    what: 'no fault: the baseline of every figure',
    windowS: 0,
    connErrors: 0,
    inject: async () => {},
  },
  {
    name: 'redis SIGKILL + restart',
    setup: 'single',
    instances: 1,
    short: true,
    what: 'SIGKILL the only Redis (AOF, appendfsync always), start it again on the same port and data dir 2 s later',
    windowS: 2 + 4,
    connErrors: 0,
    async inject(ctx) {
      await ctx.setup.single!.stop();
      ctx.mark('redis killed');
      await sleep(2_000);
      await ctx.setup.single!.restart();
      ctx.mark('redis answers PING again');
    },
  },
  {
    name: 'redis SIGSTOP 3 s',
    setup: 'single',
    instances: 2,
    short: false,
    what: 'SIGSTOP the only Redis (hung: connections stay open, nothing answers), SIGCONT 3 s later',
    windowS: 3 + 3,
    connErrors: 0,
    async inject(ctx) {
      ctx.setup.single!.signal('SIGSTOP');
      ctx.mark('redis stopped');
      await sleep(3_000);
      ctx.setup.single!.signal('SIGCONT');
      ctx.mark('redis continued');
    },
  },
  {
    name: 'sentinel planned failover',
    setup: 'sentinel',
    instances: 2,
    short: false,
    what: '`SENTINEL FAILOVER` (AUTHZ_REDIS_MIN_REPLICAS=1): the replica is promoted, the old master demoted and resynced',
    windowS: 25,
    connErrors: 0,
    async inject(ctx) {
      const { from, to } = await ctx.setup.sentinel!.failover(30_000);
      ctx.mark(`sentinels report the new master (${from} -> ${to})`);
    },
  },
  {
    name: 'sentinel master SIGKILL',
    setup: 'sentinel',
    instances: 2,
    short: true,
    what: 'SIGKILL the master (AUTHZ_REDIS_MIN_REPLICAS=1, one replica); a supervisor starts it again with its own configuration (a master) once the sentinels report the new master, and Sentinel makes it a replica',
    windowS: 25,
    connErrors: 0,
    inject: (ctx) => killSentinelMaster(ctx, false),
  },
  {
    name: 'sentinel master SIGKILL, restarted as replica',
    setup: 'sentinel',
    instances: 2,
    short: false,
    what: 'the same, but the supervisor starts the old master as a replica of the master the sentinels name (`--replicaof`)',
    windowS: 10,
    connErrors: 0,
    inject: (ctx) => killSentinelMaster(ctx, true),
  },
  {
    name: 'sentinel master SIGKILL, restarted at once',
    setup: 'sentinel',
    instances: 2,
    short: false,
    what: 'SIGKILL the master and start it again 0.5 s later from its AOF, before the sentinels count it down: no failover, the replica resyncs from the restarted master',
    windowS: 6,
    connErrors: 0,
    async inject(ctx) {
      const group = ctx.setup.sentinel!;
      const port = await group.masterPort();
      await group.kill(port);
      ctx.mark(`master ${port} killed`);
      await sleep(500);
      await group.restart(port);
      ctx.mark(`master ${port} restarted (still the master: ${(await group.masterPort()) === port})`);
    },
  },
  {
    name: 'sentinel master SIGKILL, 2 replicas',
    setup: 'sentinel2',
    instances: 2,
    short: false,
    what: 'the first variant with two replicas: the new master has a replica at once',
    windowS: 10,
    connErrors: 0,
    inject: (ctx) => killSentinelMaster(ctx, false),
  },
  {
    name: 'cluster {audit} master SIGKILL',
    setup: 'cluster',
    instances: 2,
    short: true,
    what: 'SIGKILL the master serving the `{audit}` hash slot (cluster-node-timeout 1000 ms); its replica takes over',
    windowS: 8,
    connErrors: 0,
    async inject(ctx) {
      const victim = await ctx.setup.cluster!.masterOf('{audit}');
      await ctx.setup.cluster!.kill(victim);
      ctx.mark(`master ${victim} killed`);
    },
  },
  {
    name: 'cluster other master SIGKILL',
    setup: 'cluster',
    instances: 2,
    short: false,
    what: 'SIGKILL another master (one that still has a replica, not serving `{audit}`)',
    windowS: 8,
    connErrors: 0,
    async inject(ctx) {
      const audit = await ctx.setup.cluster!.masterOf('{audit}');
      const victim = (await ctx.setup.cluster!.masters()).find((m) => m.port !== audit && m.replicas > 0);
      if (!victim) throw new Error('no master with a replica left to kill');
      await ctx.setup.cluster!.kill(victim.port);
      ctx.mark(`master ${victim.port} killed`);
    },
  },
  {
    name: 'server SIGKILL (2 instances)',
    setup: 'single',
    instances: 2,
    short: true,
    what: 'SIGKILL one of two server processes; the balancer sends the rest to the other',
    windowS: 3,
    // What was in flight on the killed process (at most one request per worker) gets no answer.
    connErrors: Number.POSITIVE_INFINITY,
    async inject(ctx) {
      ctx.servers[1]!.proc.kill('SIGKILL');
      ctx.gone.add(1);
      await ctx.servers[1]!.exited;
      ctx.mark('server 1 killed');
    },
  },
  {
    name: 'server SIGTERM (2 instances)',
    setup: 'single',
    instances: 2,
    short: false,
    what: `SIGTERM one of two server processes (AUTHZ_SHUTDOWN_DRAIN_MS=${DRAIN_MS}): /readyz 503 while it drains, then it exits 0`,
    windowS: 0,
    connErrors: 0,
    async inject(ctx) {
      ctx.servers[1]!.proc.kill('SIGTERM');
      ctx.gone.add(1);
      ctx.mark('server 1 SIGTERM');
      const code = await ctx.servers[1]!.exited;
      ctx.mark(`server 1 exited ${code}`);
      if (code !== 0) throw new Error(`the drained server exited ${code}`);
    },
  },
];
for (const s of SCENARIOS) if (s.connErrors === Number.POSITIVE_INFINITY) s.connErrors = WORKERS;

async function killSentinelMaster(ctx: Ctx, asReplica: boolean): Promise<void> {
  const group = ctx.setup.sentinel!;
  const from = await group.masterPort();
  await group.kill(from);
  ctx.mark(`master ${from} killed`);
  await until('the sentinels to report a new master', async () => (await group.masterPort()) !== from, 60_000);
  const to = await group.masterPort();
  ctx.mark(`sentinels report the new master ${to}`);
  await group.restart(from, asReplica ? { replicaOf: to } : {});
  ctx.mark(`old master ${from} restarted${asReplica ? ` as a replica of ${to}` : ''}`);
  // Not part of the fault: when the new master has a replica again (writes can be confirmed), for the timeline.
  void until('a replica online', async () => (await replicasOnline(await group.masterPort())) >= 1, 60_000).then(
    () => ctx.mark('the new master has a replica online'),
    () => {},
  );
}

/** Sentinel's own announcements during a scenario, with their time (to see where a failover's time goes). */
async function watchSentinel(group: SentinelGroup, ctx: Ctx): Promise<() => void> {
  const wanted = new Set([
    '+sdown',
    '+odown',
    '+elected-leader',
    '+promoted-slave',
    '+switch-master',
    '+convert-to-slave',
    '+slave-reconf-done',
    '+failover-end',
  ]);
  // Each sentinel announces what it does itself: listen to all of them, note each announcement once.
  const seen = new Set<string>();
  const subs = group.sentinelPorts.map((port) => {
    const sub = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
    sub.on('error', () => {});
    sub.on('pmessage', (_p: string, channel: string, message: string) => {
      const what = `${channel} ${message.split(' ').slice(0, 4).join(' ')}`;
      if (!wanted.has(channel) || (channel !== '+sdown' && seen.has(what)) || seen.has(`${port} ${what}`)) return;
      seen.add(what);
      seen.add(`${port} ${what}`);
      ctx.mark(`sentinel ${port}: ${what}`);
    });
    return sub;
  });
  await Promise.all(
    subs.map(async (sub) => {
      await sub.connect();
      await sub.psubscribe('*');
    }),
  );
  return () => subs.forEach((sub) => sub.disconnect());
}

// ---------------------------------------------------------------------------------------------
// One scenario

interface Outcome {
  name: string;
  requests: number;
  ok200: number;
  s503: number;
  other5xx: number;
  no503RetryAfter: number;
  other4xx: number;
  connErrors: number;
  acknowledged: number;
  lost: number;
  unknown: number;
  inactiveAtOnce: number;
  auditMissing: number;
  replaysSent: number;
  replaysAccepted: number;
  windowS: number;
  windowBoundS: number;
  faultToLastErrorS: number | null;
  recovered: boolean;
  verify: boolean;
  verifyOutput: string;
  timeline: string[];
  violations: string[];
  elapsedS: number;
}

const tempDirs: string[] = [];
const setups = new Map<SetupKind, Setup>();
const running = new Set<ServerProcess>();

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

async function stopServer(s: ServerProcess): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    s.proc.kill('SIGKILL');
    await s.exited;
  }
  running.delete(s);
}

async function runScenario(sc: Scenario, setup: Setup, clientsFile: string, key: BackendKey): Promise<Outcome> {
  const anchorDir = tmp('chaos-anchor-');
  const env: Record<string, string> = {
    AUTHZ_ISSUER: ISSUER,
    AUTHZ_REDIS_PREFIX: `chaos-${randomUUID().slice(0, 8)}:`,
    AUTHZ_DEV_REDIS: 'false',
    AUTHZ_DEMO_DATA: 'false',
    AUTHZ_FHIR_SERVERS: FHIR,
    AUTHZ_CLIENTS_FILE: clientsFile,
    AUTHZ_AUDIT_ANCHOR_DIR: anchorDir,
    AUTHZ_SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
    AUTHZ_LOG_LEVEL: 'info',
    // Redis faults are this suite's subject: the trail stays in Redis (the PostgreSQL intake has
    // its own crash tests, test/records/audit/pg/intake.test.ts), for the servers and the CLI alike.
    AUTHZ_AUDIT_STORE: 'redis',
    ...setup.env,
  };
  await setup.healthy();
  // One after the other: the first writes the signing keys and clients, the second finds them.
  const servers: ServerProcess[] = [];
  for (let i = 0; i < sc.instances; i++) {
    const s = await startServerProcess(env);
    running.add(s);
    servers.push(s);
  }
  const lb: Balancer = balancer(servers.map((s) => s.url));
  const timeline: string[] = [];
  let started = Date.now();
  const ctx: Ctx = {
    setup,
    servers,
    now: () => Date.now() - started,
    mark: (what) => timeline.push(`${((Date.now() - started) / 1000).toFixed(2)} s ${what}`),
    gone: new Set(),
  };
  const unwatch = setup.sentinel ? await watchSentinel(setup.sentinel, ctx) : () => {};
  let done = false;
  let faultAt = 0;
  let recovered = false;
  const violations: string[] = [];
  let result: LoadResult | undefined;
  try {
    const load = startLoad({ lb, workers: WORKERS, clientId: BACKEND, key, rs: RS, stop: () => done });
    started = load.result.started;
    await sleep(BEFORE_MS);
    faultAt = ctx.now();
    ctx.mark('fault');
    await sc.inject(ctx).catch((err: unknown) => violations.push(`fault injection failed: ${(err as Error).message}`));
    const faultEnd = ctx.now();
    const deadline = Date.now() + MAX_RECOVERY_MS;
    while (Date.now() < deadline) {
      const alive = servers.filter((_, i) => !ctx.gone.has(i));
      const ready = (await Promise.all(alive.map((s) => getStatus(`${s.url}/readyz`).catch(() => 0)))).every((st) => st === 200);
      const answers = load.result.answers;
      const lastFailure = [...answers].reverse().find(failed);
      const quiet = ctx.now() - Math.max(faultEnd, lastFailure?.at ?? 0) > QUIET_MS;
      if (ready && quiet && answers.some((a) => a.status === 200 && a.at > faultAt)) {
        recovered = true;
        break;
      }
      await sleep(100);
    }
    ctx.mark(recovered ? 'recovered' : `not recovered within ${MAX_RECOVERY_MS / 1000} s`);
    await sleep(AFTER_MS);
    done = true;
    result = await load.finished;
  } finally {
    done = true;
    unwatch();
  }

  const r = result;
  const main = r.answers.filter((a) => a.kind !== 'replay');
  const failures = main.filter(failed);
  const windowS = failures.length ? (failures.at(-1)!.at - failures[0]!.at) / 1000 : 0;
  if (failures.length) {
    timeline.push(
      `${(failures[0]!.at / 1000).toFixed(2)} s first failed request`,
      `${(failures.at(-1)!.at / 1000).toFixed(2)} s last failed request`,
    );
    timeline.sort((a, b) => parseFloat(a) - parseFloat(b));
  }

  // Afterwards, through public interfaces: every acknowledged token introspects active...
  await setup.healthy().catch((err: unknown) => violations.push(`the Redis set-up did not heal: ${(err as Error).message}`));
  const tokens = r.acknowledged.map((a) => a.token);
  const { lost, unknown } = await introspectAll(lb, RS, tokens, WORKERS);
  // ...has its token-issued AuditEvent, and the trail verifies.
  let auditMissing = tokens.length;
  try {
    const inTrail = await issuedInTrail(env);
    auditMissing = tokens.filter((t) => !inTrail.has(recordedAs(t))).length;
  } catch (err) {
    violations.push((err as Error).message);
  }
  const verify = await verifyTrail(env, anchorDir);
  lb.stop();
  for (const s of servers) await stopServer(s);

  const outcome: Outcome = {
    name: sc.name,
    requests: main.length,
    ok200: main.filter((a) => a.status === 200).length,
    s503: main.filter((a) => a.status === 503).length,
    other5xx: main.filter((a) => a.status >= 500 && a.status !== 503).length,
    no503RetryAfter: r.answers.filter((a) => a.status === 503 && !/^[1-9]\d*$/.test(a.retryAfter ?? '')).length,
    other4xx: main.filter((a) => a.status >= 400 && a.status < 500).length,
    connErrors: main.filter((a) => a.status === 0).length,
    acknowledged: tokens.length,
    lost: lost.length,
    unknown: unknown.length,
    inactiveAtOnce: r.inactiveAtOnce.length,
    auditMissing,
    replaysSent: r.replaysSent,
    replaysAccepted: r.replaysAccepted,
    windowS,
    windowBoundS: sc.windowS,
    faultToLastErrorS: failures.length ? (failures.at(-1)!.at - faultAt) / 1000 : null,
    recovered,
    verify: verify.ok,
    verifyOutput: verify.output,
    timeline,
    violations,
    elapsedS: r.elapsedMs / 1000,
  };
  const o = outcome;
  const check = (cond: boolean, what: string) => {
    if (!cond) violations.push(what);
  };
  check(o.other5xx === 0, `${o.other5xx} answers 5xx other than 503`);
  check(o.no503RetryAfter === 0, `${o.no503RetryAfter} answers 503 without Retry-After`);
  check(
    o.other4xx === 0,
    `${o.other4xx} token/introspection answers 4xx: ${summary(main.filter((a) => a.status >= 400 && a.status < 500))}`,
  );
  check(
    o.connErrors <= sc.connErrors,
    `${o.connErrors} requests without an answer (bound ${sc.connErrors}): ${summary(main.filter((a) => a.status === 0))}`,
  );
  check(o.lost === 0, `${o.lost} acknowledged tokens inactive afterwards`);
  check(o.unknown === 0, `${o.unknown} acknowledged tokens could not be introspected afterwards`);
  check(o.inactiveAtOnce === 0, `${o.inactiveAtOnce} acknowledged tokens inactive at their first introspection`);
  check(o.auditMissing === 0, `${o.auditMissing} acknowledged tokens without a token-issued AuditEvent`);
  check(o.replaysAccepted === 0, `${o.replaysAccepted} replayed client assertions accepted`);
  check(o.verify, `audit verify failed: ${o.verifyOutput.slice(0, 500)}`);
  check(o.recovered, 'the service did not recover');
  check(o.windowS <= sc.windowS, `error window ${o.windowS.toFixed(1)} s over its bound ${sc.windowS} s`);
  check(o.acknowledged >= 50, `only ${o.acknowledged} tokens acknowledged: too little load to mean anything`);
  if (violations.length) {
    // What the servers said (without the per-request lines), kept for whoever looks into it.
    const dir = mkdtempSync(join(tmpdir(), 'chaos-logs-'));
    servers.forEach((s, i) =>
      writeFileSync(
        join(dir, `server-${i}.log`),
        `${s
          .stdout()
          .split('\n')
          .filter((l) => !l.includes('"msg":"request"'))
          .join('\n')}\n${s.stderr()}`,
      ),
    );
    const byInstance = servers.map((_, i) => `instance ${i}: ${summary(failures.filter((a) => a.instance === i))}`).join('; ');
    violations.push(`(failures by instance: ${byInstance}; server logs in ${dir})`);
  }
  return outcome;
}

const failed = (a: Answer) => a.kind !== 'replay' && a.status !== 200;

function summary(answers: Answer[]): string {
  const by = new Map<string, number>();
  for (const a of answers)
    by.set(`${a.kind} ${a.status} ${a.error ?? ''}`.trim(), (by.get(`${a.kind} ${a.status} ${a.error ?? ''}`.trim()) ?? 0) + 1);
  return [...by].map(([k, n]) => `${n} × ${k}`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Table, results, main

function table(outcomes: Outcome[]): string {
  const head = [
    'scenario',
    'requests',
    '200',
    '503',
    'other 5xx',
    'no answer',
    'acknowledged tokens lost',
    'audit events missing',
    'replays accepted',
    'error window (s)',
    'bound (s)',
    'verify',
    'result',
  ];
  const rows = outcomes.map((o) => [
    o.name,
    String(o.requests),
    String(o.ok200),
    String(o.s503),
    String(o.other5xx),
    String(o.connErrors),
    `${o.lost + o.unknown} of ${o.acknowledged}`,
    String(o.auditMissing),
    `${o.replaysAccepted} of ${o.replaysSent}`,
    o.windowS.toFixed(1),
    String(o.windowBoundS),
    o.verify ? 'OK' : 'FAILED',
    o.violations.length ? 'FAIL' : 'pass',
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const only = opts.only?.split(',').map((s) => s.trim().toLowerCase());
  // A term matches names that contain it; ending in `$`, only the name that is exactly it.
  const matches = (name: string, term: string) =>
    term.endsWith('$') ? name.toLowerCase() === term.slice(0, -1) : name.toLowerCase().includes(term);
  const chosen = SCENARIOS.filter((s) => (only ? only.some((o) => matches(s.name, o)) : !SHORT || s.short));
  if (!chosen.length) throw new Error(`no scenario matches ${opts.only}`);
  if (chosen.some((s) => s.setup === 'cluster') && !clusterToolsAvailable())
    throw new Error('redis-server and redis-cli (Debian: redis-server, redis-tools) are needed');

  const key = await backendKey('ES384');
  const clientsFile = join(tmp('chaos-clients-'), 'clients.json');
  writeFileSync(
    clientsFile,
    JSON.stringify({
      clients: [
        { client_id: BACKEND, smart_client_kind: 'backend_service', jwks: { keys: [key.publicJwk] }, smart_scopes: ['system/*.rs'] },
        { client_id: RS.id, smart_client_kind: 'resource_server', client_secret: RS.secret, fhir_servers: [FHIR] },
      ],
    }),
  );

  const startedAt = new Date();
  process.stdout.write(
    `chaos suite${SHORT ? ' (short)' : ''}: ${chosen.length} scenarios, ${WORKERS} workers, ${startedAt.toISOString()}, redis ${await redisVersion()}\n`,
  );
  const outcomes: Outcome[] = [];
  for (const [i, sc] of chosen.entries()) {
    process.stdout.write(`\n== ${sc.name}: ${sc.what}\n`);
    const t0 = Date.now();
    let outcome: Outcome;
    try {
      let setup = setups.get(sc.setup);
      if (!setup) {
        setup = await startSetup(sc.setup);
        setups.set(sc.setup, setup);
      }
      outcome = await runScenario(sc, setup, clientsFile, key);
    } catch (err) {
      outcome = failedOutcome(sc, (err as Error).stack ?? String(err));
    }
    // A set-up no later scenario needs is stopped now: fewer processes on a shared machine.
    for (const [kind, setup] of setups) {
      if (!chosen.slice(i + 1).some((s) => s.setup === kind)) {
        await setup.stop().catch(() => {});
        setups.delete(kind);
      }
    }
    outcomes.push(outcome);
    process.stdout.write(`${outcome.timeline.map((l) => `   ${l}`).join('\n')}\n`);
    process.stdout.write(
      `   ${outcome.requests} requests (${outcome.ok200} × 200, ${outcome.s503} × 503, ${outcome.connErrors} without answer), ${outcome.acknowledged} tokens acknowledged, error window ${outcome.windowS.toFixed(2)} s` +
        `${outcome.faultToLastErrorS !== null ? `, fault to last error ${outcome.faultToLastErrorS.toFixed(2)} s` : ''}; ${((Date.now() - t0) / 1000).toFixed(0)} s in all\n`,
    );
    process.stdout.write(
      outcome.violations.length ? outcome.violations.map((v) => `   VIOLATED: ${v}\n`).join('') : '   all bounds held\n',
    );
  }

  const failedCount = outcomes.filter((o) => o.violations.length).length;
  process.stdout.write(
    `\n${table(outcomes)}\n\n${outcomes.length - failedCount} scenarios passed, ${failedCount} failed (${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s)\n`,
  );
  if (opts.json) {
    // The shape .ci/run's summary reads from jest's --json output: one "test" per scenario.
    writeFileSync(
      opts.json,
      JSON.stringify(
        {
          numPassedTests: outcomes.length - failedCount,
          numFailedTests: failedCount,
          testResults: [
            {
              status: failedCount ? 'failed' : 'passed',
              assertionResults: outcomes.map((o) => ({
                title: o.name,
                status: o.violations.length ? 'failed' : 'passed',
                failureMessages: o.violations,
              })),
            },
          ],
          chaos: { date: startedAt.toISOString(), short: SHORT, workers: WORKERS, outcomes },
        },
        null,
        2,
      ),
    );
  }
  process.exitCode = failedCount ? 1 : 0;
}

function failedOutcome(sc: Scenario, error: string): Outcome {
  return {
    name: sc.name,
    requests: 0,
    ok200: 0,
    s503: 0,
    other5xx: 0,
    no503RetryAfter: 0,
    other4xx: 0,
    connErrors: 0,
    acknowledged: 0,
    lost: 0,
    unknown: 0,
    inactiveAtOnce: 0,
    auditMissing: 0,
    replaysSent: 0,
    replaysAccepted: 0,
    windowS: 0,
    windowBoundS: sc.windowS,
    faultToLastErrorS: null,
    recovered: false,
    verify: false,
    verifyOutput: '',
    timeline: [],
    violations: [`the scenario could not run: ${error}`],
    elapsedS: 0,
  };
}

async function redisVersion(): Promise<string> {
  const { stdout } = await promisify(execFile)('redis-server', ['--version']).catch(() => ({ stdout: '?' }));
  return /v=(\S+)/.exec(stdout)?.[1] ?? stdout.trim();
}

async function cleanUp(): Promise<void> {
  for (const s of running) await stopServer(s).catch(() => {});
  for (const setup of setups.values()) await setup.stop().catch(() => {});
  setups.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

process.once('SIGINT', () => {
  void cleanUp().finally(() => process.exit(130));
});

try {
  await main();
} catch (err) {
  process.stderr.write(`chaos suite: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
