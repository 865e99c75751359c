// The server as installed (src/main.ts, clients from a clients file) with AUTHZ_WORKERS=1 and with
// one worker per core, backend tokens (RS384) alternated round by round. On a machine whose load
// generator shares the cores with the server this shows what the workers add there, not what a
// server with cores of its own would do: the generator and Redis take cores the workers need.
//
// Usage: npm run bench:workers -- [--seconds 6] [--connections 32] [--rounds 2] [--workers N]
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { BACKEND_CLIENTS, BACKEND_SCOPE, ISSUER, clientKey } from './lib/fixture.js';
import { assertion, backendBody } from './lib/assertions.js';
import { removePrefix } from './lib/target-ipc.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    workers: { type: 'string', default: String(availableParallelism()) },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const many = Number(values.workers);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const key = clientKey('RS384');
const dir = mkdtempSync(join(tmpdir(), 'bench-workers-'));
const clientsFile = join(dir, 'clients.json');
writeFileSync(
  clientsFile,
  JSON.stringify({
    clients: [
      {
        client_id: BACKEND_CLIENTS.RS384,
        smart_client_kind: 'backend_service',
        jwks: { keys: [key.publicJwk] },
        smart_scopes: [BACKEND_SCOPE],
      },
    ],
  }),
);

interface Server {
  proc: ChildProcess;
  port: number;
  prefix: string;
}

async function start(workers: number): Promise<Server> {
  const prefix = `bench-workers-${randomUUID().slice(0, 8)}:`;
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', '--no-warnings', fileURLToPath(new URL('../src/main.ts', import.meta.url))], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      REDIS_URL: redisUrl,
      AUTHZ_REDIS_PREFIX: prefix,
      AUTHZ_ISSUER: ISSUER,
      AUTHZ_HOST: '127.0.0.1',
      PORT: String(port),
      AUTHZ_WORKERS: String(workers),
      AUTHZ_AUDIT_STORE: 'redis',
      AUTHZ_AUDIT_VALIDATE_EVENTS: 'false',
      AUTHZ_DEMO_DATA: 'false',
      AUTHZ_CLIENTS_FILE: clientsFile,
      AUTHZ_LOG_LEVEL: 'warn',
      AUTHZ_AUDIT_ANCHOR_DIR: dir,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}): ${out}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { proc, port, prefix };
    if (Date.now() > deadline) throw new Error('the server did not become ready within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A port free a moment ago (the server is told it; a bench on loopback can live with the race). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function stop(server: Server): Promise<void> {
  const exited = new Promise((r) => server.proc.once('exit', r));
  server.proc.kill('SIGTERM');
  await exited;
  const redis = new Redis(redisUrl);
  await removePrefix(redis, server.prefix);
  redis.disconnect();
}

async function measure(server: Server, pool: string[]) {
  let i = 0;
  const run = (duration: number) =>
    autocannon({
      url: `http://127.0.0.1:${server.port}`,
      connections,
      duration,
      requests: [
        {
          method: 'POST',
          path: '/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          setupRequest: (req) => ({ ...req, body: pool[i++ % pool.length] }),
        },
      ],
    });
  await run(2); // warm-up: JIT, and every worker's connections
  const result = await run(seconds);
  if (i > pool.length) console.log(`  (the pool of ${pool.length} ran out; repeats count as errors)`);
  return { rps: result.requests.average, p99: result.latency.p99, errors: result.non2xx + result.errors };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const results: Record<number, Array<{ rps: number; p99: number; errors: number }>> = { 1: [], [many]: [] };
console.log(`AUTHZ_WORKERS 1 and ${many}; ${availableParallelism()} cores shared with the load generator and Redis; ${seconds} s per run`);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const workers of round % 2 === 0 ? [1, many] : [many, 1]) {
    // Enough single-use assertions for the warm-up and the run at a generous rate.
    const pool = Array.from({ length: Math.ceil(3500 * (seconds + 2) * (workers > 1 ? 1.6 : 1)) }, () => backendBody(assertion(key)));
    const server = await start(workers);
    try {
      const r = await measure(server, pool);
      results[workers]!.push(r);
      console.log(`round ${round + 1}, ${workers} worker(s): ${fmt(r.rps)} req/s, p99 ${r.p99} ms, errors ${r.errors}`);
    } finally {
      await stop(server);
    }
  }
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log('');
console.log('| backend token, RS384 | req/s | p99 |');
console.log('|---|---|---|');
for (const workers of [1, many]) {
  const runs = results[workers]!;
  console.log(`| AUTHZ_WORKERS=${workers} | ${runs.map((r) => fmt(r.rps)).join(' / ')} | ${runs.map((r) => r.p99).join(' / ')} ms |`);
}
console.log(`
${many} workers / 1 worker: ${(mean(results[many]!.map((r) => r.rps)) / mean(results[1]!.map((r) => r.rps))).toFixed(2)}`);
