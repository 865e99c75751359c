import pg from 'pg';
import type { AuditEvent } from '../audit-event.js';
import type { ChainEntry } from '../chain.js';
import { decodeStored } from '../stored-event.js';
import { termsOf } from './terms.js';
import type { AuditSearch, SearchResult } from '../search.js';
import { searchPg } from './search.js';

/**
 * The PostgreSQL audit store (docs/audit-postgres.md): what the shipper writes chain entries and
 * checkpoints into, and what search, read and verify read. Connects as the application role,
 * which may only INSERT and SELECT.
 */

/** A chain entry as PostgreSQL keeps it: a ChainEntry without the Redis stream id, any chain name. */
export type PgEntry = Omit<ChainEntry, 'sid' | 'chain'> & { chain: string };

export interface PgCheckpoint {
  chain: string;
  seq: number;
  /** Hex, as signed. */
  hash: string;
  iat: number;
  reason: string;
  jws: string;
}

/** SQLSTATEs raised by the schema's functions (migrations/audit). */
export const AUDIT_SQLSTATE = {
  /** An entry's hash is not sha256(seq, prev, event). */
  hashMismatch: 'AU001',
  /** A different entry is already stored at that (chain, seq). */
  conflict: 'AU002',
  /** An entry does not link to its neighbours (prev hash or trail time). */
  brokenLink: 'AU003',
  /** An entry's month is before the retention floor. */
  beforeRetention: 'AU004',
  /** UPDATE or DELETE of a trail row. */
  appendOnly: 'AU005',
} as const;

/** The store refused an entry: not a transient failure, never to be retried as is. */
export class AuditIntegrityError extends Error {
  override name = 'AuditIntegrityError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function integrity(err: unknown): never {
  const code = (err as { code?: string }).code;
  if (code && Object.values(AUDIT_SQLSTATE).includes(code as never)) throw new AuditIntegrityError((err as Error).message, code);
  throw err;
}

interface EntryRow {
  chain: string;
  seq: string;
  prev: Buffer;
  hash: Buffer;
  id: string;
  event: string;
  t: string;
}

export const ENTRY_COLUMNS = 'chain, seq, prev, hash, id, event, audit.ts_to_ms(t) AS t';

export function entryOf(r: EntryRow): PgEntry {
  return {
    chain: r.chain,
    seq: Number(r.seq),
    prev: r.prev.toString('hex'),
    hash: r.hash.toString('hex'),
    id: r.id,
    event: r.event,
    t: Number(r.t),
  };
}

function payloadOf(jws: string): Partial<PgCheckpoint> {
  try {
    return JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Partial<PgCheckpoint>;
  } catch {
    return {};
  }
}

export interface PgAuditStoreOptions {
  /** Pool size (default 4). */
  max?: number;
  /** Per-statement bound in ms (default 30 s): a runaway search is cancelled, not left running. */
  statementTimeoutMs?: number;
}

export class PgAuditStore {
  readonly pool: pg.Pool;

  constructor(url: string, opts: PgAuditStoreOptions = {}) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 4,
      statement_timeout: opts.statementTimeoutMs ?? 30_000,
      application_name: 'smart-authz-audit',
    });
    // An idle client's error (PostgreSQL restarted) must not crash the process; the next query reports it.
    this.pool.on('error', () => {});
  }

  /**
   * Appends entries (any chains, any order) in one round trip and one transaction. Returns how many
   * were new: an entry already there identically is skipped. Throws AuditIntegrityError when an
   * entry conflicts with a stored one at the same (chain, seq), does not match its hash, or breaks
   * the links to its stored neighbours.
   */
  async insert(entries: PgEntry[]): Promise<number> {
    if (!entries.length) return 0;
    const termEntry: number[] = [];
    const terms: string[] = [];
    entries.forEach((e, i) => {
      for (const term of termsOf(e.event)) {
        termEntry.push(i + 1);
        terms.push(term);
      }
    });
    try {
      const { rows } = await this.pool.query<{ n: number }>(
        'SELECT audit.insert_entries($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::int[], $9::text[]) AS n',
        [
          entries.map((e) => e.chain),
          entries.map((e) => e.seq),
          entries.map((e) => e.prev),
          entries.map((e) => e.hash),
          entries.map((e) => e.id),
          entries.map((e) => e.event),
          entries.map((e) => e.t),
          termEntry,
          terms,
        ],
      );
      return rows[0]!.n;
    } catch (err) {
      integrity(err);
    }
  }

  /**
   * The highest seq of a chain stored here (0 if none): where shipping resumes. A chain whose
   * every entry retention dropped (an idle shard) ends at its retention cut, not at 0.
   */
  async highestSeq(chain: string): Promise<number> {
    const { rows } = await this.pool.query<{ seq: string | null }>(
      'SELECT greatest((SELECT max(seq) FROM audit.entries WHERE chain = $1), (SELECT max(seq) FROM audit.retention_cuts WHERE chain = $1)) AS seq',
      [chain],
    );
    return Number(rows[0]!.seq ?? 0);
  }

  /** Up to `count` entries of a chain in seq order, after `afterSeq` (keyset paging, for verify and export). */
  async entries(chain: string, afterSeq: number, count: number): Promise<PgEntry[]> {
    const { rows } = await this.pool.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM audit.entries WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [chain, afterSeq, count],
    );
    return rows.map(entryOf);
  }

  /** Up to `count` kept disclosures of a chain (audit.kept, retention) in seq order, after `afterSeq`. */
  async kept(chain: string, afterSeq: number, count: number): Promise<PgEntry[]> {
    const { rows } = await this.pool.query<EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM audit.kept WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [chain, afterSeq, count],
    );
    return rows.map(entryOf);
  }

  /** The chains that have entries or checkpoints here. */
  async chains(): Promise<string[]> {
    // A loose index scan over the primary key: one probe per chain, not one row per entry.
    const { rows } = await this.pool.query<{ chain: string }>(
      `WITH RECURSIVE c AS (
         SELECT min(chain) AS chain FROM audit.entries
         UNION ALL
         SELECT (SELECT min(chain) FROM audit.entries WHERE chain > c.chain) FROM c WHERE c.chain IS NOT NULL
       )
       SELECT chain FROM c WHERE chain IS NOT NULL UNION SELECT DISTINCT chain FROM audit.checkpoints ORDER BY 1`,
    );
    return rows.map((r) => r.chain);
  }

  /**
   * The events with these ids, in the given order (unknown ids skipped; an archived copy wins),
   * disclosures retention kept included.
   */
  async eventsByIds(ids: string[]): Promise<AuditEvent[]> {
    if (!ids.length) return [];
    const { rows } = await this.pool.query<{ id: string; event: string }>(
      `SELECT DISTINCT ON (id) id, event FROM (
         SELECT id, event, chain, seq, t FROM audit.entries WHERE id = ANY ($1::text[])
         UNION ALL
         SELECT id, event, chain, seq, t FROM audit.kept WHERE id = ANY ($1::text[])
       ) e ORDER BY id, (chain = 'archive') DESC, t DESC, chain, seq`,
      [ids],
    );
    const byId = new Map(rows.map((r) => [r.id, r.event]));
    const out: AuditEvent[] = [];
    for (const id of ids) {
      const text = byId.get(id);
      if (text !== undefined) out.push(decodeStored(text));
    }
    return out;
  }

  /** AuditEvent search with the semantics and result of src/records/audit/search.ts, over every chain. */
  search(q: AuditSearch): Promise<SearchResult> {
    return searchPg(this.pool, q);
  }

  /** Stores a signed checkpoint (idempotent). Its fields are read unverified: verify checks the signature. */
  async insertCheckpoint(jws: string): Promise<boolean> {
    const p = payloadOf(jws);
    if (
      typeof p.chain !== 'string' ||
      !Number.isInteger(p.seq) ||
      typeof p.hash !== 'string' ||
      !/^[0-9a-f]{64}$/.test(p.hash) ||
      !Number.isInteger(p.iat)
    ) {
      throw new AuditIntegrityError('not an audit checkpoint (compact JWS with chain, seq, hash, iat)', 'AU000');
    }
    const { rowCount } = await this.pool.query(
      `INSERT INTO audit.checkpoints (chain, seq, hash, iat, reason, jws) VALUES ($1, $2, decode($3, 'hex'), $4, $5, $6) ON CONFLICT DO NOTHING`,
      [p.chain, p.seq, p.hash, p.iat, typeof p.reason === 'string' ? p.reason : '', jws],
    );
    return rowCount === 1;
  }

  /** A chain's checkpoints, by seq then signing time. */
  async checkpoints(chain: string): Promise<PgCheckpoint[]> {
    const { rows } = await this.pool.query<{ chain: string; seq: string; hash: Buffer; iat: string; reason: string; jws: string }>(
      'SELECT chain, seq, hash, iat, reason, jws FROM audit.checkpoints WHERE chain = $1 ORDER BY seq, iat, jws',
      [chain],
    );
    return rows.map((r) => ({
      chain: r.chain,
      seq: Number(r.seq),
      hash: r.hash.toString('hex'),
      iat: Number(r.iat),
      reason: r.reason,
      jws: r.jws,
    }));
  }

  /** Where retention cut each chain (the last entry dropped), if it did. */
  async retentionCuts(): Promise<Map<string, { seq: number; hash: string }>> {
    const { rows } = await this.pool.query<{ chain: string; seq: string; hash: Buffer }>(
      'SELECT DISTINCT ON (chain) chain, seq, hash FROM audit.retention_cuts ORDER BY chain, seq DESC',
    );
    return new Map(rows.map((r) => [r.chain, { seq: Number(r.seq), hash: r.hash.toString('hex') }]));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
