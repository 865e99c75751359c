import type { AuditEvent } from './audit-event.js';
import type { ChainName } from './chain.js';
import type { IndexParam } from './indexes.js';

/*
 * The sources an AuditEvent search merges (search.ts): each chain's entries in Redis, and, when
 * the trail's home is PostgreSQL, everything it holds (pg/lane.ts). Each source lists its matches
 * in the search's order; the merge interleaves them by trail time.
 */

/** Where a match is in the search's total order: trail time (ms), chain, seq. */
export interface Key {
  t: number;
  chain: ChainName;
  seq: number;
}

/** One match: where it is, its trail time, and its stored form (canonical JSON or compact record; '' if dropped meanwhile). */
export interface Item {
  chain: ChainName;
  seq: number;
  t: number;
  event: string;
}

/** The matches of one source, in the search's order. */
export interface Lane {
  total: number;
  /**
   * Up to `count` matches right after `after` (from the first when undefined) in the order
   * (t, chain, seq), ascending or, with `desc`, descending.
   */
  after(after: Key | undefined, count: number, desc: boolean): Promise<Item[]>;
}

export interface Clause {
  param: IndexParam;
  /** Alternatives (a comma-separated parameter value): any of them matches. */
  values: string[];
}

/** What a home lane is asked: the clauses and the time window (ms, inclusive; infinite = open). */
export interface LaneQuery {
  clauses: Clause[];
  dateFrom: number;
  dateTo: number;
}

/**
 * Where the trail lives for good when Redis is only its intake (PostgreSQL: pg/home.ts). It holds
 * each chain up to the shipper's watermark, `shipped`; Redis holds the rest.
 */
export interface AuditHome {
  /** The matches of a search among the entries up to `shipped[chain]` of each chain (and whatever else the home keeps). */
  lanes(q: LaneQuery, shipped: Partial<Record<ChainName, number>>): Promise<Lane[]>;
  /** The events with these ids (unknown ids skipped). */
  eventsByIds(ids: string[]): Promise<AuditEvent[]>;
}
