import pg from 'pg';

/**
 * Month partitions. Both partitioned tables (entries, entry_values) have one partition per UTC
 * month of the trail time, created on demand by audit.ensure_partitions (which insert_entries calls
 * for the months its batch touches) and dropped only by retention, as the owner role. There is no
 * default partition: see the migration for why.
 */

/** The first instant (UTC) of the month of `at`. */
export function monthStart(at: Date | number): Date {
  const d = new Date(at);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

/** Creates the partitions for the months of these instants ahead of use (e.g. this month and next). */
export async function ensurePartitions(db: pg.Pool | pg.ClientBase, instants: Array<Date | number>): Promise<number> {
  if (!instants.length) return 0;
  const { rows } = await db.query<{ created: number }>('SELECT audit.ensure_partitions($1::timestamptz[]) AS created', [instants.map((i) => new Date(i).toISOString())]);
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

/**
 * Retention, the documented maintenance operation: drops every month partition wholly before
 * `month` (the first instant of a UTC month, e.g. `new Date('2020-07-01T00:00:00Z')`), after
 * recording each chain's cut so verify starts the chain after it, and raises the floor below
 * which no entry can be written again. Must connect as the owner role: the application role may
 * not drop anything. Returns the dropped partitions' names.
 *
 * Everything in those months goes, whatever chain: run it with the longest retention that applies
 * (disclosures: audit.disclosureRetentionDays).
 */
export async function dropPartitionsBefore(ownerUrl: string, month: Date): Promise<string[]> {
  if (monthStart(month).getTime() !== month.getTime()) throw new RangeError(`retention drops whole months: ${month.toISOString()} is not the first instant of a UTC month`);
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ name: string }>('SELECT audit.drop_partitions_before($1::timestamptz) AS name', [month.toISOString()]);
    await client.query('COMMIT');
    return rows.map((r) => r.name);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}
