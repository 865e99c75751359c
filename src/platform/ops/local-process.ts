import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/*
 * Local server processes the development mode starts when nothing answers (platform/redis/dev-redis.ts,
 * records/audit/pg/dev-postgres.ts), and the tests' own servers: found on PATH, on a free loopback port,
 * never outliving the process that started them.
 */

/**
 * The watchdog shell runs the server and reads its own stdin, a pipe from this process. When
 * this process dies, even by SIGKILL, the pipe reaches EOF and the watchdog stops the server, so
 * a development server never outlives the process that started it. SIGTERM to the shell stops the
 * server as well, and the shell exits with the server's status once it has finished (Redis writing
 * its append-only file, PostgreSQL its shutdown checkpoint).
 * A background job's stdin is /dev/null in a non-interactive shell, hence the pipe's detour via fd 3.
 */
const WATCHDOG = `
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
 * Starts `bin args` under the watchdog. Detached: a Ctrl-C in the terminal reaches only this
 * process, which then closes its connections before stopping the server, instead of the server
 * vanishing under in-flight requests. The child does not keep this process alive.
 */
export function launchWatched(bin: string, args: string[], name: string, opts: { stderr?: boolean } = {}): ChildProcess {
  const child =
    process.platform === 'win32'
      ? spawn(bin, args, { stdio: ['ignore', 'ignore', opts.stderr ? 'pipe' : 'ignore'] })
      : spawn('/bin/sh', ['-c', WATCHDOG, `${name}-watchdog`, bin, ...args], {
          stdio: ['pipe', 'ignore', opts.stderr ? 'pipe' : 'ignore'],
          detached: true,
        });
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.on('exit', onExit);
  child.once('exit', () => process.off('exit', onExit));
  // stopWatched re-refs it.
  child.unref();
  (child.stdin as { unref?: () => void } | null)?.unref?.();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  return child;
}

/** SIGTERM, then after `graceMs` SIGKILL of the whole group (shell, watcher, server). */
export async function stopWatched(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.ref();
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    try {
      if (child.pid && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
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

/** A URL with its password masked, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
