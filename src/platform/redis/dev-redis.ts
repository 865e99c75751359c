import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { findExecutable, freeLoopbackPort, launchWatched, redactUrl, stopWatched } from '../ops/local-process.js';

export interface DevRedisOptions {
  /** The configured Redis URL; probed first, and its port reused when it points at this machine. */
  url: string;
  /** The server's data folder; Redis keeps its files in `<dataDir>/redis`. */
  dataDir: string;
  logger: Logger;
  /** Name (looked up on PATH) or path of the binary. */
  redisServerBin?: string;
  /** How long the started server may take to answer PING. */
  readyTimeoutMs?: number;
}

export interface DevRedis {
  url: string;
  stop(): Promise<void>;
}

const DEFAULT_BIN = 'redis-server';
const PROBE_TIMEOUT_MS = 1_000;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Development convenience: when nothing answers at `url`, starts a private redis-server on
 * 127.0.0.1 with append-only persistence under `<dataDir>/redis`, so dev data survives restarts.
 * Returns undefined when a Redis already answers (nothing to do). The returned `url` has no
 * credentials and always names 127.0.0.1; connect with it instead of the configured one.
 */
export async function ensureDevRedis(opts: DevRedisOptions): Promise<DevRedis | undefined> {
  const { url, logger } = opts;
  if (await redisAnswers(url, PROBE_TIMEOUT_MS)) return undefined;

  const binName = opts.redisServerBin ?? DEFAULT_BIN;
  const bin = findExecutable(binName);
  if (!bin) {
    const looked = binName === DEFAULT_BIN ? '' : ` (looked for ${binName})`;
    throw new Error(`no Redis answers at ${redactUrl(url)} and redis-server is not installed${looked}; start Redis or set REDIS_URL`);
  }

  const target = new URL(url);
  const port = LOOPBACK_HOSTS.has(target.hostname) ? Number(target.port || 6379) : await freeLoopbackPort();
  const dir = resolve(opts.dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const logFile = join(dir, 'redis.log');
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    // One persistence format: the AOF. RDB snapshots would only duplicate it.
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    logFile,
  ];
  logger.warn({ url: redactUrl(url) }, 'no Redis answers; starting a private redis-server (development mode)');

  const child = launchWatched(bin, args, 'dev-redis');
  const started = await waitUntilReady(child, port, opts.readyTimeoutMs ?? 10_000, logFile);
  logger.info({ port, dir }, 'private redis-server is ready');
  return { url: started, stop: () => stopWatched(child) };
}

async function waitUntilReady(child: ChildProcess, port: number, timeoutMs: number, logFile: string): Promise<string> {
  const url = `redis://127.0.0.1:${port}`;
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) throw new Error(`cannot start redis-server: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited during startup (${child.exitCode ?? child.signalCode}): ${logTail(logFile)}`);
    }
    if (await redisAnswers(url, 200)) return url;
    if (Date.now() > deadline) {
      await stopWatched(child);
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms: ${logTail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * True when something speaking the Redis protocol answers. An error reply (NOAUTH, WRONGPASS)
 * still means a Redis is there: starting a second one would hide a configuration mistake.
 */
async function redisAnswers(url: string, timeoutMs: number): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    retryStrategy: () => null,
    // A probe has nothing to flush; the default would keep the process alive for two seconds.
    disconnectTimeout: 50,
  });
  client.on('error', () => {});
  const attempt = (async () => {
    await client.connect();
    await client.ping();
    return true;
  })().catch((err: unknown) => (err as Error).name === 'ReplyError');
  // The client's own timeouts do not bound the handshake with a peer that accepts but never speaks.
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(false), timeoutMs);
  });
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

function logTail(logFile: string): string {
  try {
    const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
    return lines.slice(-3).join(' | ') || '(empty log)';
  } catch {
    return `(no log at ${logFile})`;
  }
}
