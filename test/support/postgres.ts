import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateAuditDatabase } from '../../src/records/audit/pg/migrate.js';

/**
 * A private database on the machine's PostgreSQL (PG_ADMIN_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres, trust auth) for one test file: a fresh database
 * with random name, owned by a fresh owner role, plus a fresh application role; the audit schema
 * migrated as the owner, the application role granted its append-only rights. `drop()` removes
 * all three. Nothing else on the server is touched.
 */

export const PG_ADMIN_URL = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface PgTestDatabase {
  database: string;
  ownerRole: string;
  appRole: string;
  /** Connects as the owner (migrations, retention). */
  ownerUrl: string;
  /** Connects as the application role (INSERT and SELECT only). */
  appUrl: string;
  drop(): Promise<void>;
}

function urlFor(role: string, database: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.username = role;
  u.password = '';
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

export async function createPgTestDatabase(opts: { migrate?: boolean } = {}): Promise<PgTestDatabase> {
  const tag = randomBytes(5).toString('hex');
  const database = `authz_audit_test_${tag}`;
  const ownerRole = `authz_audit_owner_${tag}`;
  const appRole = `authz_audit_app_${tag}`;
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${ownerRole} LOGIN`);
    await c.query(`CREATE ROLE ${appRole} LOGIN`);
    await c.query(`CREATE DATABASE ${database} OWNER ${ownerRole}`);
  });
  const db: PgTestDatabase = {
    database,
    ownerRole,
    appRole,
    ownerUrl: urlFor(ownerRole, database),
    appUrl: urlFor(appRole, database),
    async drop() {
      await admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        await c.query(`DROP ROLE IF EXISTS ${appRole}`);
        await c.query(`DROP ROLE IF EXISTS ${ownerRole}`);
      });
    },
  };
  if (opts.migrate !== false) {
    try {
      await migrateAuditDatabase(db.ownerUrl, { appRole });
    } catch (err) {
      await db.drop();
      throw err;
    }
  }
  return db;
}

/** Runs `work` on a connection as the role of `url` (its rights, not the superuser's). */
export async function asRole<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

/** Changes rows of a test database as a superuser with triggers off: what an attacker with database access could do. */
export async function tamper(db: PgTestDatabase, sql: string, params: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db.database}`) });
  await c.connect();
  try {
    await c.query('SET session_replication_role = replica');
    await c.query(sql, params);
  } finally {
    await c.end();
  }
}
