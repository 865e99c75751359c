import { FhirError } from '../../domain/fhir/errors.js';
import type { AuditEvent } from './audit-event.js';
import type { ChainName } from './chain.js';
import { decodeStored } from './stored-event.js';
import type { Clause, Item, Key, Lane } from './lane.js';

import { readSlice, seqWindow, sliceContains, slices, type Slice } from './postings.js';
import type { AuditStore } from './store.js';

/**
 * AuditEvent search over the posting lists (postings.ts), chain by chain: the date range becomes a
 * seq range; a search without parameters is that whole range, one parameter with one value is a
 * slice of one list (total and any page in O(log n)), and anything else starts from the smallest
 * clause and checks each of its seqs against the other clauses. Each parameter's values are
 * OR-ed, parameters are AND-ed.
 *
 * Every chain is searched (each shard, chain.ts, and the disclosure archive), and with a
 * PostgreSQL home, PostgreSQL for what the shipper has moved there: each is a lane, its matches in
 * one total order, (trail time, chain in byte order, seq), reversed newest first. Pages are keyset
 * pages: a page link carries the key of the last (or, going back, the first) match it showed, and
 * each lane reads its next `count` matches after that key, so a page costs the same at any depth
 * and stays exact while the shipper moves entries from Redis to PostgreSQL between two pages.
 *
 * `asOf` is the upper time bound fixed when the first page was served: later pages of the same
 * search ignore events recorded afterwards, so offsets do not shift while an officer pages.
 */

export interface AuditSearch {
  clauses: Clause[];
  dateFrom?: number;
  dateTo?: number;
  sort?: 'date' | '-date';
  count: number;
  /** How many matches come before this page (for the links; `after`/`before` say where it starts). */
  offset?: number;
  /** The page starts right after this match (the previous page's last). */
  after?: Key;
  /** The page ends right before this match (the next page's first): a previous link. */
  before?: Key;
  asOf?: number;
  /** Bounds on a multi-parameter search (defaults below; config `audit.searchMaxCandidates`). */
  limits?: { maxCandidates?: number; readWhole?: number };
}

export interface SearchResult {
  total: number;
  events: AuditEvent[];
  /** The upper time bound used (pass back for the next page). */
  asOf: number;
  /** The first and last match of the page (the keys of the previous and next links). */
  first?: Key;
  last?: Key;
}

/**
 * Most seqs a multi-parameter search starts from (its smallest clause, in the date range). Beyond
 * it the search is refused as too costly rather than tying Redis up: a date range or a patient or
 * agent narrows it.
 */
export const MAX_CANDIDATES = 100_000;
// Another clause up to 4 × that size is read whole and intersected in memory; a bigger one is
// probed seq by seq in Redis (in bounded script calls).

type Matches = { kind: 'range'; lo: number; hi: number } | { kind: 'slice'; slice: Slice } | { kind: 'list'; seqs: number[] };

const NONE: Matches = { kind: 'list', seqs: [] };

function total(m: Matches): number {
  if (m.kind === 'range') return Math.max(0, m.hi - m.lo + 1);
  if (m.kind === 'slice') return m.slice.end - m.slice.start;
  return m.seqs.length;
}

/** `count` matches after skipping `offset`, in the search's order. */
async function page(store: AuditStore, m: Matches, offset: number, count: number, desc: boolean): Promise<number[]> {
  const n = total(m);
  const from = desc ? Math.max(0, n - offset - count) : offset;
  const to = desc ? n - offset : Math.min(n, offset + count);
  if (to <= from) return [];
  let seqs: number[];
  if (m.kind === 'range') seqs = Array.from({ length: to - from }, (_, i) => m.lo + from + i);
  else if (m.kind === 'slice') seqs = await readSlice(store.redis, m.slice, m.slice.start + from, m.slice.start + to);
  else seqs = m.seqs.slice(from, to);
  return desc ? seqs.reverse() : seqs;
}

function mergeUnique(lists: number[][]): number[] {
  const all = lists.length === 1 ? lists[0]! : lists.flat().sort((a, b) => a - b);
  const out: number[] = [];
  for (const s of all) if (out[out.length - 1] !== s) out.push(s);
  return out;
}

async function chainMatches(
  store: AuditStore,
  chain: ChainName,
  clauses: Clause[],
  from: number,
  to: number,
  limits: AuditSearch['limits'] = {},
  after = 0,
  before = Infinity,
): Promise<Matches> {
  const maxCandidates = limits.maxCandidates ?? MAX_CANDIDATES;
  const readWhole = limits.readWhole ?? 4 * maxCandidates;
  const { redis, keyspace } = store;
  const window = await seqWindow(redis, keyspace.auditStream(chain), from, to);
  // Seqs in (after, before): up to `after` is read from PostgreSQL (the shipper's watermark), and a
  // keyset page starts after (or ends before) a match of this chain.
  const lo = Math.max(window.lo, after + 1);
  const hi = Math.min(window.hi, before - 1);
  if (lo > hi) return NONE;
  if (!clauses.length) return { kind: 'range', lo, hi };
  const keys = clauses.map((c) => c.values.map((v) => keyspace.auditPostings(chain, c.param, v)));
  const found = await slices(redis, keys.flat(), lo, hi);
  let at = 0;
  const bySize = keys
    .map((k) => {
      const own = found.slice(at, (at += k.length)).filter((s) => s.end > s.start);
      return { slices: own, size: own.reduce((sum, s) => sum + s.end - s.start, 0) };
    })
    .sort((a, b) => a.size - b.size);
  const [driver, ...rest] = bySize;
  if (!driver || driver.size === 0) return NONE;
  if (bySize.length === 1 && driver.slices.length === 1) return { kind: 'slice', slice: driver.slices[0]! };
  if (driver.size > maxCandidates) {
    throw new FhirError(
      400,
      'too-costly',
      `this search would have to check ${driver.size} events; narrow it with a date range, a patient or an agent (at most ${maxCandidates})`,
    );
  }
  let seqs = mergeUnique(await Promise.all(driver.slices.map((s) => readSlice(redis, s))));
  for (const clause of rest) {
    if (!seqs.length) break;
    if (clause.size <= readWhole) {
      const members = new Set((await Promise.all(clause.slices.map((s) => readSlice(redis, s)))).flat());
      seqs = seqs.filter((s) => members.has(s));
    } else {
      const hit = new Array<boolean>(seqs.length).fill(false);
      for (const s of clause.slices) (await sliceContains(redis, s, seqs)).forEach((yes, i) => (hit[i] ||= yes));
      seqs = seqs.filter((_, i) => hit[i]);
    }
  }
  return { kind: 'list', seqs };
}

/**
 * Deepest offset a page link without a key (from an earlier version) may ask for: reaching it means
 * reading every page before it. Links this server writes carry a key.
 */
const MAX_SEEK = 10_000;

/** The key of a match. */
export function keyOf(item: Item): Key {
  return { t: item.t, chain: item.chain, seq: item.seq };
}

/** Compares two matches in the search's order: trail time, then chain (byte order), then seq; all reversed newest first. */
function comparator(desc: boolean): (a: Key, b: Key) => number {
  const sign = desc ? -1 : 1;
  return (a, b) => sign * (a.t !== b.t ? a.t - b.t : a.chain !== b.chain ? (a.chain < b.chain ? -1 : 1) : a.seq - b.seq);
}

/** A chain's matches in Redis as a lane (from its watermark on, with a PostgreSQL home). */
function redisLane(store: AuditStore, chain: ChainName, q: AuditSearch, from: number, to: number, shipped: number, all: Matches): Lane {
  return {
    total: total(all),
    async after(k, count, desc) {
      if (count <= 0) return [];
      let m = all;
      if (k) {
        // What follows k in this chain: a seq bound in k's own chain, a time bound in the others
        // (time never goes back along a chain, so a time bound is a seq bound).
        let lo = from;
        let hi = to;
        let after = shipped;
        let before = Infinity;
        if (chain === k.chain) {
          if (desc) before = k.seq;
          else after = Math.max(after, k.seq);
        } else if (desc) hi = Math.min(hi, chain < k.chain ? k.t : k.t - 1);
        else lo = Math.max(lo, chain > k.chain ? k.t : k.t + 1);
        m = lo > hi ? NONE : await chainMatches(store, chain, q.clauses, lo, hi, q.limits, after, before);
      }
      const seqs = await page(store, m, 0, count, desc);
      const entries = await store.entriesAt(seqs.map((seq) => ({ chain, seq })));
      const items: Array<Item | undefined> = entries.map((e) => (e ? { chain, seq: e.seq, t: e.t, event: e.event } : undefined));
      // An entry dropped since the search began (retention, or shipped and trimmed) keeps its
      // place with its neighbour's time and no event.
      return seqs.map((seq, i) => items[i] ?? { chain, seq, t: items[i - 1]?.t ?? items.find((x) => x)?.t ?? 0, event: '' });
    },
  };
}

/** The first `count` matches after `k` over every lane, in the search's order (each lane gives its own first `count`). */
async function mergeAfter(lanes: Lane[], k: Key | undefined, count: number, desc: boolean): Promise<Item[]> {
  const lists = await Promise.all(lanes.map((lane) => lane.after(k, count, desc)));
  return lists.flat().sort(comparator(desc)).slice(0, count);
}

export interface MatchPage {
  total: number;
  items: Item[];
  asOf: number;
}

/**
 * The lanes of a search: each chain's Redis entries, and when the trail's home is PostgreSQL, what
 * it holds (store.home). The shipper's watermark per chain splits the two: entries up to it are
 * read from PostgreSQL, the rest from Redis, so an entry is in exactly one lane.
 */
async function lanesOf(store: AuditStore, q: AuditSearch, from: number, to: number): Promise<Lane[]> {
  const chains = await store.chains();
  const home = store.home;
  const shipped = home ? await store.shippedSeqs(chains) : chains.map(() => 0);
  const matches = await Promise.all(chains.map((chain, i) => chainMatches(store, chain, q.clauses, from, to, q.limits, shipped[i]!)));
  const lanes = chains.map((chain, i) => redisLane(store, chain, q, from, to, shipped[i]!, matches[i]!));
  if (home)
    lanes.unshift(
      ...(await home.lanes({ clauses: q.clauses, dateFrom: from, dateTo: to }, Object.fromEntries(chains.map((c, i) => [c, shipped[i]!])))),
    );
  return lanes;
}

/** One page of matches and the total. */
export async function searchMatches(store: AuditStore, q: AuditSearch): Promise<MatchPage> {
  const asOf = q.asOf ?? Date.now() + 1;
  const to = Math.min(asOf, q.dateTo ?? Infinity);
  const from = q.dateFrom ?? -Infinity;
  const desc = q.sort !== 'date';
  const lanes = (await lanesOf(store, q, from, to)).filter((l) => l.total > 0);
  const sum = lanes.reduce((n, l) => n + l.total, 0);
  if (q.count <= 0 || !lanes.length) return { total: sum, items: [], asOf };
  if (q.before) return { total: sum, items: (await mergeAfter(lanes, q.before, q.count, !desc)).reverse(), asOf };
  let after = q.after;
  const offset = q.offset ?? 0;
  if (!after && offset > 0) {
    // A link without a key: walk to the offset, page by page.
    if (offset > MAX_SEEK)
      throw new FhirError(
        400,
        'too-costly',
        'this page link does not say where it is in the trail (it is from an earlier version): search again from the first page',
      );
    for (let skipped = 0; skipped < offset;) {
      const step = await mergeAfter(lanes, after, Math.min(1000, offset - skipped), desc);
      if (!step.length) return { total: sum, items: [], asOf };
      skipped += step.length;
      after = keyOf(step[step.length - 1]!);
    }
  }
  return { total: sum, items: await mergeAfter(lanes, after, q.count, desc), asOf };
}

/** The AuditEvents of matches (an entry dropped since the search began is left out). */
export function eventsOf(items: Item[]): AuditEvent[] {
  return items.filter((i) => i.event).map((i) => decodeStored(i.event));
}

export async function search(store: AuditStore, q: AuditSearch): Promise<SearchResult> {
  const { items, ...rest } = await searchMatches(store, q);
  return { ...rest, events: eventsOf(items), ...(items.length ? { first: keyOf(items[0]!), last: keyOf(items[items.length - 1]!) } : {}) };
}

/** Every match, page by page (exports): each page starts after the last match of the one before. */
export async function* searchAll(
  store: AuditStore,
  q: Omit<AuditSearch, 'count' | 'offset' | 'after' | 'before'>,
  pageSize: number,
): AsyncGenerator<AuditEvent[]> {
  const asOf = q.asOf ?? Date.now() + 1;
  let after: Key | undefined;
  for (;;) {
    const page = await searchMatches(store, { ...q, asOf, count: pageSize, ...(after ? { after } : {}) });
    const events = eventsOf(page.items);
    if (events.length) yield events;
    if (page.items.length < pageSize) return;
    after = keyOf(page.items[page.items.length - 1]!);
  }
}
