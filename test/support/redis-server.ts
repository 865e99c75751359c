import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../src/platform/ops/local-process.js';

export interface RedisServerHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Start again on the same port and data dir (for outage/recovery tests). */
  restart(): Promise<void>;
  /** Sends a signal to the redis-server process (SIGSTOP / SIGCONT: a hung Redis). */
  signal(signal: NodeJS.Signals): void;
  /** Stops the server and removes its data dir (the handle is done with). */
  destroy(): Promise<void>;
}

export interface RedisServerOptions {
  /** Extra redis-server arguments, after the defaults (the last value of a setting wins), e.g. ['--appendonly', 'yes']. */
  args?: string[];
}

export const freePort = freeLoopbackPort;

async function waitForPing(port: number, deadlineMs = 10_000): Promise<void> {
  const { Redis } = await import('ioredis');
  const started = Date.now();
  for (;;) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch {
      client.disconnect();
      if (Date.now() - started > deadlineMs) throw new Error(`redis-server on ${port} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Starts a private redis-server on a free loopback port with its data in a temp dir. */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-redis-'));
  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...(opts.args ?? [])],
      {
        stdio: 'ignore',
      },
    );
    await waitForPing(port);
  };
  await launch();
  const handle: RedisServerHandle = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGKILL');
      });
    },
    async restart() {
      await launch();
    },
    signal(signal) {
      proc?.kill(signal);
    },
    async destroy() {
      await handle.stop();
      removeDir(dir);
    },
  };
  return handle;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
