import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startSentinelGroup, type SentinelGroup } from '../support/redis-sentinel.js';
import { ROOT } from '../support/server-process.js';

/**
 * The admin CLI against a Sentinel group exits when its command is done. The Sentinel client
 * subscribes to the sentinels (failover detection) on connections of its own, which QUIT does not
 * close; a CLI command (audit export, clients list, ...) printed its answer and then hung for ever.
 * Found by the chaos suite (npm run chaos), which runs `audit export` and `audit verify`.
 */

let group: SentinelGroup;

beforeAll(async () => {
  group = await startSentinelGroup({ name: 'cli-exit' });
}, 60_000);

afterAll(async () => {
  await group?.stop();
});

test('`smart-authz audit export` through Sentinel answers and exits', async () => {
  const proc = spawn(process.execPath, ['bin/smart-authz.js', 'audit', 'export'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AUTHZ_REDIS_SENTINELS: group.sentinels,
      AUTHZ_REDIS_SENTINEL_NAME: group.name,
      AUTHZ_REDIS_PREFIX: `cli-${randomUUID().slice(0, 8)}:`,
      AUTHZ_DEV_REDIS: 'false',
      AUTHZ_AUDIT_STORE: 'redis',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const started = Date.now();
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => proc.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  expect(err).not.toMatch(/error/i);
  expect({ code, signal }).toEqual({ code: 0, signal: null });
  expect(Date.now() - started).toBeLessThan(20_000);
}, 40_000);
