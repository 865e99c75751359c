// Introspection throughput and p99 against a bare Koa endpoint doing one Redis GET, and with
// introspection auditing on vs off, measured in the same run (off and on alternate, so drift in
// machine load hits both), as requests/s and as CPU time per request. Usage: npm run bench:introspect [-- --seconds 5 --connections 50 --rounds 8]
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '8' },
    pin: { type: 'boolean', default: false },
  },
});
const duration = Number(values.seconds);
const connections = Number(values.connections);

// --pin: the server under test gets core 1 to itself; the load generator and a private
// redis-server share core 0, as a deployment's clients and Redis would run elsewhere. Without it
// all three share both cores (and Redis is REDIS_URL or the local one).
let privateRedis: ChildProcess | undefined;
if (values.pin) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  privateRedis = spawn(
    'taskset',
    [
      '-c',
      '0',
      'redis-server',
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      mkdtempSync(join(tmpdir(), 'bench-redis-')),
    ],
    { stdio: 'ignore' },
  );
  process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(process.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    const up = await probe
      .connect()
      .then(() => probe.ping())
      .then(
        () => true,
        () => false,
      );
    probe.disconnect();
    if (up) break;
    if (i > 100) throw new Error('the private redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  spawnSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
}
const targets = new URL('./targets/introspect.ts', import.meta.url).pathname;
const child = values.pin
  ? spawn('taskset', ['-c', '1', process.execPath, '--import', 'tsx', targets], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  : fork(targets, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
console.log(
  values.pin
    ? 'pinned: server on core 1; load generator and a private Redis on core 0'
    : 'unpinned: server, load generator and Redis share the cores',
);
type Ready = { appPort: number; unauditedPort: number; basePort: number; token: string };
const ready = await new Promise<Ready>((resolve, reject) => {
  child.once('message', (m) => resolve(m as Ready));
  child.once('exit', (code) => reject(new Error(`targets exited ${code}`)));
});

async function run(title: string, opts: autocannon.Options) {
  const result = await autocannon({ connections, duration, ...opts });
  const non2xx = result.non2xx + result.errors;
  console.log(
    `${title}: ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, errors ${non2xx}`,
  );
  return result;
}

const auth = `Basic ${Buffer.from('bench-rs:bench-rs-secret').toString('base64')}`;
const body = `token=${encodeURIComponent(ready.token)}`;
const introspect = (port: number) => ({
  url: `http://127.0.0.1:${port}/introspect`,
  method: 'POST' as const,
  headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
  body,
});
const form = { method: 'POST' as const, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body };
// Warm them all up so JIT and connection pools are comparable.
await autocannon({ url: `http://127.0.0.1:${ready.basePort}/`, ...form, connections: 10, duration: 2 });
for (const port of [ready.appPort, ready.unauditedPort]) await autocannon({ ...introspect(port), connections: 10, duration: 2 });

const base = await run('baseline (Koa form POST + one Redis GET)', { url: `http://127.0.0.1:${ready.basePort}/`, ...form });
const intro = await run('POST /introspect (active opaque token)', introspect(ready.appPort));
console.log(
  `ratio: introspection throughput ${(intro.requests.average / base.requests.average).toFixed(2)} x baseline; p99 ${(intro.latency.p99 / Math.max(1, base.latency.p99)).toFixed(2)} x baseline`,
);

// CPU time per request, of the server process and of Redis: unlike requests/s on two cores shared
// with the load generator, it hardly moves with what else the machine is doing, and its ratio is
// the throughput ratio a CPU-bound deployment would see.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const redisCpu = async () => {
  const info = await redis.info('cpu');
  return (Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1])) * 1e6;
};
const serverCpu = () =>
  new Promise<number>((resolve) => {
    child.once('message', (m) => resolve((m as { cpu: number }).cpu));
    child.send('cpu');
  });
async function measured(title: string, port: number) {
  const [s0, r0] = [await serverCpu(), await redisCpu()];
  const result = await run(title, introspect(port));
  const [s1, r1] = [await serverCpu(), await redisCpu()];
  const n = result.requests.total;
  const cpu = { server: (s1 - s0) / n, redis: (r1 - r0) / n };
  console.log(`  CPU per request: server ${cpu.server.toFixed(1)} µs, Redis ${cpu.redis.toFixed(1)} µs`);
  return { rps: result.requests.average, cpu: cpu.server + cpu.redis };
}

const off: Array<{ rps: number; cpu: number }> = [];
const on: Array<{ rps: number; cpu: number }> = [];
// Short alternating pairs, each in the other order than the last (off-on, on-off, …): the
// machine's speed drifts (two shared cores, a load generator on them), and a pair measured
// back to back sees nearly the same machine. The median of the pairs' ratios is the figure;
// the mean over all rounds is printed beside it.
for (let round = 1; round <= Number(values.rounds); round++) {
  const measureOff = async () => off.push(await measured(`round ${round}: /introspect, auditing off`, ready.unauditedPort));
  const measureOn = async () =>
    on.push(await measured(`round ${round}: /introspect, auditing on (AuditEvent appended before the answer)`, ready.appPort));
  if (round % 2) {
    await measureOff();
    await measureOn();
  } else {
    await measureOn();
    await measureOff();
  }
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const ratios = on.map((r, i) => r.rps / off[i]!.rps);
const ratio = median(ratios);
const meanRatio = mean(on.map((r) => r.rps)) / mean(off.map((r) => r.rps));
console.log(
  `audit cost: auditing on = ${ratio.toFixed(3)} x auditing off throughput, median of ${ratios.length} pairs (${((1 - ratio) * 100).toFixed(1)} % fewer requests/s; budget 20 %)`,
);
console.log(`  per pair: ${ratios.map((r) => r.toFixed(2)).join(', ')}; mean throughput on / off: ${meanRatio.toFixed(3)}`);
const cpuRatio = mean(off.map((r) => r.cpu)) / mean(on.map((r) => r.cpu));
console.log(
  `CPU per request (server + Redis): off ${mean(off.map((r) => r.cpu)).toFixed(1)} µs, on ${mean(on.map((r) => r.cpu)).toFixed(1)} µs: on = ${cpuRatio.toFixed(3)} x the requests per CPU-second of off`,
);
redis.disconnect();
// The child deletes its keys on SIGTERM; the private Redis goes only after it has.
await new Promise((resolve) => {
  child.once('exit', resolve);
  child.kill();
});
privateRedis?.kill();
