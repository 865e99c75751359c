import type pg from 'pg';
import type { AuditEvent } from '../audit-event.js';
import type { IndexParam } from '../indexes.js';
import type { AuditSearch, SearchResult } from '../search.js';
import { decodeStored } from '../stored-event.js';
import { encodeTerm } from './terms.js';

/**
 * AuditEvent search in PostgreSQL, with the semantics of src/records/audit/search.ts: each clause's values
 * are OR-ed, clauses are AND-ed, dateFrom/dateTo bound the trail time (inclusive, whole ms), `asOf`
 * is the upper time bound fixed by the first page, and the order is (t, chain, seq), newest first
 * unless sort is `date`. Every chain is searched together (main, main-<n>, archive).
 *
 * A clause is the entry_values rows of its terms (`param=value`) in the time window; the first
 * clause of the most selective kind drives; each further clause is an index probe on
 * (term, t, chain, seq) per driver row behind a patient, else a semi-join PostgreSQL plans. Without clauses the entries table itself is the match set.
 * The total is counted in a second query on another connection, in parallel with the page.
 *
 * Unlike the Redis search there is no candidate limit: the pool's statement timeout bounds a
 * search instead.
 */

/** Which clause drives (most selective kind first); the others are probed per driver row. */
const SELECTIVITY: IndexParam[] = ['patient', 'disclosure', 'altid', 'entity', 'agent', 'subtype', 'type', 'outcome', 'action'];

/** Drivers with few matches per value, behind which probing is always cheap. */
const SMALL = new Set<IndexParam>(['patient', 'disclosure', 'altid']);

/** Where matches are looked for: the trail, or the disclosures retention kept (audit.kept, pg/retention.ts). */
export interface MatchTables {
  entries: string;
  values: string;
}

export const TRAIL_TABLES: MatchTables = { entries: 'audit.entries', values: 'audit.entry_values' };
export const KEPT_TABLES: MatchTables = { entries: 'audit.kept', values: 'audit.kept_values' };

export function matchesSql(q: AuditSearch, params: unknown[], tables: MatchTables = TRAIL_TABLES): string {
  const asOf = q.asOf ?? Date.now() + 1;
  const to = Math.floor(Math.min(asOf, q.dateTo ?? Infinity));
  const from = q.dateFrom === undefined || !Number.isFinite(q.dateFrom) ? undefined : Math.floor(q.dateFrom);
  params.push(to);
  const toIndex = params.length;
  let fromIndex = 0;
  if (from !== undefined) {
    params.push(from);
    fromIndex = params.length;
  }
  const window = (alias: string) =>
    `${alias}.t <= audit.ms_to_ts($${toIndex}::bigint)${from === undefined ? '' : ` AND ${alias}.t >= audit.ms_to_ts($${fromIndex}::bigint)`}`;
  if (!q.clauses.length) return `SELECT e.t, e.chain, e.seq FROM ${tables.entries} e WHERE ${window('e')}`;
  const termsParam = (values: string[], param: string) => {
    params.push(values.map((v) => encodeTerm(param, v)));
    return `$${params.length}::text[]`;
  };
  const exists: string[] = [];
  const [driver, ...rest] = [...q.clauses].sort((a, b) => SELECTIVITY.indexOf(a.param) - SELECTIVITY.indexOf(b.param));
  // One entry may carry several of a clause's values (a bare code and system|code): DISTINCT then.
  let sql = `SELECT ${driver!.values.length > 1 ? 'DISTINCT ' : ''}v0.t, v0.chain, v0.seq FROM ${tables.values} v0`;
  // Behind a patient (tens to thousands of entries) each further clause is probed per driver row
  // through the index: LATERAL … LIMIT 1 keeps it a probe, where as a plain EXISTS the planner
  // hashes every row of a clause of many values (a bare code is seven). Behind a larger driver
  // (an agent, a code) the planner chooses: probes or a hash of the other clause.
  const probe = SMALL.has(driver!.param);
  rest.forEach((clause, i) => {
    const a = `v${i + 1}`;
    const match = `${a}.term = ANY (${termsParam(clause.values, clause.param)}) AND ${a}.t = v0.t AND ${a}.chain = v0.chain AND ${a}.seq = v0.seq`;
    if (probe) sql += ` CROSS JOIN LATERAL (SELECT 1 FROM ${tables.values} ${a} WHERE ${match} LIMIT 1) AS p${i + 1}`;
    else exists.push(`EXISTS (SELECT 1 FROM ${tables.values} ${a} WHERE ${match})`);
  });
  sql += ` WHERE v0.term = ANY (${termsParam(driver!.values, driver!.param)}) AND ${window('v0')}${exists.map((e) => ` AND ${e}`).join('')}`;
  return sql;
}

export async function searchPg(pool: pg.Pool, q: AuditSearch): Promise<SearchResult> {
  const asOf = q.asOf ?? Date.now() + 1;
  const query = { ...q, asOf };
  // A clause without values matches nothing (as an empty posting list does in Redis).
  if (q.clauses.some((c) => !c.values.length)) return { total: 0, events: [], asOf };
  const countParams: unknown[] = [];
  const countSql = `SELECT count(*) AS n FROM (${matchesSql(query, countParams)}) m`;
  const pageParams: unknown[] = [];
  const dir = q.sort === 'date' ? 'ASC' : 'DESC';
  const matches = matchesSql(query, pageParams);
  pageParams.push(q.count, q.offset ?? 0);
  const pageSql = `WITH page AS MATERIALIZED (
      SELECT t, chain, seq FROM (${matches}) m ORDER BY t ${dir}, chain ${dir}, seq ${dir} LIMIT $${pageParams.length - 1} OFFSET $${pageParams.length}
    )
    SELECT e.event FROM page p JOIN audit.entries e ON e.t = p.t AND e.chain = p.chain AND e.seq = p.seq
    ORDER BY p.t ${dir}, p.chain ${dir}, p.seq ${dir}`;
  const [counted, page] = await Promise.all([
    pool.query<{ n: string }>(countSql, countParams),
    q.count > 0 ? pool.query<{ event: string }>(pageSql, pageParams) : Promise.resolve({ rows: [] as Array<{ event: string }> }),
  ]);
  const events: AuditEvent[] = page.rows.map((r) => decodeStored(r.event));
  return { total: Number(counted.rows[0]!.n), events, asOf };
}
