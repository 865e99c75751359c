import { spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import { findExecutable, freeLoopbackPort, launchWatched, stopWatched } from '../../../platform/ops/local-process.js';

/**
 * A private PostgreSQL server for development and tests: `initdb` into a data directory on first
 * use (trust authentication, loopback only), then `postgres` on a free loopback port, stopped with
 * this process (the same watchdog as the development Redis: even a SIGKILL of this process stops
 * it). PostgreSQL refuses to run as root; as root it runs as the `postgres` user when there is one.
 */

export interface PostgresServer {
  /** Superuser URL (database `postgres`). */
  url: string;
  port: number;
  dataDir: string;
  /** The postmaster's pid (from postmaster.pid), for tests that kill it. */
  pid(): number | undefined;
  stop(): Promise<void>;
}

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

/** initdb and postgres on PATH, or in Debian's versioned directory; undefined when absent. */
export function postgresBinaries(): PostgresBinaries | undefined {
  const initdb = findExecutable('initdb');
  const postgres = findExecutable('postgres');
  if (initdb && postgres) return { initdb, postgres };
  // Debian keeps them off PATH, one directory per major version: the newest wins.
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    const bin = `${base}/${v}/bin`;
    if (existsSync(`${bin}/initdb`) && existsSync(`${bin}/postgres`)) return { initdb: `${bin}/initdb`, postgres: `${bin}/postgres` };
  }
  return undefined;
}

/** How a command runs as a user PostgreSQL accepts: as is, or as `postgres` when this process is root. */
function asPostgresUser(bin: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [bin, args];
  const setpriv = findExecutable('setpriv');
  if (!setpriv || spawnSync('id', ['-u', 'postgres']).status !== 0) {
    throw new Error('PostgreSQL does not run as root, and there is no postgres user (or setpriv) to run it as');
  }
  return [setpriv, ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', bin, ...args]];
}

export async function startPostgres(opts: { dataDir: string; port?: number; readyTimeoutMs?: number }): Promise<PostgresServer> {
  const bins = postgresBinaries();
  if (!bins) throw new Error('initdb and postgres are not installed');
  const dataDir = resolve(opts.dataDir);
  if (!existsSync(`${dataDir}/PG_VERSION`)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) {
      const uid = Number(spawnSync('id', ['-u', 'postgres']).stdout.toString().trim());
      const gid = Number(spawnSync('id', ['-g', 'postgres']).stdout.toString().trim());
      chownSync(dataDir, uid, gid);
    }
    const [bin, args] = asPostgresUser(bins.initdb, [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-instructions',
    ]);
    const init = spawnSync(bin, args, { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`initdb failed: ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' ')}`);
  }
  const port = opts.port ?? (await freeLoopbackPort());
  const [bin, args] = asPostgresUser(bins.postgres, ['-D', dataDir, '-p', String(port), '-k', dataDir, '-c', 'listen_addresses=127.0.0.1']);
  const child = launchWatched(bin, args, 'dev-postgres', { stderr: true });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`postgres exited during start-up: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
    if (await answers(url)) break;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`postgres on port ${port} did not answer within the start-up time: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    dataDir,
    pid() {
      try {
        return Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]) || undefined;
      } catch {
        return undefined;
      }
    },
    stop: () => stop(child),
  };
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Fast enough for PostgreSQL's smart shutdown once this process closed its pools; a stuck one is killed. */
function stop(child: ChildProcess): Promise<void> {
  return stopWatched(child, 15_000);
}
