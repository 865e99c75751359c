import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

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
 * The watchdog shell runs redis-server and reads its own stdin, a pipe from this process. When
 * this process dies, even by SIGKILL, the pipe reaches EOF and the watchdog stops Redis, so a dev
 * Redis never outlives the server that started it. SIGTERM to the shell stops Redis as well, and
 * the shell exits with Redis's status once Redis has finished writing its append-only file.
 * A background job's stdin is /dev/null in a non-interactive shell, hence the pipe's detour via fd 3.
 */
export const WATCHDOG = `
"$@" </dev/null &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
exec 3<&0
( while read -r _; do :; done; kill -TERM "$pid" 2>/dev/null ) <&3 3<&- &
watcher=$!
exec 3<&-
status=0
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done
kill "$watcher" 2>/dev/null
exit "$status"
`;

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
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--appendonly', 'yes',
    // One persistence format: the AOF. RDB snapshots would only duplicate it.
    '--save', '',
    '--daemonize', 'no',
    '--logfile', logFile,
  ];
  logger.warn({ url: redactUrl(url) }, 'no Redis answers; starting a private redis-server (development mode)');

  const child = launch(bin, args);
  const started = await waitUntilReady(child, port, opts.readyTimeoutMs ?? 10_000, logFile);
  logger.info({ port, dir }, 'private redis-server is ready');
  return { url: started, stop: () => stopChild(child) };
}

function launch(bin: string, args: string[]): ChildProcess {
  // detached: a Ctrl-C in the terminal reaches only the server, which then drains its Redis
  // connections before stopping Redis, instead of Redis vanishing under in-flight requests.
  const child =
    process.platform === 'win32'
      ? spawn(bin, args, { stdio: 'ignore' })
      : spawn('/bin/sh', ['-c', WATCHDOG, 'dev-redis-watchdog', bin, ...args], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.on('exit', onExit);
  child.once('exit', () => process.off('exit', onExit));
  // The dev Redis must not keep an otherwise finished process alive; stopChild re-refs it.
  child.unref();
  (child.stdin as { unref?: () => void } | null)?.unref?.();
  return child;
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
      await stopChild(child);
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms: ${logTail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.ref();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    // Redis ignored SIGTERM for too long: end the whole group (shell, watcher, Redis).
    try {
      if (child.pid && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }, 10_000);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
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

export function findExecutable(bin: string): string | undefined {
  if (bin.includes('/') || bin.includes('\\')) return isExecutableFile(bin) ? resolve(bin) : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, bin);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A port nothing listens on right now (loopback); the caller should bind it soon. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
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
