import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ensureDevRedis } from '../../../src/platform/redis/dev-redis.js';
import { freePort } from '../../support/redis-server.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];

function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-devredis-'));
  dirs.push(dir);
  return dir;
}

async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
    disconnectTimeout: 50,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('ensureDevRedis', () => {
  test('starts a persistent redis-server on the configured loopback port and stops it', async () => {
    const port = await freePort();
    const dataDir = tempDataDir();
    const url = `redis://127.0.0.1:${port}`;

    const dev = await ensureDevRedis({ url, dataDir, logger });
    expect(dev).toBeDefined();
    expect(dev!.url).toBe(url);
    const client = new Redis(dev!.url);
    try {
      await client.set('dev-redis-test', 'kept');
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    } finally {
      client.disconnect();
    }
    const files = readdirSync(join(dataDir, 'redis'));
    expect(files.some((f) => f === 'appendonlydir' || f.endsWith('.aof'))).toBe(true);

    await dev!.stop();
    expect(await answers(url)).toBe(false);

    const again = await ensureDevRedis({ url, dataDir, logger });
    const reader = new Redis(again!.url);
    try {
      expect(await reader.get('dev-redis-test')).toBe('kept');
    } finally {
      reader.disconnect();
      await again!.stop();
    }
  });

  test('returns undefined when a Redis already answers', async () => {
    const dataDir = tempDataDir();
    await expect(ensureDevRedis({ url: process.env.REDIS_URL!, dataDir, logger })).resolves.toBeUndefined();
    expect(readdirSync(dataDir)).toEqual([]);
  });

  test('a non-loopback URL gets a free loopback port', async () => {
    // TEST-NET-1 (RFC 5737) never answers, so the probe times out.
    const dev = await ensureDevRedis({ url: 'redis://192.0.2.1:6379', dataDir: tempDataDir(), logger });
    try {
      expect(dev!.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      expect(dev!.url).not.toBe('redis://127.0.0.1:6379');
      expect(await answers(dev!.url)).toBe(true);
    } finally {
      await dev!.stop();
    }
  });

  test('throws a clear error when redis-server is not installed', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    await expect(ensureDevRedis({ url, dataDir: tempDataDir(), logger, redisServerBin: '/nonexistent/redis-server' })).rejects.toThrow(
      `no Redis answers at ${url} and redis-server is not installed`,
    );

    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent-bin-dir';
    try {
      await expect(ensureDevRedis({ url, dataDir: tempDataDir(), logger })).rejects.toThrow(
        `no Redis answers at ${url} and redis-server is not installed; start Redis or set REDIS_URL`,
      );
    } finally {
      process.env.PATH = savedPath;
    }
  });

  test('reports why when the port is taken by something that is not Redis', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const addr = silent.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      await expect(ensureDevRedis({ url: `redis://user:s3cret@127.0.0.1:${port}`, dataDir: tempDataDir(), logger })).rejects.toThrow(
        /exited during startup/,
      );
    } finally {
      silent.close();
    }
  });

  test('the private redis-server dies with a parent killed by SIGKILL', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const script = fileURLToPath(new URL('./dev-redis-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, url, tempDataDir()], { stdio: ['ignore', 'pipe', 'inherit'] });
    const started = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    expect(started).toBe(url);
    expect(await answers(url)).toBe(true);

    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    expect(await eventually(async () => !(await answers(url)), 10_000)).toBe(true);
  });
});
