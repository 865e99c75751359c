import { randomUUID } from 'node:crypto';
import { redactUrl } from '../../../platform/ops/local-process.js';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import pg from 'pg';
import type { Config } from '../../../platform/config/schema.js';
import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import type { AuditHome } from '../lane.js';
import { pgHome } from './home.js';
import { AUDIT_SCHEMA, MIGRATIONS_DIR, migrateAuditDatabase } from './migrate.js';
import { isPgOutage } from './outage.js';
import { PgAuditStore } from './store.js';
import { postgresBinaries, startPostgres, type PostgresServer } from './dev-postgres.js';

/** Where development looks for a PostgreSQL when none is configured. */
export const DEV_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/smart_authz_dev';

const CONNECT_TIMEOUT_MS = 3000;

export class AuditDatabaseError extends Error {
  override name = 'AuditDatabaseError';
}

export interface AuditDatabase {
  store: PgAuditStore;
  home: AuditHome;
  /** Where migrations and retention connect (the schema owner). */
  ownerUrl: string;
  close(): Promise<void>;
}

/**
 * The trail's PostgreSQL home as configured (config audit.store / databaseUrl), or undefined when
 * the trail stays in Redis. Runs pending migrations when it knows the schema owner (development,
 * or AUTHZ_AUDIT_DATABASE_OWNER_URL); otherwise refuses to start on a schema that is not current,
 * naming the command that updates it. In development without configuration it uses a PostgreSQL
 * at DEV_DATABASE_URL when one answers (creating the database), else starts a private one when
 * the binaries are installed, and otherwise keeps the trail in Redis with a warning.
 */
/**
 * Where the trail's database is, as the application role (`url`) and as the schema owner
 * (`ownerUrl`: migrations, retention), with the application role's name when the two differ;
 * undefined when the trail stays in Redis.
 */
export function auditDatabaseUrls(config: Config): { url: string; ownerUrl: string; appRole?: string } | undefined {
  const { store, databaseUrl, databaseOwnerUrl } = config.audit;
  if (store === 'redis') return undefined;
  const url = databaseUrl ?? (config.mode === 'development' ? DEV_DATABASE_URL : undefined);
  if (!url)
    throw new AuditDatabaseError(
      'the audit trail is kept in PostgreSQL but no database is configured: set AUTHZ_AUDIT_DATABASE_URL (or AUTHZ_AUDIT_STORE=redis)',
    );
  const ownerUrl = databaseOwnerUrl ?? url;
  return ownerUrl === url ? { url, ownerUrl } : { url, ownerUrl, appRole: roleOf(url) };
}

export async function openAuditDatabase(config: Config, logger: Logger): Promise<AuditDatabase | undefined> {
  const { store, databaseUrl, databaseOwnerUrl } = config.audit;
  const where = auditDatabaseUrls(config);
  if (!where) return undefined;
  const { url, ownerUrl, appRole } = where;
  const development = config.mode === 'development';
  const optional = development && databaseUrl === undefined && store === undefined;
  try {
    if (development) await ensureDatabase(ownerUrl);
    if (development || databaseOwnerUrl) {
      const ran = await migrateAuditDatabase(ownerUrl, appRole ? { appRole } : {});
      if (ran.length) logger.info({ migrations: ran }, 'audit database schema updated');
    }
    await requireCurrentSchema(url);
  } catch (err) {
    if (optional && isPgOutage(err)) {
      const own = await privateDevDatabase(config, logger);
      if (own) return own;
      logger.warn(
        { url: redactUrl(url) },
        'no PostgreSQL answers: the audit trail stays in Redis (development). Start PostgreSQL or set AUTHZ_AUDIT_DATABASE_URL to keep it there',
      );
      return undefined;
    }
    if (err instanceof AuditDatabaseError) throw err;
    throw new AuditDatabaseError(`cannot use the audit database at ${redactUrl(url)}: ${(err as Error).message}`);
  }
  return open(url, ownerUrl, logger);
}

function open(url: string, ownerUrl: string, logger: Logger, server?: PostgresServer): AuditDatabase {
  const pgStore = new PgAuditStore(url);
  logger.info({ url: redactUrl(url) }, 'the audit trail is kept in PostgreSQL; Redis is its intake');
  return {
    store: pgStore,
    home: pgHome(pgStore),
    ownerUrl,
    async close() {
      await pgStore.close();
      await server?.stop();
    },
  };
}

/**
 * Development without a PostgreSQL: a private one under <dataDir>/postgres when the binaries are
 * installed (kept between runs, like the development Redis), else undefined.
 */
async function privateDevDatabase(config: Config, logger: Logger): Promise<AuditDatabase | undefined> {
  if (!postgresBinaries()) return undefined;
  let server: PostgresServer | undefined;
  try {
    server = await startPostgres({ dataDir: resolve(config.dataDir, 'postgres') });
    const u = new URL(server.url);
    u.pathname = `/${new URL(DEV_DATABASE_URL).pathname.slice(1)}`;
    const url = u.toString();
    await ensureDatabase(url);
    await migrateAuditDatabase(url);
    logger.warn(
      { port: server.port, dataDir: server.dataDir },
      'no PostgreSQL answered; started a private one for the audit trail (development mode)',
    );
    return open(url, url, logger, server);
  } catch (err) {
    await server?.stop();
    logger.warn({ err: { message: (err as Error).message } }, 'could not start a private PostgreSQL');
    return undefined;
  }
}

function roleOf(url: string): string {
  const name = decodeURIComponent(new URL(url).username);
  if (!name)
    throw new AuditDatabaseError(
      'AUTHZ_AUDIT_DATABASE_URL must name the application role (postgres://<role>@host/db) when an owner URL is set',
    );
  return name;
}

async function withClient<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Development: creates the database when the server answers but it does not exist yet. */
async function ensureDatabase(url: string): Promise<void> {
  try {
    await withClient(url, async () => undefined);
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
    const u = new URL(url);
    const name = decodeURIComponent(u.pathname.slice(1));
    u.pathname = '/postgres';
    await withClient(u.toString(), (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)).catch((e: unknown) => {
      // Another instance created it meanwhile.
      if ((e as { code?: string }).code !== '42P04') throw e;
    });
  }
}

/** The migrations in MIGRATIONS_DIR must all be applied (node-pg-migrate's table in the audit schema). */
async function requireCurrentSchema(url: string): Promise<void> {
  const expected = readdirSync(MIGRATIONS_DIR)
    .filter((f) => /\.(sql|js|cjs|mjs|ts)$/.test(f))
    .map((f) => f.replace(/\.[^.]+$/, ''));
  const applied = await withClient(url, async (c) => {
    try {
      return new Set((await c.query<{ name: string }>(`SELECT name FROM ${AUDIT_SCHEMA}.pgmigrations`)).rows.map((r) => r.name));
    } catch (err) {
      if ((err as { code?: string }).code === '42P01' || (err as { code?: string }).code === '3F000') return new Set<string>();
      throw err;
    }
  });
  const missing = expected.filter((name) => !applied.has(name));
  if (missing.length) {
    throw new AuditDatabaseError(
      `the audit database schema is not current (missing: ${missing.join(', ')}): run \`smart-authz audit db migrate\` with AUTHZ_AUDIT_DATABASE_OWNER_URL set`,
    );
  }
}

/**
 * Binds the database to the trail the Redis intake carries, or refuses: the first server to use
 * an empty database writes the intake's trail id there; any later server must carry the same id.
 * Two trails in one database would mix chains whose seqs collide (another deployment or key
 * prefix sharing the database, or a Redis that lost its data and began the trail anew).
 */
export async function bindTrail(db: AuditDatabase, redis: RedisClient, keyspace: Keyspace): Promise<string> {
  await redis.set(keyspace.auditTrailId(), randomUUID(), 'NX');
  const ours = (await redis.get(keyspace.auditTrailId()))!;
  await db.store.pool.query('INSERT INTO audit.trail_identity (id) VALUES ($1) ON CONFLICT DO NOTHING', [ours]);
  const { rows } = await db.store.pool.query<{ id: string }>('SELECT id FROM audit.trail_identity');
  const theirs = rows[0]?.id;
  if (theirs !== ours) {
    throw new AuditDatabaseError(
      `the audit database holds another trail (${theirs}) than this server's Redis (${ours}, key prefix ${JSON.stringify(keyspace.key(''))}): ` +
        'give each deployment (and each key prefix) its own database; if Redis lost its data, see docs/audit-postgres.md "Recovery"',
    );
  }
  return ours;
}
