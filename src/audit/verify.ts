import type { JWK } from 'jose';
import { GENESIS_HASH, entryHash, type ChainEntry, type ChainName } from './chain.js';
import { CheckpointError, verifyCheckpoint, type CheckpointKeys, type CheckpointPayload } from './checkpoints.js';
import type { AuditStore } from './store.js';
import { streamId } from './postings.js';

/**
 * Walks a chain and reports the first entry that was altered, removed or reordered.
 *
 * Where it starts: at the genesis when the first entry is seq 1, otherwise at the oldest signed
 * checkpoint (a purge leaves one at its cut, and removes the checkpoints before it). Entries are
 * then checked one by one, in stream order:
 *  - seq must be the previous seq + 1. A lower seq means an entry was moved (reordered); a higher
 *    one means entries are missing (removed), unless the missing seq turns up further on, which
 *    again means reordered;
 *  - the stored hash must be sha256(seq, prev, event) (else the entry was altered);
 *  - prev must equal the previous entry's hash: when it does not while both entries are
 *    self-consistent, the previous entry was rewritten with a recomputed hash (altered);
 *  - the stream id must be `<seq>-0` and the trail time `t` the later of `recorded` and the
 *    previous entry's `t`: search relies on both and neither is under the hash;
 *  - at every signed checkpoint, the entry's hash must equal the signed one: a rewrite that
 *    recomputed every later hash is caught here;
 *  - at the end, the chain must reach the head in Redis and every checkpoint.
 */

export type ProblemKind = 'altered' | 'removed' | 'reordered' | 'checkpoint';

export interface VerifyProblem {
  kind: ProblemKind;
  chain: ChainName;
  /** The first affected entry's seq. */
  seq: number;
  /** Its stream id, when the entry exists. */
  sid?: string;
  message: string;
}

export interface VerifyReport {
  chain: ChainName;
  ok: boolean;
  /** Entries checked. */
  entries: number;
  /** seq verification started after (0 = genesis). */
  anchorSeq: number;
  lastSeq: number;
  checkpoints: number;
  problem?: VerifyProblem;
}

/** How far ahead a missing seq is looked for before it counts as removed rather than moved. */
const REORDER_WINDOW = 10_000;

export async function verifyChain(store: AuditStore, keys: CheckpointKeys | JWK[], chain: ChainName): Promise<VerifyReport> {
  const jwks = Array.isArray(keys) ? keys : await keys.verificationKeys();
  const { redis, keyspace } = store;
  const report = (r: Omit<VerifyReport, 'chain' | 'ok'>): VerifyReport => ({ chain, ok: !r.problem, ...r });

  const rawCheckpoints = await redis.zrange(keyspace.auditCheckpoints(chain), '0', '-1', 'WITHSCORES');
  const checkpoints: CheckpointPayload[] = [];
  for (let i = 0; i + 1 < rawCheckpoints.length; i += 2) {
    const seq = Number(rawCheckpoints[i + 1]);
    try {
      const payload = await verifyCheckpoint(rawCheckpoints[i]!, jwks);
      if (payload.seq !== seq || payload.chain !== chain) throw new CheckpointError(`is stored at seq ${seq} of ${chain} but signs seq ${payload.seq} of ${payload.chain}`);
      checkpoints.push(payload);
    } catch (err) {
      return report({ entries: 0, anchorSeq: 0, lastSeq: 0, checkpoints: 0, problem: { kind: 'checkpoint', chain, seq, message: `checkpoint at seq ${seq} ${(err as Error).message}` } });
    }
  }
  const bySeq = new Map<number, CheckpointPayload>();
  for (const c of checkpoints) if (!bySeq.has(c.seq)) bySeq.set(c.seq, c);
  for (const c of checkpoints) {
    if (bySeq.get(c.seq)!.hash !== c.hash) {
      return report({ entries: 0, anchorSeq: 0, lastSeq: 0, checkpoints: 0, problem: { kind: 'checkpoint', chain, seq: c.seq, message: `two signed checkpoints disagree about the hash at seq ${c.seq}` } });
    }
  }

  const first = (await store.entries(chain, undefined, 1))[0];
  let expectedSeq: number;
  let prevHash: string;
  let anchorSeq: number;
  if (first?.seq === 1 || !checkpoints.length) {
    anchorSeq = 0;
    expectedSeq = 1;
    prevHash = GENESIS_HASH;
  } else {
    // After a purge the chain starts right after the cut, anchored by the checkpoint signed at the
    // cut (its reason is part of the signed payload). Any other start means entries went missing.
    const start = first ? first.seq - 1 : Math.max(...checkpoints.map((c) => c.seq));
    const anchor = checkpoints.find((c) => c.seq === start && c.reason === 'purge-cut');
    if (!anchor) {
      const from = checkpoints.filter((c) => c.seq < start).reduce((m, c) => Math.max(m, c.seq), 0) + 1;
      return report({
        entries: 0,
        anchorSeq: 0,
        lastSeq: 0,
        checkpoints: checkpoints.length,
        problem: { kind: 'removed', chain, seq: from, message: `the chain starts at seq ${start + 1}${first ? ` (${first.sid})` : ''} but no signed purge checkpoint anchors seq ${start}: entries before it were removed` },
      });
    }
    anchorSeq = anchor.seq;
    expectedSeq = anchor.seq + 1;
    prevHash = anchor.hash;
  }

  let entries = 0;
  let lastSeq = anchorSeq;
  let previous: ChainEntry | undefined;
  for await (const entry of store.walk(chain)) {
    entries++;
    if (!Number.isInteger(entry.seq)) {
      return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'altered', chain, seq: expectedSeq, sid: entry.sid, message: `entry ${entry.sid} has no valid seq` } });
    }
    if (entry.seq !== expectedSeq) {
      if (entry.seq < expectedSeq) {
        return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'reordered', chain, seq: entry.seq, sid: entry.sid, message: `entry seq ${entry.seq} (${entry.sid}) appears after seq ${expectedSeq - 1}` } });
      }
      const later = await findLater(store, chain, entry.sid, expectedSeq);
      if (later) {
        return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'reordered', chain, seq: expectedSeq, sid: later, message: `entry seq ${expectedSeq} (${later}) appears after seq ${entry.seq} (${entry.sid})` } });
      }
      return report({
        entries,
        anchorSeq,
        lastSeq,
        checkpoints: checkpoints.length,
        problem: { kind: 'removed', chain, seq: expectedSeq, message: `entries seq ${expectedSeq}${entry.seq - 1 > expectedSeq ? `–${entry.seq - 1}` : ''} are missing (next present: seq ${entry.seq}, ${entry.sid})` },
      });
    }
    if (entryHash(entry.seq, entry.prev, entry.event) !== entry.hash) {
      return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'altered', chain, seq: entry.seq, sid: entry.sid, message: `entry seq ${entry.seq} (${entry.sid}) does not match its hash` } });
    }
    if (entry.prev !== prevHash) {
      const culprit = previous ? { seq: previous.seq, sid: previous.sid } : { seq: entry.seq, sid: entry.sid };
      const what = previous ? `entry seq ${previous.seq} (${previous.sid}) was rewritten: its hash is not the one entry seq ${entry.seq} links to` : `entry seq ${entry.seq} (${entry.sid}) does not link to the signed checkpoint at seq ${anchorSeq}`;
      return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'altered', chain, ...culprit, message: what } });
    }
    const placement = misplaced(entry, previous);
    if (placement) {
      return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem: { kind: 'altered', chain, seq: entry.seq, sid: entry.sid, message: `entry seq ${entry.seq} (${entry.sid}) ${placement}` } });
    }
    const signed = bySeq.get(entry.seq);
    if (signed && signed.hash !== entry.hash) {
      return report({
        entries,
        anchorSeq,
        lastSeq,
        checkpoints: checkpoints.length,
        problem: { kind: 'altered', chain, seq: entry.seq, sid: entry.sid, message: `entry seq ${entry.seq} (${entry.sid}) or one before it was rewritten: its hash differs from the signed checkpoint` },
      });
    }
    prevHash = entry.hash;
    lastSeq = entry.seq;
    expectedSeq = entry.seq + 1;
    previous = entry;
  }

  const headSeq = Number((await redis.hget(keyspace.auditHead(chain), 'seq')) ?? 0);
  const lastCheckpoint = checkpoints.reduce((m, c) => Math.max(m, c.seq), 0);
  const mustReach = Math.max(headSeq, lastCheckpoint);
  if (lastSeq < mustReach) {
    return report({
      entries,
      anchorSeq,
      lastSeq,
      checkpoints: checkpoints.length,
      problem: { kind: 'removed', chain, seq: lastSeq + 1, message: `entries seq ${lastSeq + 1}–${mustReach} are missing from the end of the chain` },
    });
  }
  return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length });
}

/**
 * Search finds an entry by its stream id and its trail time (postings.ts), which are not under the
 * hash: they must still be what the append script wrote, or the entry could be hidden from
 * searches while the chain verifies.
 */
function misplaced(entry: ChainEntry, previous: ChainEntry | undefined): string | undefined {
  if (entry.sid !== streamId(entry.seq)) return `is stored under stream id ${entry.sid} instead of ${streamId(entry.seq)}, where search looks for it`;
  let recorded = Number.NaN;
  try {
    recorded = Date.parse((JSON.parse(entry.event) as { recorded?: string }).recorded ?? '');
  } catch {
    /* reported below */
  }
  const expected = previous && Number.isFinite(previous.t) ? Math.max(recorded, previous.t) : undefined;
  if (!Number.isFinite(entry.t) || !(entry.t >= recorded) || (expected !== undefined && entry.t !== expected)) {
    return `has trail time ${String(entry.t)} where ${expected ?? `at least ${recorded}`} was written: its place in date searches was changed`;
  }
  return undefined;
}

async function findLater(store: AuditStore, chain: ChainName, afterSid: string, seq: number): Promise<string | undefined> {
  let seen = 0;
  for await (const e of store.walk(chain, 1000, afterSid)) {
    if (e.seq === seq) return e.sid;
    if (++seen >= REORDER_WINDOW) return undefined;
  }
  return undefined;
}
