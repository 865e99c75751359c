import type { ChainName } from '../chain.js';
import type { AuditHome, Item, Lane, LaneQuery } from '../lane.js';
import type { PgAuditStore } from './store.js';
import { KEPT_TABLES, matchesSql } from './search.js';
import { isPgOutage } from './outage.js';
import { StoreUnavailableError } from '../../../platform/redis/circuit-breaker.js';

/**
 * PostgreSQL as the trail's home for search and read (search.ts merges it with the Redis intake).
 * A search sees each chain only up to the shipper's watermark (`shipped`): what lies beyond is
 * read from Redis, so no entry is counted twice while the shipper works. Disclosures retention
 * kept after their month was dropped (audit.kept, retention.ts) are a lane of their own (long
 * shipped, and never also in audit.entries). Matches come in the merge's order: trail time, chain
 * in byte order (COLLATE "C", as JavaScript compares), seq.
 */
export function pgHome(store: PgAuditStore): AuditHome {
  return {
    eventsByIds: (ids) => unavailableAs503(store.eventsByIds(ids)),
    lanes: (q, shipped) => unavailableAs503(lanes(store, q, shipped)),
  };
}

/** A database that does not answer is an outage for the request (503 + Retry-After), like Redis. */
async function unavailableAs503<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isPgOutage(err)) throw new StoreUnavailableError(`the audit database is not answering (${(err as Error).message})`);
    throw err;
  }
}

async function lanes(store: PgAuditStore, q: LaneQuery, shipped: Partial<Record<ChainName, number>>): Promise<Lane[]> {
  if (q.clauses.some((c) => !c.values.length)) return [];
  // The window: asOf is the search's upper bound already folded into dateTo.
  const search = { clauses: q.clauses, count: 0, asOf: q.dateTo, ...(Number.isFinite(q.dateFrom) ? { dateFrom: q.dateFrom } : {}) };
  const bounds = Object.entries(shipped).filter((e): e is [ChainName, number] => (e[1] ?? 0) > 0);
  const live = (params: unknown[]): string => {
    const matches = matchesSql(search, params);
    params.push(
      bounds.map(([c]) => c),
      bounds.map(([, n]) => n),
    );
    return `(${matches}) m JOIN unnest($${params.length - 1}::text[], $${params.length}::bigint[]) AS b(chain, hi) ON b.chain = m.chain AND m.seq <= b.hi`;
  };
  const kept = (params: unknown[]): string => `(${matchesSql(search, params, KEPT_TABLES)}) m`;
  return Promise.all([...(bounds.length ? [sqlLane(store, live, 'audit.entries')] : []), sqlLane(store, kept, 'audit.kept')]);
}

/** The matches of one SQL source (aliased `m`: t, chain, seq) as a keyset lane; events read from `table`. */
async function sqlLane(store: PgAuditStore, source: (params: unknown[]) => string, table: string): Promise<Lane> {
  const countParams: unknown[] = [];
  const { rows } = await unavailableAs503(store.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${source(countParams)}`, countParams));
  return {
    total: Number(rows[0]!.n),
    async after(k, count, desc) {
      if (count <= 0) return [];
      const dir = desc ? 'DESC' : 'ASC';
      const params: unknown[] = [];
      const from = source(params);
      let where = '';
      if (k) {
        // Keyset: strictly after k in (t, chain, seq) order, chains compared byte by byte as in JavaScript.
        params.push(k.t, k.chain, k.seq);
        where = `WHERE (m.t, m.chain COLLATE "C", m.seq) ${desc ? '<' : '>'} (audit.ms_to_ts($${params.length - 2}::bigint), $${params.length - 1}::text COLLATE "C", $${params.length}::bigint)`;
      }
      params.push(count);
      const sql = `WITH page AS MATERIALIZED (
          SELECT m.t, m.chain, m.seq FROM ${from} ${where}
          ORDER BY m.t ${dir}, m.chain COLLATE "C" ${dir}, m.seq ${dir} LIMIT $${params.length}
        )
        SELECT audit.ts_to_ms(p.t) AS t, p.chain, p.seq, e.event FROM page p JOIN ${table} e ON e.t = p.t AND e.chain = p.chain AND e.seq = p.seq
        ORDER BY p.t ${dir}, p.chain COLLATE "C" ${dir}, p.seq ${dir}`;
      const page = await unavailableAs503(store.pool.query<{ t: string; chain: ChainName; seq: string; event: string }>(sql, params));
      return page.rows.map((r): Item => ({ chain: r.chain, seq: Number(r.seq), t: Number(r.t), event: r.event }));
    },
  };
}
