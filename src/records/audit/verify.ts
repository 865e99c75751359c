import type { JWK } from 'jose';
import type { Config } from '../../platform/config/schema.js';
import type { AnchorLine } from './anchor.js';
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
 *  - at the end, the chain must reach the head in Redis and every checkpoint;
 *  - every multiple of the cadence (audit.checkpointEvery) after the start must have a signed
 *    checkpoint: a rewrite from some entry on recomputes every later hash and moves the head, but
 *    cannot sign, so it has to delete the checkpoints after that entry, and that is what is caught;
 *  - on every shard (not the archive), the newest checkpoint must be younger than the interval plus grace (the
 *    server signs the head every interval, also when idle), so deleting the newest ones shows;
 *  - with an anchor (anchor.ts, outside Redis), every anchored checkpoint after the start must be
 *    in Redis with the same hash: Redis-level access cannot take back what was anchored.
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

/** The reason of the checkpoint from which a trail written by an earlier version is held to the cadence. */
export const CADENCE_START = 'cadence-start';

export interface VerifyPolicy {
  /** A signed checkpoint is required at every multiple of this seq (audit.checkpointEvery). */
  every: number;
  /** Shards: the newest checkpoint may be at most this old (seconds); undefined: not checked. */
  maxAgeSeconds?: number | undefined;
  /** Checkpoints anchored outside Redis (any chain; the other chain's are ignored). */
  anchor?: AnchorLine[] | undefined;
  /** Now, in ms (tests). */
  now?: number;
}

/** The rules a configuration asks for: its cadence, and its interval plus grace for the age. */
export function verifyPolicy(config: Config, opts: { anchor?: AnchorLine[] | undefined } = {}): VerifyPolicy {
  const { checkpointEvery, checkpointIntervalSeconds, checkpointGraceSeconds } = config.audit;
  return { every: checkpointEvery, maxAgeSeconds: checkpointIntervalSeconds + checkpointGraceSeconds, anchor: opts.anchor };
}

/** Checkpoints a chain in Redis may start after: a purge's cut, and the shipper's (its prefix is in PostgreSQL). */
export const CUT_REASONS = new Set(['purge-cut', 'ship-cut']);

/** How far ahead a missing seq is looked for before it counts as removed rather than moved. */
const REORDER_WINDOW = 10_000;

export async function verifyChain(
  store: AuditStore,
  keys: CheckpointKeys | JWK[],
  chain: ChainName,
  policy: VerifyPolicy,
): Promise<VerifyReport> {
  const jwks = Array.isArray(keys) ? keys : await keys.verificationKeys();
  const { redis, keyspace } = store;
  const report = (r: Omit<VerifyReport, 'chain' | 'ok'>): VerifyReport => ({ chain, ok: !r.problem, ...r });

  const rawCheckpoints = await redis.zrange(keyspace.auditCheckpoints(chain), '0', '-1', 'WITHSCORES');
  const checkpoints: CheckpointPayload[] = [];
  for (let i = 0; i + 1 < rawCheckpoints.length; i += 2) {
    const seq = Number(rawCheckpoints[i + 1]);
    try {
      const payload = await verifyCheckpoint(rawCheckpoints[i]!, jwks);
      if (payload.seq !== seq || payload.chain !== chain)
        throw new CheckpointError(`is stored at seq ${seq} of ${chain} but signs seq ${payload.seq} of ${payload.chain}`);
      checkpoints.push(payload);
    } catch (err) {
      return report({
        entries: 0,
        anchorSeq: 0,
        lastSeq: 0,
        checkpoints: 0,
        problem: { kind: 'checkpoint', chain, seq, message: `checkpoint at seq ${seq} ${(err as Error).message}` },
      });
    }
  }
  const bySeq = new Map<number, CheckpointPayload>();
  for (const c of checkpoints) if (!bySeq.has(c.seq)) bySeq.set(c.seq, c);
  for (const c of checkpoints) {
    if (bySeq.get(c.seq)!.hash !== c.hash) {
      return report({
        entries: 0,
        anchorSeq: 0,
        lastSeq: 0,
        checkpoints: 0,
        problem: { kind: 'checkpoint', chain, seq: c.seq, message: `two signed checkpoints disagree about the hash at seq ${c.seq}` },
      });
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
    // After a purge, or once PostgreSQL holds a prefix (shipper.ts), the chain starts right after
    // the cut, anchored by the checkpoint signed at the cut (its reason is part of the signed
    // payload). Any other start means entries went missing.
    const start = first ? first.seq - 1 : Math.max(...checkpoints.map((c) => c.seq));
    const anchor = checkpoints.find((c) => c.seq === start && CUT_REASONS.has(c.reason));
    if (!anchor) {
      const from = checkpoints.filter((c) => c.seq < start).reduce((m, c) => Math.max(m, c.seq), 0) + 1;
      return report({
        entries: 0,
        anchorSeq: 0,
        lastSeq: 0,
        checkpoints: checkpoints.length,
        problem: {
          kind: 'removed',
          chain,
          seq: from,
          message: `the chain starts at seq ${start + 1}${first ? ` (${first.sid})` : ''} but no signed cut checkpoint (purge or shipped) anchors seq ${start}: entries before it were removed`,
        },
      });
    }
    anchorSeq = anchor.seq;
    expectedSeq = anchor.seq + 1;
    prevHash = anchor.hash;
  }

  if (policy.anchor) {
    const problem = await againstAnchor(policy.anchor, jwks, chain, anchorSeq, bySeq);
    if (problem) return report({ entries: 0, anchorSeq, lastSeq: anchorSeq, checkpoints: checkpoints.length, problem });
  }

  let entries = 0;
  let lastSeq = anchorSeq;
  let previous: ChainEntry | undefined;
  /** The report of a problem found while walking: how far the walk got, and what is wrong there. */
  const failed = (problem: VerifyProblem): VerifyReport =>
    report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, problem });
  for await (const entry of store.walk(chain)) {
    entries++;
    if (!Number.isInteger(entry.seq)) {
      return failed({ kind: 'altered', chain, seq: expectedSeq, sid: entry.sid, message: `entry ${entry.sid} has no valid seq` });
    }
    if (entry.seq !== expectedSeq) {
      if (entry.seq < expectedSeq) {
        return failed({
          kind: 'reordered',
          chain,
          seq: entry.seq,
          sid: entry.sid,
          message: `entry seq ${entry.seq} (${entry.sid}) appears after seq ${expectedSeq - 1}`,
        });
      }
      const later = await findLater(store, chain, entry.sid, expectedSeq);
      if (later) {
        return failed({
          kind: 'reordered',
          chain,
          seq: expectedSeq,
          sid: later,
          message: `entry seq ${expectedSeq} (${later}) appears after seq ${entry.seq} (${entry.sid})`,
        });
      }
      return failed({
        kind: 'removed',
        chain,
        seq: expectedSeq,
        message: `entries seq ${expectedSeq}${entry.seq - 1 > expectedSeq ? `–${entry.seq - 1}` : ''} are missing (next present: seq ${entry.seq}, ${entry.sid})`,
      });
    }
    if (entryHash(entry.seq, entry.prev, entry.event) !== entry.hash) {
      return failed({
        kind: 'altered',
        chain,
        seq: entry.seq,
        sid: entry.sid,
        message: `entry seq ${entry.seq} (${entry.sid}) does not match its hash`,
      });
    }
    if (entry.prev !== prevHash) {
      const culprit = previous ? { seq: previous.seq, sid: previous.sid } : { seq: entry.seq, sid: entry.sid };
      const what = previous
        ? `entry seq ${previous.seq} (${previous.sid}) was rewritten: its hash is not the one entry seq ${entry.seq} links to`
        : `entry seq ${entry.seq} (${entry.sid}) does not link to the signed checkpoint at seq ${anchorSeq}`;
      return failed({ kind: 'altered', chain, ...culprit, message: what });
    }
    const placement = misplaced(entry, previous);
    if (placement) {
      return failed({
        kind: 'altered',
        chain,
        seq: entry.seq,
        sid: entry.sid,
        message: `entry seq ${entry.seq} (${entry.sid}) ${placement}`,
      });
    }
    const signed = bySeq.get(entry.seq);
    if (signed && signed.hash !== entry.hash) {
      return failed({
        kind: 'altered',
        chain,
        seq: entry.seq,
        sid: entry.sid,
        message: `entry seq ${entry.seq} (${entry.sid}) or one before it was rewritten: its hash differs from the signed checkpoint`,
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
    return failed({
      kind: 'removed',
      chain,
      seq: lastSeq + 1,
      message: `entries seq ${lastSeq + 1}–${mustReach} are missing from the end of the chain`,
    });
  }
  const problem =
    cadenceProblem(chain, checkpoints, anchorSeq, lastSeq, policy.every) ??
    (chain !== 'archive' ? ageProblem(chain, checkpoints, policy) : undefined);
  return report({ entries, anchorSeq, lastSeq, checkpoints: checkpoints.length, ...(problem ? { problem } : {}) });
}

/** The first multiple of the cadence after the start that has no signed checkpoint. */
function cadenceProblem(
  chain: ChainName,
  checkpoints: CheckpointPayload[],
  anchorSeq: number,
  lastSeq: number,
  every: number,
): VerifyProblem | undefined {
  const signed = new Set(checkpoints.map((c) => c.seq));
  // A trail written before cadence checkpoints is held to them from a signed `cadence-start` on
  // (`smart-authz audit migrate` writes it). Only the oldest counts, and deleting it puts the whole
  // chain under the rule: there is no way to exempt entries without signing.
  const cutover = checkpoints.filter((c) => c.reason === CADENCE_START).reduce((m, c) => Math.min(m, c.seq), Number.POSITIVE_INFINITY);
  const from = Number.isFinite(cutover) ? Math.max(anchorSeq, cutover) : anchorSeq;
  for (let seq = (Math.floor(from / every) + 1) * every; seq <= lastSeq; seq += every) {
    if (signed.has(seq)) continue;
    const since = Math.max(from, seq - every) + 1;
    return {
      kind: 'checkpoint',
      chain,
      seq,
      sid: streamId(seq),
      message: `no signed checkpoint at seq ${seq}, where one is required every ${every} entries: entries seq ${since}–${seq} (or later) were rewritten or removed, or the checkpoint was deleted`,
    };
  }
  return undefined;
}

/** The newest checkpoint must be recent: the server signs the head every interval, idle or not. */
function ageProblem(chain: ChainName, checkpoints: CheckpointPayload[], policy: VerifyPolicy): VerifyProblem | undefined {
  if (policy.maxAgeSeconds === undefined) return undefined;
  const now = Math.floor((policy.now ?? Date.now()) / 1000);
  const newest = checkpoints.reduce<CheckpointPayload | undefined>((m, c) => (!m || c.iat > m.iat ? c : m), undefined);
  if (!newest)
    return {
      kind: 'checkpoint',
      chain,
      seq: 1,
      message: 'there is no signed checkpoint: checkpoints were deleted, or no server has run yet',
    };
  const age = now - newest.iat;
  if (age <= policy.maxAgeSeconds) return undefined;
  return {
    kind: 'checkpoint',
    chain,
    seq: newest.seq + 1,
    message: `the newest signed checkpoint (seq ${newest.seq}, ${new Date(newest.iat * 1000).toISOString()}) is ${age} s old, more than the ${policy.maxAgeSeconds} s allowed (interval + grace): later checkpoints were deleted, or no server has run since`,
  };
}

/**
 * Every anchored checkpoint of this chain after the start (earlier ones went with a purge) must be
 * in Redis, with the same hash. The first one that is not is where the rewrite ends at the latest;
 * it began after the anchored checkpoint before it.
 */
async function againstAnchor(
  lines: AnchorLine[],
  jwks: JWK[],
  chain: ChainName,
  startSeq: number,
  bySeq: Map<number, CheckpointPayload>,
): Promise<VerifyProblem | undefined> {
  const anchored: CheckpointPayload[] = [];
  for (const line of lines) {
    if (line.chain !== chain) continue;
    try {
      const payload = await verifyCheckpoint(line.jws, jwks);
      if (payload.chain !== chain) throw new CheckpointError(`signs seq ${payload.seq} of ${payload.chain}`);
      anchored.push(payload);
    } catch (err) {
      return { kind: 'checkpoint', chain, seq: line.seq, message: `the anchored checkpoint at seq ${line.seq} ${(err as Error).message}` };
    }
  }
  anchored.sort((a, b) => a.seq - b.seq);
  let good = startSeq;
  for (const a of anchored) {
    if (a.seq < startSeq) continue;
    const inRedis = bySeq.get(a.seq);
    if (!inRedis || inRedis.hash !== a.hash) {
      const what = inRedis ? 'signs a different hash in Redis' : 'is missing from Redis';
      return {
        kind: 'checkpoint',
        chain,
        seq: a.seq,
        sid: streamId(a.seq),
        message: `the anchored checkpoint at seq ${a.seq} (${a.reason}, ${new Date(a.iat * 1000).toISOString()}) ${what}: the chain was rewritten or cut back between seq ${good + 1} and seq ${a.seq}`,
      };
    }
    good = a.seq;
  }
  return undefined;
}

/**
 * Search finds an entry by its stream id and its trail time (postings.ts), which are not under the
 * hash: they must still be what the append script wrote, or the entry could be hidden from
 * searches while the chain verifies.
 */
function misplaced(entry: ChainEntry, previous: ChainEntry | undefined): string | undefined {
  if (entry.sid !== streamId(entry.seq))
    return `is stored under stream id ${entry.sid} instead of ${streamId(entry.seq)}, where search looks for it`;
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
