// Introspection throughput and p99 against a bare Koa endpoint doing one Redis GET, and with
// introspection auditing on vs off, measured in the same run (off and on alternate, so drift in
// machine load hits both), as requests/s and as CPU time per request. Usage: npm run bench:introspect [-- --seconds 10 --connections 50 --rounds 3]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' } } });
const duration = Number(values.seconds);
const connections = Number(values.connections);

const child = fork(new URL('./targets.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
type Ready = { appPort: number; unauditedPort: number; basePort: number; token: string };
const ready = await new Promise<Ready>((resolve, reject) => {
  child.once('message', (m) => resolve(m as Ready));
  child.once('exit', (code) => reject(new Error(`targets exited ${code}`)));
});

async function run(title: string, opts: autocannon.Options) {
  const result = await autocannon({ connections, duration, ...opts });
  const non2xx = result.non2xx + result.errors;
  console.log(`${title}: ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, errors ${non2xx}`);
  return result;
}

const auth = `Basic ${Buffer.from('bench-rs:bench-rs-secret').toString('base64')}`;
const body = `token=${encodeURIComponent(ready.token)}`;
// Warm both up so JIT and connection pools are comparable.
const form = { method: 'POST' as const, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body };
await autocannon({ url: `http://127.0.0.1:${ready.basePort}/`, ...form, connections: 10, duration: 2 });
await autocannon({ url: `http://127.0.0.1:${ready.appPort}/introspect`, method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, body, connections: 10, duration: 2 });
await autocannon({ url: `http://127.0.0.1:${ready.unauditedPort}/introspect`, method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, body, connections: 10, duration: 2 });

const base = await run('baseline (Koa form POST + one Redis GET)', { url: `http://127.0.0.1:${ready.basePort}/`, ...form });
const intro = await run('POST /introspect (active opaque token)', {
  url: `http://127.0.0.1:${ready.appPort}/introspect`,
  method: 'POST',
  headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
  body,
});
console.log(`ratio: introspection throughput ${(intro.requests.average / base.requests.average).toFixed(2)} x baseline; p99 ${(intro.latency.p99 / Math.max(1, base.latency.p99)).toFixed(2)} x baseline`);

const introspect = (port: number) => ({ url: `http://127.0.0.1:${port}/introspect`, method: 'POST' as const, headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, body });

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
for (let round = 1; round <= Number(values.rounds); round++) {
  off.push(await measured(`round ${round}: /introspect, auditing off`, ready.unauditedPort));
  on.push(await measured(`round ${round}: /introspect, auditing on (AuditEvent appended before the answer)`, ready.appPort));
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ratio = mean(on.map((r) => r.rps)) / mean(off.map((r) => r.rps));
const perRound = on.map((r, i) => (r.rps / off[i]!.rps).toFixed(2)).join(', ');
console.log(`audit cost: auditing on = ${ratio.toFixed(3)} x auditing off throughput (${((1 - ratio) * 100).toFixed(1)} % fewer requests/s; budget 20 %); per round: ${perRound}`);
const cpuRatio = mean(off.map((r) => r.cpu)) / mean(on.map((r) => r.cpu));
console.log(`CPU per request (server + Redis): off ${mean(off.map((r) => r.cpu)).toFixed(1)} µs, on ${mean(on.map((r) => r.cpu)).toFixed(1)} µs: on = ${cpuRatio.toFixed(3)} x the requests per CPU-second of off`);
redis.disconnect();
child.kill();
