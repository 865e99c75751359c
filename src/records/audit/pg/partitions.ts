import type pg from 'pg';

/**
 * Month partitions. Both partitioned tables (entries, entry_values) have one partition per UTC
 * month of the trail time, created on demand by audit.ensure_partitions (which insert_entries calls
 * for the months its batch touches) and dropped only by retention (retention.ts: `smart-authz
 * audit purge`), as the owner role. There is no default partition: see the migration for why.
 */

/** The first instant (UTC) of the month of `at`. */
export function monthStart(at: Date | number): Date {
  const d = new Date(at);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

/** Creates the partitions for the months of these instants ahead of use (e.g. this month and next). */
export async function ensurePartitions(db: pg.Pool | pg.ClientBase, instants: Array<Date | number>): Promise<number> {
  if (!instants.length) return 0;
  const { rows } = await db.query<{ created: number }>('SELECT audit.ensure_partitions($1::timestamptz[]) AS created', [
    instants.map((i) => new Date(i).toISOString()),
  ]);
  return rows[0]!.created;
}

/** The partitions of the entries table, oldest first, with their month. */
export async function listPartitions(db: pg.Pool | pg.ClientBase): Promise<Array<{ name: string; month: string }>> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
      WHERE h.inhparent = 'audit.entries'::regclass ORDER BY c.relname`,
  );
  return rows.map((r) => ({ name: r.name, month: `${r.name.slice(-6, -2)}-${r.name.slice(-2)}` }));
}
