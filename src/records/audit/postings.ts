import type { RedisClient } from '../../platform/redis/connection.js';

/**
 * The search index is one posting list per (chain, parameter, value): a Redis string holding the
 * seqs of the entries with that value, ascending, each as 12 hex digits. An append adds one APPEND
 * per distinct value in its batch, whatever the batch size, so under load indexing costs Redis a
 * fraction of what one sorted-set member per event and value did (docs/benchmarks.md), and an
 * entry takes 12 bytes per value instead of a skip-list node.
 *
 * Lists are in seq order because the append script is the only writer and seqs only grow; fixed
 * width makes the n-th posting GETRANGE(12n, 12n+11), so a seq range is found by binary search.
 * Stream entry ids are `<seq>-0`, so a seq is also where its entry is.
 *
 * Time: each entry also carries `t`, its `recorded` time clamped to never go below the entry
 * before it (the clocks of several instances may disagree by a few milliseconds). `t` only ever
 * grows along a chain, so a date range is a seq range, found by binary search over the stream.
 */

export const POSTING_WIDTH = 12;

export function encodeSeq(seq: number): string {
  return seq.toString(16).padStart(POSTING_WIDTH, '0');
}

export function decodePostings(text: string): number[] {
  const out: number[] = new Array(Math.floor(text.length / POSTING_WIDTH));
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * POSTING_WIDTH, (i + 1) * POSTING_WIDTH), 16);
  return out;
}

export function streamId(seq: number): string {
  return `${seq}-0`;
}

// Shared Lua: the first posting index in [lo, hi) of KEYS[k] whose seq is >= x.
const LOWER_BOUND = `
local function lowerBound(key, lo, hi, x)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local s = tonumber(redis.call('GETRANGE', key, mid * 12, mid * 12 + 11), 16)
    if s < x then lo = mid + 1 else hi = mid end
  end
  return lo
end
`;

/** For each key: [start, end) of its postings with lo <= seq <= hi. */
const SLICE_SCRIPT = `${LOWER_BOUND}
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for k = 1, #KEYS do
  local n = math.floor(redis.call('STRLEN', KEYS[k]) / 12)
  local s = lowerBound(KEYS[k], 0, n, lo)
  out[#out + 1] = s
  out[#out + 1] = lowerBound(KEYS[k], s, n, hi + 1)
end
return out
`;

/** Which of the seqs (ARGV[3..]) are in KEYS[1]'s postings [ARGV[1], ARGV[2]): 1 or 0 each. */
const CONTAINS_SCRIPT = `${LOWER_BOUND}
local start, stop = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local from = start
for a = 3, #ARGV do
  local x = tonumber(ARGV[a])
  -- The seqs asked about ascend, so each search starts where the last one ended.
  local i = lowerBound(KEYS[1], from, stop, x)
  from = i
  if i < stop and tonumber(redis.call('GETRANGE', KEYS[1], i * 12, i * 12 + 11), 16) == x then out[#out + 1] = 1 else out[#out + 1] = 0 end
end
return out
`;

/**
 * The seq range of a chain (KEYS[1] its stream) whose `t` lies in [ARGV[1], ARGV[2]] (ms), and
 * its first and last seq. Entries are found by id `<seq>-0`; a missing one (a damaged chain)
 * is stepped over to the next present entry.
 */
const WINDOW_SCRIPT = `
local stream = KEYS[1]
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if not first then return {1, 0, 1, 0} end
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
local function seqOf(id) return tonumber(string.match(id, '^(%d+)')) end
local firstSeq, lastSeq = seqOf(first[1]), seqOf(last[1])
local function tAt(seq)
  local e = redis.call('XRANGE', stream, seq .. '-0', '+', 'COUNT', 1)[1]
  local f = e[2]
  for i = 1, #f, 2 do if f[i] == 't' then return tonumber(f[i + 1]), seqOf(e[1]) end end
  return 0, seqOf(e[1])
end
-- first seq in [lo, hi + 1) with t >= x
local function firstAtOrAfter(x)
  local lo, hi = firstSeq, lastSeq + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local t, at = tAt(mid)
    if t < x then lo = at + 1 else hi = mid end
  end
  return lo
end
local from, to = ARGV[1], ARGV[2]
local lo = firstSeq
if from ~= '-inf' then lo = firstAtOrAfter(tonumber(from)) end
local hi = lastSeq
if to ~= '+inf' then hi = firstAtOrAfter(tonumber(to) + 1) - 1 end
return {lo, hi, firstSeq, lastSeq}
`;

/** Drops the postings of seqs <= ARGV[1] (a purged prefix) from every key. */
const TRIM_SCRIPT = `${LOWER_BOUND}
local cut = tonumber(ARGV[1])
for k = 1, #KEYS do
  local n = math.floor(redis.call('STRLEN', KEYS[k]) / 12)
  local i = lowerBound(KEYS[k], 0, n, cut + 1)
  if i >= n then redis.call('DEL', KEYS[k])
  elseif i > 0 then redis.call('SET', KEYS[k], redis.call('GETRANGE', KEYS[k], i * 12, -1)) end
end
return 1
`;

interface PostingScripts {
  auditPostingSlices(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<number[]>;
  auditPostingsContain(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<number[]>;
  auditSeqWindow(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<[number, number, number, number]>;
  auditTrimPostings(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<number>;
}

const defined = new WeakSet<RedisClient>();

export function postingScripts(redis: RedisClient): RedisClient & PostingScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('auditPostingSlices', { lua: SLICE_SCRIPT });
    redis.defineCommand('auditPostingsContain', { lua: CONTAINS_SCRIPT });
    redis.defineCommand('auditSeqWindow', { lua: WINDOW_SCRIPT });
    redis.defineCommand('auditTrimPostings', { lua: TRIM_SCRIPT });
    defined.add(redis);
  }
  return redis as RedisClient & PostingScripts;
}

export interface Slice {
  key: string;
  /** Posting indices [start, end). */
  start: number;
  end: number;
}

/** Where each key's postings for seqs in [lo, hi] are. */
export async function slices(redis: RedisClient, keys: string[], lo: number, hi: number): Promise<Slice[]> {
  if (!keys.length) return [];
  const flat = await postingScripts(redis).auditPostingSlices(keys.length, ...keys, lo, hi);
  return keys.map((key, k) => ({ key, start: Number(flat[2 * k]), end: Number(flat[2 * k + 1]) }));
}

/** The seqs of postings [start, end) of a key, ascending. */
export async function readSlice(redis: RedisClient, slice: Slice, start = slice.start, end = slice.end): Promise<number[]> {
  if (end <= start) return [];
  return decodePostings(await redis.getrange(slice.key, start * POSTING_WIDTH, end * POSTING_WIDTH - 1));
}

/** Which of `seqs` (ascending) are in the slice; asked in chunks so no script runs long. */
export async function sliceContains(redis: RedisClient, slice: Slice, seqs: number[], chunk = 2000): Promise<boolean[]> {
  const out: boolean[] = [];
  for (let i = 0; i < seqs.length; i += chunk) {
    const part = seqs.slice(i, i + chunk);
    const flags = await postingScripts(redis).auditPostingsContain(1, slice.key, slice.start, slice.end, ...part);
    for (const f of flags) out.push(Number(f) === 1);
  }
  return out;
}

/** Seqs of a chain whose time lies in [from, to], and the chain's first and last seq. */
export async function seqWindow(
  redis: RedisClient,
  stream: string,
  from: number,
  to: number,
): Promise<{ lo: number; hi: number; first: number; last: number }> {
  const fmt = (n: number, inf: string) => (Number.isFinite(n) ? String(Math.floor(n)) : inf);
  const [lo, hi, first, last] = await postingScripts(redis).auditSeqWindow(1, stream, fmt(from, '-inf'), fmt(to, '+inf'));
  return { lo: Number(lo), hi: Number(hi), first: Number(first), last: Number(last) };
}

export async function trimPostings(redis: RedisClient, keys: string[], cutSeq: number): Promise<void> {
  for (let i = 0; i < keys.length; i += 500) {
    const part = keys.slice(i, i + 500);
    await postingScripts(redis).auditTrimPostings(part.length, ...part, cutSeq);
  }
}
