// Token endpoint and introspection throughput of this server against bare oidc-provider 9 (same
// clients, same keys, a minimal Redis adapter), measured in one run: each scenario alternates the
// two targets round by round, so drift in machine load hits both. Prints requests/s, p99, CPU per
// request and Redis memory per request for each, their ratios against the targets of issue 19,
// and ES384 against the single-core ES384 verify limit.
//
// Usage: npm run bench -- [--seconds 6] [--connections 32] [--rounds 2] [--only backend-rs384,introspect] [--markdown]
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID, verify, createPublicKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { APP, RS, clientKey, type Alg, type ClientKey, type PublicFixture } from './lib/fixture.js';
import type { TargetAsk } from './lib/target-ipc.js';
import { assertion, backendBody } from './lib/assertions.js';

const SCENARIOS = ['backend-rs384', 'backend-es384', 'code', 'refresh', 'introspect'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string' },
    markdown: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const scenarios = (values.only ? values.only.split(',') : [...SCENARIOS]) as Scenario[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = new Redis(redisUrl);
const keys: Record<Alg, ClientKey> = { RS384: clientKey('RS384'), ES384: clientKey('ES384') };

// ---- the two targets -------------------------------------------------------------------------

interface Target {
  name: 'bare' | 'ours';
  port: number;
  prefix: string;
  child: ChildProcess;
  ask<T>(request: TargetAsk): Promise<T>;
}

async function startTarget(name: Target['name']): Promise<Target> {
  const prefix = `bench-${name}-${randomUUID().slice(0, 8)}:`;
  const fixture: PublicFixture = {
    redisUrl,
    prefix,
    jwks: { RS384: keys.RS384.publicJwk, ES384: keys.ES384.publicJwk },
  };
  const child = fork(fileURLToPath(new URL(`./targets/${name}.ts`, import.meta.url)), {
    // BENCH_PROFILE=<dir> writes a CPU profile of this server's target there (open it in Chrome DevTools).
    execArgv: [
      '--import',
      'tsx',
      '--no-warnings',
      ...(process.env.BENCH_PROFILE && name === (process.env.BENCH_PROFILE_TARGET ?? 'ours')
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE]
        : []),
    ],
    env: { ...process.env, BENCH_FIXTURE: JSON.stringify(fixture) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { ready?: number }) => m.ready && resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`the ${name} target exited (${code}) before it listened`)));
  });
  let next = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on('message', (m: { id?: number; value?: unknown; error?: string }) => {
    if (m.id === undefined) return;
    const waiter = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) waiter?.reject(new Error(`${name}: ${m.error}`));
    else waiter?.resolve(m.value);
  });
  return {
    name,
    port,
    prefix,
    child,
    ask: <T>(request: TargetAsk) =>
      new Promise<T>((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ ...request, id });
      }),
  };
}

// ---- what each scenario sends ----------------------------------------------------------------

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = `Basic ${Buffer.from(`${RS.id}:${RS.secret}`).toString('base64')}`;
const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');

async function backendToken(target: Target): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${target.port}/token`, {
    method: 'POST',
    headers: FORM,
    body: backendBody(assertion(keys.RS384)),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`${target.name}: no token (${res.status} ${JSON.stringify(body)})`);
  return body.access_token;
}

/** Bodies for `n` requests of a scenario that spends something per request (an assertion, a code, a refresh token). */
async function bodies(scenario: Scenario, target: Target, n: number, shared: Map<string, string[]>): Promise<string[]> {
  switch (scenario) {
    case 'backend-rs384':
    case 'backend-es384': {
      // The same assertions serve both targets of a round: each has its own replay store.
      const cached = shared.get(scenario);
      if (cached && cached.length >= n) return cached;
      const alg: Alg = scenario === 'backend-rs384' ? 'RS384' : 'ES384';
      const made = Array.from({ length: n }, () => backendBody(assertion(keys[alg])));
      shared.set(scenario, made);
      return made;
    }
    case 'code':
      return (await target.ask<string[]>({ kind: 'codes', n, codeChallenge: challenge })).map((code) =>
        new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: APP.redirectUri,
          code_verifier: verifier,
          client_id: APP.id,
        }).toString(),
      );
    case 'refresh':
      return (await target.ask<string[]>({ kind: 'refresh', n })).map((token) =>
        new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: APP.id }).toString(),
      );
    case 'introspect':
      return [];
  }
}

// ---- measuring -------------------------------------------------------------------------------

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  cpuPerRequest: number;
  redisBytesPerRequest: number;
}

const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

async function measure(scenario: Scenario, target: Target, pool: string[], duration: number): Promise<Run> {
  const path = scenario === 'introspect' ? '/introspect' : '/token';
  let token: string | undefined;
  if (scenario === 'introspect') token = await backendToken(target);
  let i = 0;
  const cpu0 = await target.ask<number>({ kind: 'cpu' });
  const mem0 = await usedMemory();
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}`,
    connections,
    duration,
    requests: [
      {
        method: 'POST',
        path,
        headers: scenario === 'introspect' ? { ...FORM, authorization: basic } : FORM,
        setupRequest: (req) => ({ ...req, body: token !== undefined ? `token=${encodeURIComponent(token)}` : pool[i++ % pool.length] }),
      },
    ],
  });
  const cpu1 = await target.ask<number>({ kind: 'cpu' });
  const mem1 = await usedMemory();
  const requests = result.requests.total;
  if (pool.length && i > pool.length)
    console.log(`  (${target.name} ${scenario}: the pool of ${pool.length} ran out; repeats count as errors)`);
  if (result.non2xx) console.log(`  (${target.name} ${scenario}: status codes ${JSON.stringify(result.statusCodeStats)})`);
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors,
    requests,
    cpuPerRequest: (cpu1 - cpu0) / Math.max(1, requests),
    redisBytesPerRequest: (mem1 - mem0) / Math.max(1, requests),
  };
}

/** ES384 signature verifications per second on one core: the ceiling for ES384 client assertions. */
function es384VerifyLimit(): number {
  const a = assertion(keys.ES384);
  const [h, p, s] = a.split('.');
  const key = createPublicKey({ key: keys.ES384.publicJwk as never, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s!, 'base64url');
  let n = 0;
  const end = performance.now() + 2000;
  while (performance.now() < end) {
    verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    n++;
  }
  return n / 2;
}

// ---- the run ---------------------------------------------------------------------------------

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

const verifyLimit = es384VerifyLimit();
console.log(`ES384 verify on one core: ${fmt(verifyLimit)}/s`);
const bare = await startTarget('bare');
const ours = await startTarget('ours');
console.log(
  `targets: bare oidc-provider on :${bare.port}, this server on :${ours.port}; ${connections} connections, ${seconds} s per run, ${rounds} rounds`,
);

type Row = { scenario: Scenario; bare: Run[]; ours: Run[] };
const rows: Row[] = [];
try {
  for (const scenario of scenarios) {
    const row: Row = { scenario, bare: [], ours: [] };
    // A short warm-up of each tells how many bodies a measured run needs.
    // The first second only warms up (JIT, connection pools); the next two say the rate.
    const warm: Record<string, number> = {};
    for (const target of [bare, ours]) {
      await measure(scenario, target, await bodies(scenario, target, 3000, new Map()), 1);
      warm[target.name] = (await measure(scenario, target, await bodies(scenario, target, 8000, new Map()), 2)).rps;
    }
    // Generously: a run out of bodies would count repeats as errors. Raised after each run that came close.
    let n = Math.ceil(Math.max(warm.bare!, warm.ours!) * seconds * 1.8) + 1000;
    for (let round = 0; round < rounds; round++) {
      const shared = new Map<string, string[]>();
      const order = round % 2 === 0 ? [bare, ours] : [ours, bare];
      for (const target of order) {
        const pool = await bodies(scenario, target, n, shared);
        const run = await measure(scenario, target, pool, seconds);
        row[target.name].push(run);
        n = Math.max(n, Math.ceil(run.rps * seconds * 1.8) + 1000);
        console.log(
          `${scenario} round ${round + 1} ${target.name}: ${fmt(run.rps)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, errors ${run.errors}, CPU ${run.cpuPerRequest.toFixed(0)} µs/req, Redis ${fmt(run.redisBytesPerRequest)} B/req`,
        );
      }
    }
    rows.push(row);
  }

  // Every audit entry the runs appended must still verify.
  const verified = spawnSync(process.execPath, [fileURLToPath(new URL('../bin/smart-authz.js', import.meta.url)), 'audit', 'verify'], {
    env: { ...process.env, REDIS_URL: redisUrl, AUTHZ_REDIS_PREFIX: ours.prefix, AUTHZ_LOG_LEVEL: 'silent', AUTHZ_AUDIT_STORE: 'redis' },
    encoding: 'utf8',
  });
  console.log(`audit verify after the runs: exit ${verified.status}\n${verified.stdout.trim()}${verified.stderr.trim()}`);
  if (verified.status !== 0) process.exitCode = 1;
} finally {
  for (const t of [bare, ours]) t.child.kill('SIGTERM');
  redis.disconnect();
}

// ---- the table -------------------------------------------------------------------------------

const TITLES: Record<Scenario, string> = {
  'backend-rs384': 'backend token, RS384 assertion',
  'backend-es384': 'backend token, ES384 assertion',
  code: 'authorization code exchange (PKCE)',
  refresh: 'refresh (rotating)',
  introspect: 'introspection (Basic auth RS)',
};
const lines = [
  '| path | bare oidc-provider | this server | ratio | median round ratio | p99 ratio | CPU/req bare → ours | Redis B/req bare → ours |',
  '|---|---|---|---|---|---|---|---|',
];
for (const row of rows) {
  const show = (runs: Run[]) => `${runs.map((r) => fmt(r.rps)).join(' / ')} req/s, p99 ${runs.map((r) => r.p99).join(' / ')} ms`;
  const ratio = mean(row.ours.map((r) => r.rps)) / mean(row.bare.map((r) => r.rps));
  // Each round measures the two back to back, so its ratio sees nearly the same machine; the
  // median of those is steadier than the ratio of the means when the machine's speed drifts.
  const roundRatio = median(row.ours.map((r, i) => r.rps / row.bare[i]!.rps));
  const p99 = mean(row.ours.map((r) => r.p99)) / Math.max(1, mean(row.bare.map((r) => r.p99)));
  const cpu = `${mean(row.bare.map((r) => r.cpuPerRequest)).toFixed(0)} → ${mean(row.ours.map((r) => r.cpuPerRequest)).toFixed(0)} µs`;
  const mem = `${fmt(mean(row.bare.map((r) => r.redisBytesPerRequest)))} → ${fmt(mean(row.ours.map((r) => r.redisBytesPerRequest)))}`;
  const errors = [...row.bare, ...row.ours].reduce((a, r) => a + r.errors, 0);
  lines.push(
    `| ${TITLES[row.scenario]}${errors ? ` (${errors} errors)` : ''} | ${show(row.bare)} | ${show(row.ours)} | **${ratio.toFixed(2)}** | ${roundRatio.toFixed(2)} | ${p99.toFixed(2)} | ${cpu} | ${mem} |`,
  );
}
const es = rows.find((r) => r.scenario === 'backend-es384');
console.log('');
console.log(lines.join('\n'));
if (es)
  console.log(
    `\nES384 tokens: ${(mean(es.ours.map((r) => r.rps)) / verifyLimit).toFixed(2)} × the single-core verify limit (${fmt(verifyLimit)}/s)`,
  );
if (!values.markdown) console.log('\n(targets: ratio ≥ 0.9, p99 ratio ≤ 1.3; ES384 ≥ 0.8 × the verify limit)');
