// One private redis-server for the whole suite unless REDIS_URL is given. Test files isolate
// themselves with their own key namespace, so they can share it.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.on('error', () => resolve(false));
  });
}

/**
 * Tests that keep the audit trail in PostgreSQL make a database of their own on the machine's
 * server (test/support/postgres.ts, PG_ADMIN_URL). Without one answering at the default, a private
 * server is started for the suite when initdb and postgres are installed (as the postgres user
 * when the suite runs as root: PostgreSQL refuses root).
 */
async function ensurePostgres() {
  const admin = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const { default: pg } = await import('pg');
  const answers = async (url) => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    c.on('error', () => {});
    try {
      await c.connect();
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  };
  if (await answers(admin)) return;
  const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  if (!has('initdb') || !has('postgres')) {
    console.warn(`no PostgreSQL answers at ${admin} and initdb/postgres are not installed: the PostgreSQL tests will fail`);
    return;
  }
  const root = process.getuid?.() === 0;
  const as = (cmd) =>
    root ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', ...cmd]] : [cmd[0], cmd.slice(1)];
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-suite-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o700 });
  if (root) spawnSync('chown', ['postgres:postgres', data]);
  const [initBin, initArgs] = as(['initdb', '-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-instructions']);
  const init = spawnSync(initBin, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb for the suite's PostgreSQL failed: ${init.stderr}`);
  const port = await freePort();
  const [bin, args] = as(['postgres', '-D', data, '-p', String(port), '-k', data, '-c', 'listen_addresses=127.0.0.1']);
  const proc = spawn(bin, args, { stdio: 'ignore' });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 20000;
  while (!(await answers(url))) {
    if (Date.now() > deadline) throw new Error('the suite PostgreSQL did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  globalThis.__SUITE_PG__ = { proc, dir };
  process.env.PG_ADMIN_URL = url;
}

export default async function globalSetup() {
  // The audit trail stays in Redis unless a test gives it a database of its own
  // (test/support/postgres.ts): a development server would otherwise use the machine's
  // PostgreSQL at the development default, shared by every test.
  process.env.AUTHZ_AUDIT_STORE ??= 'redis';
  await ensurePostgres();
  if (process.env.REDIS_URL) return;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-suite-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
    detached: false,
  });
  proc.on('error', (err) => {
    console.error(`cannot start redis-server: ${err.message}`);
  });
  const deadline = Date.now() + 10000;
  while (!(await ping(port))) {
    if (Date.now() > deadline) throw new Error('the test redis-server did not start (is redis-server installed?)');
    await new Promise((r) => setTimeout(r, 50));
  }
  globalThis.__SUITE_REDIS__ = { proc, dir };
  process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
  process.env.SUITE_OWNS_REDIS = '1';
}
