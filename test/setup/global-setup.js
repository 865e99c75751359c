// One private redis-server for the whole suite unless REDIS_URL is given. Test files isolate
// themselves with their own key namespace, so they can share it.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
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
    sock.on('data', (d) => { sock.destroy(); resolve(d.toString().startsWith('+PONG')); });
    sock.on('error', () => resolve(false));
  });
}

export default async function globalSetup() {
  // The audit trail stays in Redis unless a test gives it a database of its own
  // (test/support/postgres.ts): a development server would otherwise use the machine's
  // PostgreSQL at the development default, shared by every test.
  process.env.AUTHZ_AUDIT_STORE ??= 'redis';
  if (process.env.REDIS_URL) return;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-suite-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore', detached: false });
  proc.on('error', (err) => { console.error(`cannot start redis-server: ${err.message}`); });
  const deadline = Date.now() + 10000;
  while (!(await ping(port))) {
    if (Date.now() > deadline) throw new Error('the test redis-server did not start (is redis-server installed?)');
    await new Promise((r) => setTimeout(r, 50));
  }
  globalThis.__SUITE_REDIS__ = { proc, dir };
  process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
  process.env.SUITE_OWNS_REDIS = '1';
}
