// Introspection throughput and p99 against a bare Koa endpoint doing one Redis GET, and with
// introspection auditing on vs off, measured in the same run (off and on alternate twice, so drift
// in machine load hits both). Usage: npm run bench:introspect [-- --seconds 10 --connections 50]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } });
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
const off: number[] = [];
const on: number[] = [];
for (let round = 1; round <= 2; round++) {
  off.push((await run(`round ${round}: /introspect, auditing off`, introspect(ready.unauditedPort))).requests.average);
  on.push((await run(`round ${round}: /introspect, auditing on (AuditEvent appended before the answer)`, introspect(ready.appPort))).requests.average);
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const cost = 1 - mean(on) / mean(off);
console.log(`audit cost: auditing on = ${(mean(on) / mean(off)).toFixed(3)} x auditing off throughput (${(cost * 100).toFixed(1)} % fewer requests/s; budget 20 %)`);
child.kill();
