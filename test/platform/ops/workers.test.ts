import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, get as httpGet } from 'node:http';
import { Redis } from 'ioredis';
import { KeyStore } from '../../../src/platform/keys/keystore.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { startServerProcess, type ServerProcess } from '../../support/server-process.js';

/**
 * AUTHZ_WORKERS: the real entry point as a primary with worker processes, over real HTTP. Which
 * worker answered is read from the logs (every line carries its worker id), never from responses.
 */

const base = () => ({
  REDIS_URL: process.env.REDIS_URL!,
  AUTHZ_REDIS_PREFIX: `w-${randomUUID().slice(0, 8)}:`,
  AUTHZ_LOG_LEVEL: 'info',
  AUTHZ_WORKERS: '2',
  AUTHZ_METRICS_OPEN: 'true',
  AUTHZ_SHUTDOWN_DRAIN_MS: '200',
  AUTHZ_KEY_RELOAD_INTERVAL_MS: '300',
});

type LogLine = Record<string, unknown> & { msg?: string };

const lines = (server: ServerProcess): LogLine[] =>
  server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** The pids of the workers the primary last reported ready and has not seen exit. */
function liveWorkers(server: ServerProcess): Map<number, number> {
  const live = new Map<number, number>();
  for (const l of lines(server)) {
    if (l.role !== 'primary' || typeof l.worker !== 'number') continue;
    if (l.msg === 'worker ready') live.set(l.worker, l.pid as number);
    else if (l.msg === 'worker exited' || l.msg === 'worker died: replacing it') live.delete(l.worker);
  }
  return live;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET on a connection of its own (`Connection: close`), so the primary hands each to the next worker. */
function getOnce(url: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const allReady = (server: ServerProcess, n = 2) => until(`${n} ready workers`, () => liveWorkers(server).size === n);

async function stop(server: ServerProcess): Promise<number | null> {
  if (server.proc.exitCode === null) server.proc.kill('SIGTERM');
  return server.exited;
}

describe('worker processes (AUTHZ_WORKERS)', () => {
  const env = base();
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServerProcess(env);
    await allReady(server);
  }, 60_000);

  afterAll(async () => {
    if (server) await stop(server);
  });

  test('requests are served by both workers, which all listen on the one port the log reports', async () => {
    for (let i = 0; i < 10; i++) expect((await getOnce(`${server.url}/.well-known/openid-configuration`)).status).toBe(200);
    // A log line can reach the pipe a moment after its response reached us.
    const served = () => new Set(lines(server).flatMap((l) => (l.path === '/.well-known/openid-configuration' ? [l.worker] : [])));
    await until('the request logs', () => served().size === 2);
    expect(served()).toEqual(new Set(liveWorkers(server).keys()));
    const ports = new Set(lines(server).flatMap((l) => (l.msg === 'listening' ? [l.port] : [])));
    expect(ports).toEqual(new Set([Number(new URL(server.url).port)]));
  });

  test('/metrics is the total over all workers, whichever worker answers the scrape', async () => {
    const K = 12;
    for (let i = 0; i < K; i++) await getOnce(`${server.url}/healthz`);
    // Fresh connections alternate between the workers: each of them answers some of the scrapes.
    for (let i = 0; i < 4; i++) {
      const scrape = await getOnce(`${server.url}/metrics`);
      expect(scrape.status).toBe(200);
      expect(scrape.body).toContain(`http_requests_total{method="GET",route="/healthz",status="200"} ${K}`);
    }
  });

  test('a scrape while one worker does not answer is a 503, not a partial total', async () => {
    const [, pid] = [...liveWorkers(server)][0]!;
    process.kill(pid, 'SIGSTOP');
    // Two fresh connections: the primary hands one to each worker; the stopped one's waits.
    const scrapes = [getOnce(`${server.url}/metrics`), getOnce(`${server.url}/metrics`)];
    try {
      const answered = await Promise.race(scrapes);
      expect(answered.status).toBe(503);
      expect(JSON.parse(answered.body)).toMatchObject({
        error: 'temporarily_unavailable',
        error_description: expect.stringMatching(/^metrics unavailable: 1 worker\(s\) did not send their metrics within 2000 ms$/),
      });
    } finally {
      process.kill(pid, 'SIGCONT');
      await Promise.allSettled(scrapes);
    }
  });

  test('a signing key introduced in Redis is published by every worker', async () => {
    const redis = new Redis(process.env.REDIS_URL!);
    try {
      const { kid } = await new KeyStore(redis, new Keyspace(env.AUTHZ_REDIS_PREFIX)).introduce('EC');
      await until('every worker to reload its keys', () => {
        const reloaded = new Set(lines(server).flatMap((l) => (l.msg === 'signing keys reloaded' ? [l.worker] : [])));
        return [...liveWorkers(server).keys()].every((w) => reloaded.has(w));
      });
      for (let i = 0; i < 6; i++) {
        const jwks = JSON.parse((await getOnce(`${server.url}/.well-known/jwks.json`)).body) as { keys: Array<{ kid: string }> };
        expect(jwks.keys.map((k) => k.kid)).toContain(kid);
      }
    } finally {
      redis.disconnect();
    }
  });

  test('a worker killed with SIGKILL is replaced and the service keeps answering', async () => {
    const [victim, pid] = [...liveWorkers(server)][0]!;
    process.kill(pid, 'SIGKILL');
    await until('the primary to notice', () => !liveWorkers(server).has(victim));
    expect((await getOnce(`${server.url}/healthz`)).status).toBe(200);
    await allReady(server);
    expect([...liveWorkers(server).values()]).not.toContain(pid);
  });

  test('SIGHUP restarts the workers one at a time without failing a request under load', async () => {
    const before = new Set(liveWorkers(server).values());
    const restarts = lines(server).filter((l) => l.msg === 'rolling restart done').length;
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    let done = false;
    let ok = 0;
    const failures: string[] = [];
    const client = async () => {
      while (!done) {
        try {
          const { status } = await getOnce(`${server.url}/.well-known/jwks.json`, agent);
          if (status === 200) ok++;
          else failures.push(`status ${status}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const load = Array.from({ length: 20 }, () => client());
    await new Promise((r) => setTimeout(r, 300));
    server.proc.kill('SIGHUP');
    await until('the rolling restart', () => lines(server).filter((l) => l.msg === 'rolling restart done').length > restarts, 60_000);
    // Some more load on the new workers only.
    await new Promise((r) => setTimeout(r, 300));
    done = true;
    await Promise.all(load);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    const after = [...liveWorkers(server).values()];
    expect(after).toHaveLength(2);
    for (const pid of after) expect(before.has(pid)).toBe(false);
  }, 90_000);

  test('SIGTERM stops every worker and the primary, all with exit code 0', async () => {
    const pids = [...liveWorkers(server).values()];
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const exits = lines(server).filter((l) => l.msg === 'worker exited' && pids.includes(l.pid as number));
    expect(exits.map((l) => l.code)).toEqual([0, 0]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(lines(server).at(-1)).toMatchObject({ role: 'primary', msg: 'stopped' });
  }, 30_000);
});

describe('worker processes: start-up errors', () => {
  test('workers that keep failing at start-up stop the primary with one line', async () => {
    // Workers read the configuration again (a rolling restart picks up a changed file): one that
    // became unreadable after the primary started makes every replacement fail at once.
    const file = join(mkdtempSync(join(tmpdir(), 'workers-')), 'config.json');
    writeFileSync(file, '{}');
    const server = await startServerProcess({ ...base(), AUTHZ_CONFIG: file });
    try {
      await allReady(server);
      writeFileSync(file, '{ broken');
      const [, pid] = [...liveWorkers(server)][0]!;
      process.kill(pid, 'SIGKILL');
      expect(await server.exited).toBe(1);
      const stderr = server.stderr().trim().split('\n');
      expect(stderr.filter((l) => l.startsWith('config error: AUTHZ_CONFIG file'))).toHaveLength(5);
      expect(stderr.at(-1)).toMatch(/^workers keep failing at start-up \(5 in a row, the last: exit code 1\): stopping$/);
      // The worker that was still serving was stopped gracefully.
      expect(
        lines(server)
          .filter((l) => l.msg === 'worker exited')
          .map((l) => l.code),
      ).toEqual([0]);
    } finally {
      await stop(server);
    }
  }, 60_000);

  test('a bad AUTHZ_WORKERS is one config-error line', async () => {
    const server = await startServerProcess({ ...base(), AUTHZ_WORKERS: '0' }, { waitReady: false });
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split('\n')).toEqual(['config error: AUTHZ_WORKERS (workers) must be at least 1']);
    expect(server.stdout()).toBe('');
  });

  test("the first worker's start-up error is the primary's: one line, exit code 1, no retries", async () => {
    const server = await startServerProcess({ ...base(), REDIS_URL: 'redis://127.0.0.1:1' }, { waitReady: false });
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split('\n')).toEqual([expect.stringMatching(/^cannot connect to Redis at redis:\/\/127.0.0.1:1\/?: /)]);
    expect(lines(server).filter((l) => l.msg === 'worker started')).toHaveLength(1);
  });
});
