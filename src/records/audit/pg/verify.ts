import type { JWK } from 'jose';
import { GENESIS_HASH, entryHash } from '../chain.js';
import { CheckpointError, verifyCheckpoint, type CheckpointKeys, type CheckpointPayload, type RetentionCutFacts } from '../checkpoints.js';
import type { PgAuditStore, PgCheckpoint, PgEntry } from './store.js';
import { KeptDigest, MONTH_KEY, monthKey } from './kept.js';

/**
 * Verifies the chains stored in PostgreSQL, each walked in seq order in keyset pages (never
 * loaded whole): seq contiguity from the genesis (or from retention's recorded cut), every hash
 * re-computed from what is stored, every prev link, trail time (never back along the chain, and
 * the later of `recorded` and the entry before's), and each stored checkpoint's (seq, hash)
 * against the entry at that seq; a checkpoint beyond the last entry means entries are missing
 * from the end. With keys, each checkpoint's signature is checked too. With `every`, a signed
 * checkpoint is required at each multiple of it (audit.checkpointEvery), as in src/records/audit/verify.ts.
 * Reports the first bad position per chain.
 *
 * Retention (retention.ts): a chain may start after a cut only if `retention-cut` checkpoints sign
 * it. Their dropped ranges (`from`…`seq`) must tile the chain from seq 1 to the cut, the last one
 * must be the cut audit.retention_cuts records, and the first entry left must link to its hash.
 * The disclosures each drop kept (audit.kept) must each recompute to their own hash, lie in the
 * signed month, and hash (seq, hash, t, id) to the signed digest, in the signed number; kept
 * months before the newest signed disclosure floor (`keptFrom`) are gone on purpose. An unsigned
 * or forged cut, a kept entry altered, removed or added, fails the chain.
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
  /** seq verification started after (0 = genesis; else retention's signed cut). */
  startSeq: number;
  lastSeq: number;
  checkpoints: number;
  /** Kept disclosures checked against the signed retention cuts. */
  kept: number;
  /** Signed retention cuts found (ranges and floors). */
  retentionCuts: number;
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
  /**
   * Only the entries before this trail time (ms), and the first one after for its link: what a
   * purge is about to drop. The end-of-chain checks are skipped then.
   */
  entriesBefore?: number;
  /** Only kept months before this `YYYY-MM` (what a purge is about to drop as expired). */
  keptBefore?: string;
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

async function verifyOne(
  store: PgAuditStore,
  chain: string,
  recordedCut: { seq: number; hash: string } | undefined,
  jwks: JWK[] | undefined,
  opts: PgVerifyOptions,
): Promise<PgVerifyReport> {
  const all = await store.checkpoints(chain);
  let entries = 0;
  let kept = 0;
  let startSeq = 0;
  let lastSeq = 0;
  let checkpoints: PgCheckpoint[] = [];
  let retentionCuts = 0;
  const report = (problem?: PgVerifyProblem): PgVerifyReport => ({
    chain,
    ok: !problem,
    entries,
    startSeq,
    lastSeq,
    checkpoints: checkpoints.length,
    kept,
    retentionCuts,
    ...(problem ? { problem } : {}),
  });

  const signed = await signedCutsOf(chain, all, jwks);
  if (!Array.isArray(signed)) return report(signed);
  retentionCuts = signed.length;
  const retention = retentionOf(chain, signed, recordedCut);
  if ('problem' in retention) return report(retention.problem);
  const { cut } = retention;
  startSeq = cut?.seq ?? 0;
  lastSeq = startSeq;
  const keptProblem = await checkKept(store, chain, retention.ranges, retention.keptFrom, opts, (n) => (kept = n));
  if (keptProblem) return report(keptProblem);

  // Checkpoints at or before retention's cut signed entries that are gone.
  checkpoints = all.filter((c) => c.seq > startSeq);

  const bySeq = new Map<number, PgCheckpoint[]>();
  for (const c of checkpoints) {
    if (jwks) {
      try {
        const payload = await verifyCheckpoint(c.jws, jwks);
        if (payload.chain !== chain || payload.seq !== c.seq || payload.hash !== c.hash)
          throw new CheckpointError(`is stored as seq ${c.seq} of ${chain} but signs seq ${payload.seq} of ${payload.chain}`);
      } catch (err) {
        return report({ kind: 'checkpoint', chain, seq: c.seq, message: `checkpoint at seq ${c.seq} ${(err as Error).message}` });
      }
    }
    const same = bySeq.get(c.seq) ?? [];
    if (same.some((s) => s.hash !== c.hash))
      return report({ kind: 'checkpoint', chain, seq: c.seq, message: `two checkpoints disagree about the hash at seq ${c.seq}` });
    bySeq.set(c.seq, [...same, c]);
  }

  let expectedSeq = startSeq + 1;
  let prevHash = cut?.hash ?? GENESIS_HASH;
  let previous: PgEntry | undefined;
  const page = opts.page ?? 1000;
  let bounded = false;
  for (let after = startSeq; !bounded;) {
    const batch = await store.entries(chain, after, page);
    for (const e of batch) {
      entries++;
      if (e.seq !== expectedSeq) {
        // Pages are in seq order, so a higher seq means the ones between are not stored.
        return report({
          kind: 'removed',
          chain,
          seq: expectedSeq,
          message: `entries seq ${expectedSeq}${e.seq - 1 > expectedSeq ? `–${e.seq - 1}` : ''} are missing (next present: seq ${e.seq})`,
        });
      }
      if (entryHash(e.seq, e.prev, e.event) !== e.hash)
        return report({ kind: 'altered', chain, seq: e.seq, message: `entry seq ${e.seq} does not match its hash` });
      if (e.prev !== prevHash) {
        const message = previous
          ? `entry seq ${previous.seq} was rewritten: its hash is not the one entry seq ${e.seq} links to`
          : `entry seq ${e.seq} does not link to ${cut ? `retention's signed cut at seq ${cut.seq}` : 'the genesis'}`;
        return report({ kind: 'altered', chain, seq: previous?.seq ?? e.seq, message });
      }
      const recorded = recordedOf(e.event);
      const expectedT = previous ? Math.max(recorded, previous.t) : undefined;
      if (!(e.t >= recorded) || (expectedT !== undefined && e.t !== expectedT)) {
        return report({
          kind: 'altered',
          chain,
          seq: e.seq,
          message: `entry seq ${e.seq} has trail time ${e.t} where ${expectedT ?? `at least ${recorded}`} was written: its place in date searches was changed`,
        });
      }
      const signed = bySeq.get(e.seq)?.[0];
      if (signed && signed.hash !== e.hash) {
        return report({
          kind: 'altered',
          chain,
          seq: e.seq,
          message: `entry seq ${e.seq} or one before it was rewritten: its hash differs from the checkpoint's`,
        });
      }
      prevHash = e.hash;
      lastSeq = e.seq;
      expectedSeq = e.seq + 1;
      previous = e;
      if (opts.entriesBefore !== undefined && e.t >= opts.entriesBefore) {
        bounded = true;
        break;
      }
    }
    if (batch.length < page) break;
    after = batch[batch.length - 1]!.seq;
  }
  if (opts.entriesBefore !== undefined) return report();
  const lastCheckpoint = checkpoints.reduce((m, c) => Math.max(m, c.seq), 0);
  if (lastSeq < lastCheckpoint) {
    return report({
      kind: 'removed',
      chain,
      seq: lastSeq + 1,
      message: `entries seq ${lastSeq + 1}–${lastCheckpoint} are missing from the end of the chain (a checkpoint signs seq ${lastCheckpoint})`,
    });
  }
  if (opts.every) {
    for (let seq = (Math.floor(startSeq / opts.every) + 1) * opts.every; seq <= lastSeq; seq += opts.every) {
      if (!bySeq.has(seq))
        return report({
          kind: 'checkpoint',
          chain,
          seq,
          message: `no checkpoint at seq ${seq}, where one is required every ${opts.every} entries`,
        });
    }
  }
  return report();
}

/** A signed retention cut: the checkpoint's (seq, hash) and what it says about the drop. */
interface SignedCut extends RetentionCutFacts {
  seq: number;
  hash: string;
}

function peek(jws: string): Partial<CheckpointPayload> {
  try {
    return JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Partial<CheckpointPayload>;
  } catch {
    return {};
  }
}

function isFacts(r: unknown): r is RetentionCutFacts {
  const f = r as Partial<RetentionCutFacts> | undefined;
  return (
    !!f &&
    Number.isInteger(f.from) &&
    Number.isInteger(f.kept) &&
    typeof f.keptFrom === 'string' &&
    MONTH_KEY.test(f.keptFrom) &&
    typeof f.keptDigest === 'string' &&
    /^[0-9a-f]{64}$/.test(f.keptDigest) &&
    (f.month === undefined || (typeof f.month === 'string' && MONTH_KEY.test(f.month)))
  );
}

/**
 * The chain's `retention-cut` checkpoints, each signature checked when there are keys (a forged
 * one fails the chain: nothing else would tell it from a real cut); without keys as stored.
 */
async function signedCutsOf(chain: string, all: PgCheckpoint[], jwks: JWK[] | undefined): Promise<SignedCut[] | PgVerifyProblem> {
  const out: SignedCut[] = [];
  for (const c of all) {
    if (peek(c.jws).reason !== 'retention-cut' && c.reason !== 'retention-cut') continue;
    let payload: Partial<CheckpointPayload> = peek(c.jws);
    if (jwks) {
      try {
        payload = await verifyCheckpoint(c.jws, jwks);
      } catch (err) {
        return {
          kind: 'checkpoint',
          chain,
          seq: c.seq,
          message: `the retention cut checkpoint at seq ${c.seq} ${(err as Error).message}: the cut is forged or signed by a key no longer published`,
        };
      }
    }
    if (
      payload.reason !== 'retention-cut' ||
      payload.chain !== chain ||
      payload.seq !== c.seq ||
      payload.hash !== c.hash ||
      !isFacts(payload.retention)
    ) {
      return {
        kind: 'checkpoint',
        chain,
        seq: c.seq,
        message: `the retention cut checkpoint at seq ${c.seq} does not sign what it is stored as (chain, seq, hash and the retention facts)`,
      };
    }
    out.push({ ...payload.retention, seq: c.seq, hash: c.hash });
  }
  return out;
}

interface Retention {
  /** Where the chain starts (the newest signed cut), if retention cut it. */
  cut?: { seq: number; hash: string };
  /** The dropped ranges, in seq order, tiling 1…cut. */
  ranges: Array<SignedCut & { month: string }>;
  /** Kept months before this are gone on purpose. */
  keptFrom: string;
}

function retentionOf(
  chain: string,
  signed: SignedCut[],
  recorded: { seq: number; hash: string } | undefined,
): Retention | { problem: PgVerifyProblem } {
  const fail = (seq: number, message: string) => ({ problem: { kind: 'checkpoint' as const, chain, seq, message } });
  const ranges = signed
    .filter((c): c is SignedCut & { month: string } => c.month !== undefined)
    .sort((a, b) => a.from - b.from || a.seq - b.seq);
  let next = 1;
  for (const r of ranges) {
    if (r.from > next)
      return fail(
        next,
        `entries seq ${next}–${r.from - 1} were dropped without a signed retention cut (the signed cuts resume at seq ${r.from})`,
      );
    if (r.from < next || r.seq < r.from) return fail(r.from, `two signed retention cuts overlap at seq ${r.from}`);
    next = r.seq + 1;
  }
  const last = ranges[ranges.length - 1];
  for (const floor of signed.filter((c) => c.month === undefined)) {
    // A floor-only cut re-signs the cut of its time: it must be one of the ranges' ends.
    if (floor.from !== floor.seq + 1 || (floor.seq > 0 && !ranges.some((r) => r.seq === floor.seq && r.hash === floor.hash))) {
      return fail(floor.seq, `the signed retention floor at seq ${floor.seq} does not sit on a signed cut`);
    }
  }
  const cut = last ? { seq: last.seq, hash: last.hash } : undefined;
  if (recorded && (!cut || recorded.seq !== cut.seq || recorded.hash !== cut.hash)) {
    return fail(
      recorded.seq,
      `retention cut the chain at seq ${recorded.seq}, but no valid signed retention-cut checkpoint is there${cut ? ` (the newest signed cut is at seq ${cut.seq})` : ''}: the cut is unsigned, or its checkpoint was removed or forged`,
    );
  }
  if (cut && !recorded)
    return fail(cut.seq, `a signed retention cut at seq ${cut.seq} has no record in audit.retention_cuts: the record was removed`);
  const keptFrom = signed.reduce((m, c) => (c.keptFrom > m ? c.keptFrom : m), '0000-01');
  return { ...(cut ? { cut } : {}), ranges, keptFrom };
}

/**
 * The kept disclosures of the chain against the signed cuts, streamed in seq order: each range's
 * kept entries (unless the range's month is past the disclosure floor) must recompute to their
 * hash, lie in the signed month and hash to the signed digest; none may lie outside every range.
 */
async function checkKept(
  store: PgAuditStore,
  chain: string,
  ranges: Retention['ranges'],
  keptFrom: string,
  opts: PgVerifyOptions,
  count: (n: number) => void,
): Promise<PgVerifyProblem | undefined> {
  const page = opts.page ?? 1000;
  let buf: PgEntry[] = [];
  let after = 0;
  let done = false;
  const next = async (): Promise<PgEntry | undefined> => {
    if (!buf.length && !done) {
      buf = await store.kept(chain, after, page);
      if (buf.length < page) done = true;
      if (buf.length) after = buf[buf.length - 1]!.seq;
    }
    return buf[0];
  };
  let checked = 0;
  for (const r of ranges) {
    if (opts.keptBefore !== undefined && r.month >= opts.keptBefore) return undefined;
    const expired = r.month < keptFrom;
    const digest = new KeptDigest();
    for (let e = await next(); e && e.seq <= r.seq; e = await next()) {
      buf.shift();
      if (expired) continue;
      if (entryHash(e.seq, e.prev, e.event) !== e.hash)
        return { kind: 'altered', chain, seq: e.seq, message: `kept disclosure seq ${e.seq} (${r.month}) does not match its hash` };
      if (monthKey(e.t) !== r.month)
        return {
          kind: 'altered',
          chain,
          seq: e.seq,
          message: `kept disclosure seq ${e.seq} has trail time ${e.t}, outside ${r.month} where retention kept it`,
        };
      digest.add(e);
      count(++checked);
    }
    if (expired) continue;
    const hex = digest.hex();
    if (digest.count !== r.kept || hex !== r.keptDigest) {
      const what =
        digest.count < r.kept
          ? `${r.kept - digest.count} were removed`
          : digest.count > r.kept
            ? `${digest.count - r.kept} were added`
            : 'one was altered (its hash, time or id)';
      return {
        kind: digest.count < r.kept ? 'removed' : 'altered',
        chain,
        seq: r.from,
        message: `the kept disclosures of ${r.month} (seq ${r.from}–${r.seq}) are not those the retention cut signed: ${digest.count} here, ${r.kept} signed; ${what}`,
      };
    }
  }
  if (opts.keptBefore !== undefined) return undefined;
  const stray = await next();
  if (stray)
    return {
      kind: 'altered',
      chain,
      seq: stray.seq,
      message: `kept disclosure seq ${stray.seq} is not covered by any signed retention cut`,
    };
  return undefined;
}
