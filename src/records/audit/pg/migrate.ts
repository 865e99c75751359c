import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

/**
 * Schema of the PostgreSQL audit store (migrations/audit/*.sql, run by node-pg-migrate). The
 * migrations run as the role that is to own the schema (the "owner": it may add and drop
 * partitions); the application connects as another role, granted here only what appending and
 * reading need (docs/audit-postgres.md "Roles").
 */

export const AUDIT_SCHEMA = 'audit';
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../../migrations/audit', import.meta.url));

export interface MigrateOptions {
  /** The application's role: granted USAGE, SELECT, INSERT and the insert functions, nothing else. */
  appRole?: string;
  /** Where node-pg-migrate reports (default: silent). */
  log?: (message: string) => void;
}

/** Applies every pending migration as the connecting (owner) role; grants `appRole` its rights. */
export async function migrateAuditDatabase(ownerUrl: string, opts: MigrateOptions = {}): Promise<string[]> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    // The schema is the owner's: created here so that node-pg-migrate's table lives in it too.
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${AUDIT_SCHEMA}`);
    const ran = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      migrationsSchema: AUDIT_SCHEMA,
      schema: AUDIT_SCHEMA,
      checkOrder: true,
      // Several instances starting at once: one migrates, the others wait for it.
      advisoryLockMode: 'wait',
      log: opts.log ?? (() => {}),
      logger: { debug: () => {}, info: opts.log ?? (() => {}), warn: opts.log ?? (() => {}), error: opts.log ?? (() => {}) },
    });
    if (opts.appRole) await grantAuditWriter(client, opts.appRole);
    return ran.map((m) => m.name);
  } finally {
    await client.end();
  }
}

/**
 * The application role's rights: read and append, nothing that changes or removes a row
 * (no UPDATE, DELETE, TRUNCATE; the tables' triggers refuse UPDATE and DELETE from anyone).
 * Idempotent.
 */
export async function grantAuditWriter(client: pg.ClientBase, appRole: string): Promise<void> {
  const role = pg.escapeIdentifier(appRole);
  await client.query(`GRANT USAGE ON SCHEMA ${AUDIT_SCHEMA} TO ${role}`);
  await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${AUDIT_SCHEMA} FROM ${role}`);
  await client.query(
    `GRANT SELECT, INSERT ON ${AUDIT_SCHEMA}.entries, ${AUDIT_SCHEMA}.entry_values, ${AUDIT_SCHEMA}.checkpoints TO ${role}`,
  );
  await client.query(`GRANT SELECT ON ${AUDIT_SCHEMA}.retention_cuts TO ${role}`);
  // Disclosures retention kept past their month (pg/retention.ts): read, never written, by the application.
  await client.query(`GRANT SELECT ON ${AUDIT_SCHEMA}.kept, ${AUDIT_SCHEMA}.kept_values TO ${role}`);
  // So that the server can check at start-up that the schema is current (pg/connect.ts).
  await client.query(`GRANT SELECT ON ${AUDIT_SCHEMA}.pgmigrations TO ${role}`);
  await client.query(`GRANT SELECT, INSERT ON ${AUDIT_SCHEMA}.trail_identity TO ${role}`);
  await client.query(`GRANT EXECUTE ON FUNCTION ${AUDIT_SCHEMA}.ensure_partitions(timestamptz[]) TO ${role}`);
}
