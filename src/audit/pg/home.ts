import type { ChainName } from '../chain.js';
import type { AuditHome, Item, Lane, LaneQuery } from '../lane.js';
import type { PgAuditStore } from './store.js';
import { KEPT_TABLES, matchesSql } from './search.js';
import { isPgOutage } from './outage.js';
import { StoreUnavailableError } from '../../redis/circuit-breaker.js';

/**
 * PostgreSQL as the trail's home for search and read (search.ts merges it with the Redis intake).
 * A search sees each chain only up to the shipper's watermark (`shipped`): what lies beyond is
 * read from Redis, so no entry is counted twice while the shipper works. Matches come in the
 * merge's order: trail time, chain in byte order (COLLATE "C", as JavaScript compares), seq.
 */
export function pgHome(store: PgAuditStore): AuditHome {
  return {
    eventsByIds: (ids) => unavailableAs503(store.eventsByIds(ids)),
    lane: (q, shipped, desc) => unavailableAs503(lane(store, q, shipped, desc)),
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

async function lane(store: PgAuditStore, q: LaneQuery, shipped: Partial<Record<ChainName, number>>, desc: boolean): Promise<Lane> {
  const bounds = Object.entries(shipped).filter((e): e is [ChainName, number] => (e[1] ?? 0) > 0);
  if (!bounds.length || q.clauses.some((c) => !c.values.length)) return { key: 'db', total: 0, items: () => Promise.resolve([]) };
  const dir = desc ? 'DESC' : 'ASC';
  // The window: asOf is the search's upper bound already folded into dateTo.
  const search = { clauses: q.clauses, count: 0, asOf: q.dateTo, ...(Number.isFinite(q.dateFrom) ? { dateFrom: q.dateFrom } : {}) };
  // The trail up to the shipper's watermark, and the disclosures retention kept after their month
  // was dropped (audit.kept: long shipped, and never also in audit.entries, so no bound and no
  // duplicate). Kept entries keep their (t, chain, seq): they merge into the same order.
  const within = (params: unknown[]): string => {
    const live = matchesSql(search, params);
    params.push(bounds.map(([c]) => c), bounds.map(([, n]) => n));
    const bound = `unnest($${params.length - 1}::text[], $${params.length}::bigint[]) AS b(chain, hi)`;
    const kept = matchesSql(search, params, KEPT_TABLES);
    return `(SELECT l.t, l.chain, l.seq FROM (${live}) l JOIN ${bound} ON b.chain = l.chain AND l.seq <= b.hi UNION ALL ${kept}) m`;
  };
  const countParams: unknown[] = [];
  const { rows } = await store.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${within(countParams)}`, countParams);
  return {
    key: 'db',
    total: Number(rows[0]!.n),
    async items(from, to) {
      if (to <= from) return [];
      const params: unknown[] = [];
      const source = within(params);
      params.push(to - from, from);
      const sql = `WITH page AS MATERIALIZED (
          SELECT m.t, m.chain, m.seq FROM ${source}
          ORDER BY m.t ${dir}, m.chain COLLATE "C" ${dir}, m.seq ${dir} LIMIT $${params.length - 1} OFFSET $${params.length}
        )
        SELECT audit.ts_to_ms(p.t) AS t, p.chain, p.seq, e.event FROM page p
          CROSS JOIN LATERAL (
            SELECT x.event FROM audit.entries x WHERE x.t = p.t AND x.chain = p.chain AND x.seq = p.seq
            UNION ALL
            SELECT k.event FROM audit.kept k WHERE k.t = p.t AND k.chain = p.chain AND k.seq = p.seq
            LIMIT 1
          ) e
        ORDER BY p.t ${dir}, p.chain COLLATE "C" ${dir}, p.seq ${dir}`;
      const page = await unavailableAs503(store.pool.query<{ t: string; chain: ChainName; seq: string; event: string }>(sql, params));
      return page.rows.map((r): Item => ({ chain: r.chain, seq: Number(r.seq), t: Number(r.t), event: r.event }));
    },
  };
}
