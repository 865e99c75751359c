import type { ChainName } from '../chain.js';
import type { AuditHome, Item, Lane, LaneQuery } from '../lane.js';
import type { PgAuditStore } from './store.js';
import { KEPT_TABLES, matchesSql } from './search.js';
import { isPgOutage } from './outage.js';
import { StoreUnavailableError } from '../../redis/circuit-breaker.js';

/**
 * PostgreSQL as the trail's home for search and read (search.ts merges it with the Redis intake).
 * A search sees each chain only up to the shipper's watermark (`shipped`): what lies beyond is
 * read from Redis, so no entry is counted twice while the shipper works. Disclosures retention
 * kept after their month was dropped (audit.kept, retention.ts) are matched too, and read by id.
 * Matches come in the merge's order: trail time, chain in byte order (COLLATE "C", as JavaScript
 * compares), seq.
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
  // duplicate). Kept entries keep their (t, chain, seq): they merge into the same order. Each is
  // counted and paged on its own (a UNION ALL under one ORDER BY … LIMIT loses the index order and
  // sorts every match: 4× slower for a no-filter page at 300k entries).
  const live = (params: unknown[]): string => {
    const matches = matchesSql(search, params);
    params.push(bounds.map(([c]) => c), bounds.map(([, n]) => n));
    return `(${matches}) l JOIN unnest($${params.length - 1}::text[], $${params.length}::bigint[]) AS b(chain, hi) ON b.chain = l.chain AND l.seq <= b.hi`;
  };
  const kept = (params: unknown[]): string => `(${matchesSql(search, params, KEPT_TABLES)}) l`;
  const countParams: unknown[] = [];
  const { rows } = await store.pool.query<{ n: string }>(`SELECT (SELECT count(*) FROM ${live(countParams)}) + (SELECT count(*) FROM ${kept(countParams)}) AS n`, countParams);
  return {
    key: 'db',
    total: Number(rows[0]!.n),
    async items(from, to) {
      if (to <= from) return [];
      const params: unknown[] = [];
      const order = (a: string) => `${a}.t ${dir}, ${a}.chain COLLATE "C" ${dir}, ${a}.seq ${dir}`;
      const liveSql = live(params);
      const keptSql = kept(params);
      params.push(to, to - from, from);
      const [reach, count, offset] = [params.length - 2, params.length - 1, params.length];
      // Either part may hold every match of the page: each gives its first `to` in order.
      const sql = `WITH page AS MATERIALIZED (
          SELECT m.t, m.chain, m.seq FROM (
            (SELECT l.t, l.chain, l.seq FROM ${liveSql} ORDER BY ${order('l')} LIMIT $${reach})
            UNION ALL
            (SELECT l.t, l.chain, l.seq FROM ${keptSql} ORDER BY ${order('l')} LIMIT $${reach})
          ) m
          ORDER BY ${order('m')} LIMIT $${count} OFFSET $${offset}
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
