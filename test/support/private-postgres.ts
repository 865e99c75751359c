import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../../src/records/audit/pg/dev-postgres.js';
import { migrateAuditDatabase } from '../../src/records/audit/pg/migrate.js';

/**
 * A PostgreSQL server of the test's own (not the machine's shared one), for tests that kill and
 * restart it: initdb into a temp dir, a free loopback port; an owner role and an application role
 * (append-only rights) and a migrated audit database.
 */
export interface PrivatePostgres {
  ownerUrl: string;
  appUrl: string;
  server(): PostgresServer;
  /** SIGKILLs the postmaster (its children follow). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data (crash recovery runs). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-pg-'));
  // PostgreSQL runs as its own user when the tests run as root: it must reach the data dir.
  chmodSync(dir, 0o755);
  let server = await startPostgres({ dataDir: join(dir, 'data') });
  const url = (role: string) => `postgres://${role}@127.0.0.1:${server.port}/audit`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('CREATE ROLE audit_owner LOGIN');
  await admin.query('CREATE ROLE audit_app LOGIN');
  await admin.query('CREATE DATABASE audit OWNER audit_owner');
  await admin.end();
  await migrateAuditDatabase(url('audit_owner'), { appRole: 'audit_app' });
  return {
    ownerUrl: url('audit_owner'),
    appUrl: url('audit_app'),
    server: () => server,
    async kill() {
      const pid = server.pid();
      if (pid) process.kill(pid, 'SIGKILL');
      await server.stop();
    },
    async restart() {
      server = await startPostgres({ dataDir: join(dir, 'data'), port: server.port });
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
