import type { JWK } from 'jose';
import { GENESIS_HASH, entryHash } from '../chain.js';
import { CheckpointError, verifyCheckpoint, type CheckpointKeys } from '../checkpoints.js';
import type { PgAuditStore, PgCheckpoint, PgEntry } from './store.js';

/**
 * Verifies the chains stored in PostgreSQL, each walked in seq order in keyset pages (never
 * loaded whole): seq contiguity from the genesis (or from retention's recorded cut), every hash
 * re-computed from what is stored, every prev link, trail time (never back along the chain, and
 * the later of `recorded` and the entry before's), and each stored checkpoint's (seq, hash)
 * against the entry at that seq; a checkpoint beyond the last entry means entries are missing
 * from the end. With keys, each checkpoint's signature is checked too. With `every`, a signed
 * checkpoint is required at each multiple of it (audit.checkpointEvery), as in src/audit/verify.ts.
 * Reports the first bad position per chain.
 */

export type PgProblemKind = 'altered' | 'removed' | 'reordered' | 'checkpoint';

export interface PgVerifyProblem {
  kind: PgProblemKind;
  chain: string;
  /** The first affected seq. */
  seq: number;
  message: string;
}

export interface PgVerifyReport {
  chain: string;
  ok: boolean;
  /** Entries checked. */
  entries: number;
  /** seq verification started after (0 = genesis; else retention's cut). */
  startSeq: number;
  lastSeq: number;
  checkpoints: number;
  problem?: PgVerifyProblem;
}

export interface PgVerifyOptions {
  /** Keys to check checkpoint signatures with; without them only (seq, hash) are compared. */
  keys?: CheckpointKeys | JWK[];
  /** Require a checkpoint at every multiple of this seq. */
  every?: number;
  /** Only these chains (default: every chain with entries or checkpoints). */
  chains?: string[];
  /** Entries per page (default 1000). */
  page?: number;
}

function recordedOf(event: string): number {
  try {
    return Date.parse((JSON.parse(event) as { recorded?: string }).recorded ?? '');
  } catch {
    return Number.NaN;
  }
}

export async function verifyChains(store: PgAuditStore, opts: PgVerifyOptions = {}): Promise<PgVerifyReport[]> {
  const jwks = opts.keys === undefined ? undefined : Array.isArray(opts.keys) ? opts.keys : await opts.keys.verificationKeys();
  const cuts = await store.retentionCuts();
  const out: PgVerifyReport[] = [];
  for (const chain of opts.chains ?? (await store.chains())) {
    out.push(await verifyOne(store, chain, cuts.get(chain), jwks, opts));
  }
  return out;
}

async function verifyOne(store: PgAuditStore, chain: string, cut: { seq: number; hash: string } | undefined, jwks: JWK[] | undefined, opts: PgVerifyOptions): Promise<PgVerifyReport> {
  const startSeq = cut?.seq ?? 0;
  let entries = 0;
  let lastSeq = startSeq;
  const all = await store.checkpoints(chain);
  // Checkpoints at or before retention's cut signed entries that are gone.
  const checkpoints = all.filter((c) => c.seq > startSeq);
  const report = (problem?: PgVerifyProblem): PgVerifyReport => ({ chain, ok: !problem, entries, startSeq, lastSeq, checkpoints: checkpoints.length, ...(problem ? { problem } : {}) });

  const bySeq = new Map<number, PgCheckpoint[]>();
  for (const c of checkpoints) {
    if (jwks) {
      try {
        const payload = await verifyCheckpoint(c.jws, jwks);
        if (payload.chain !== chain || payload.seq !== c.seq || payload.hash !== c.hash) throw new CheckpointError(`is stored as seq ${c.seq} of ${chain} but signs seq ${payload.seq} of ${payload.chain}`);
      } catch (err) {
        return report({ kind: 'checkpoint', chain, seq: c.seq, message: `checkpoint at seq ${c.seq} ${(err as Error).message}` });
      }
    }
    const same = bySeq.get(c.seq) ?? [];
    if (same.some((s) => s.hash !== c.hash)) return report({ kind: 'checkpoint', chain, seq: c.seq, message: `two checkpoints disagree about the hash at seq ${c.seq}` });
    bySeq.set(c.seq, [...same, c]);
  }

  let expectedSeq = startSeq + 1;
  let prevHash = cut?.hash ?? GENESIS_HASH;
  let previous: PgEntry | undefined;
  const page = opts.page ?? 1000;
  for (let after = startSeq; ; ) {
    const batch = await store.entries(chain, after, page);
    for (const e of batch) {
      entries++;
      if (e.seq !== expectedSeq) {
        // Pages are in seq order, so a higher seq means the ones between are not stored.
        return report({ kind: 'removed', chain, seq: expectedSeq, message: `entries seq ${expectedSeq}${e.seq - 1 > expectedSeq ? `–${e.seq - 1}` : ''} are missing (next present: seq ${e.seq})` });
      }
      if (entryHash(e.seq, e.prev, e.event) !== e.hash) return report({ kind: 'altered', chain, seq: e.seq, message: `entry seq ${e.seq} does not match its hash` });
      if (e.prev !== prevHash) {
        const message = previous ? `entry seq ${previous.seq} was rewritten: its hash is not the one entry seq ${e.seq} links to` : `entry seq ${e.seq} does not link to ${cut ? `retention's cut at seq ${cut.seq}` : 'the genesis'}`;
        return report({ kind: 'altered', chain, seq: previous?.seq ?? e.seq, message });
      }
      const recorded = recordedOf(e.event);
      const expectedT = previous ? Math.max(recorded, previous.t) : undefined;
      if (!(e.t >= recorded) || (expectedT !== undefined && e.t !== expectedT)) {
        return report({ kind: 'altered', chain, seq: e.seq, message: `entry seq ${e.seq} has trail time ${e.t} where ${expectedT ?? `at least ${recorded}`} was written: its place in date searches was changed` });
      }
      const signed = bySeq.get(e.seq)?.[0];
      if (signed && signed.hash !== e.hash) {
        return report({ kind: 'altered', chain, seq: e.seq, message: `entry seq ${e.seq} or one before it was rewritten: its hash differs from the checkpoint's` });
      }
      prevHash = e.hash;
      lastSeq = e.seq;
      expectedSeq = e.seq + 1;
      previous = e;
    }
    if (batch.length < page) break;
    after = batch[batch.length - 1]!.seq;
  }
  const lastCheckpoint = checkpoints.reduce((m, c) => Math.max(m, c.seq), 0);
  if (lastSeq < lastCheckpoint) {
    return report({ kind: 'removed', chain, seq: lastSeq + 1, message: `entries seq ${lastSeq + 1}–${lastCheckpoint} are missing from the end of the chain (a checkpoint signs seq ${lastCheckpoint})` });
  }
  if (opts.every) {
    for (let seq = (Math.floor(startSeq / opts.every) + 1) * opts.every; seq <= lastSeq; seq += opts.every) {
      if (!bySeq.has(seq)) return report({ kind: 'checkpoint', chain, seq, message: `no checkpoint at seq ${seq}, where one is required every ${opts.every} entries` });
    }
  }
  return report();
}
