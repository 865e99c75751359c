import { FhirError } from '../http/fhir-api.js';
import type { AuditEvent } from './audit-event.js';
import type { ChainName } from './chain.js';
import { decodeStored } from './stored-event.js';
import type { Clause, Item, Lane, Positions } from './lane.js';

export type { Clause, Item, Lane, LaneKey, Positions } from './lane.js';
import { readSlice, seqWindow, sliceContains, slices, type Slice } from './postings.js';
import type { AuditStore } from './store.js';

/**
 * AuditEvent search over the posting lists (postings.ts), chain by chain: the date range becomes a
 * seq range; a search without parameters is that whole range, one parameter with one value is a
 * slice of one list (total and any page in O(log n)), and anything else starts from the smallest
 * clause and checks each of its seqs against the other clauses. Each parameter's values are
 * OR-ed, parameters are AND-ed.
 *
 * Every chain is searched: each shard (chain.ts) and the disclosure archive (what retention moved
 * out of the shards). When matches are in one chain only (one shard and nothing archived: the
 * usual case), a page is a slice of that chain's matches. Otherwise the chains' matches are merged
 * by trail time (each chain is in time order already), reading only as far as the page needs; a
 * page link then carries how far it got in each chain (`positions`), so the next page starts
 * there instead of merging everything before it again.
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
  offset?: number;
  /** Where `offset` is in each chain, from the page link that led here (merged searches). */
  positions?: Positions;
  asOf?: number;
  /** Bounds on a multi-parameter search (defaults below; config `audit.searchMaxCandidates`). */
  limits?: { maxCandidates?: number; readWhole?: number };
}

export interface EventRef {
  chain: ChainName;
  seq: number;
}

export interface SearchResult {
  total: number;
  events: AuditEvent[];
  /** The upper time bound used (pass back for the next page). */
  asOf: number;
  /** Where the next page starts in each chain (pass back as `positions` with offset + count). */
  next: Positions;
  /** Where the previous page starts in each chain, when there is one. */
  previous?: Positions;
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

async function chainMatches(store: AuditStore, chain: ChainName, clauses: Clause[], from: number, to: number, limits: AuditSearch['limits'] = {}, after = 0): Promise<Matches> {
  const maxCandidates = limits.maxCandidates ?? MAX_CANDIDATES;
  const readWhole = limits.readWhole ?? 4 * maxCandidates;
  const { redis, keyspace } = store;
  const window = await seqWindow(redis, keyspace.auditStream(chain), from, to);
  // Entries up to `after` are read from PostgreSQL (the shipper's watermark).
  const lo = Math.max(window.lo, after + 1);
  const hi = window.hi;
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
    throw new FhirError(400, 'too-costly', `this search would have to check ${driver.size} events; narrow it with a date range, a patient or an agent (at most ${maxCandidates})`);
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
 * Deepest offset a page link without positions may ask for in a merged search: reaching it means
 * merging everything before it. Links this server writes always carry positions.
 */
const MAX_SEEK = 10_000;


/** A chain's matches in Redis as a lane. */
function redisLane(store: AuditStore, chain: ChainName, m: Matches, desc: boolean): Lane {
  return {
    key: chain,
    total: total(m),
    async items(from, to) {
      const seqs = await page(store, m, from, to - from, desc);
      const entries = await store.entriesAt(seqs.map((seq) => ({ chain, seq })));
      const items: Array<Item | undefined> = entries.map((e) => (e ? { chain, seq: e.seq, t: e.t, event: e.event } : undefined));
      // An entry dropped since the search began (retention, or shipped and trimmed) keeps its
      // place with its neighbour's time and no event, so positions stay exact.
      return seqs.map((seq, i) => items[i] ?? { chain, seq, t: items[i - 1]?.t ?? items.find((x) => x)?.t ?? 0, event: '' });
    },
  };
}

/** Compares two matches in the search's order: trail time, then chain (byte order), then seq; all reversed newest first. */
function comparator(desc: boolean): (a: Item, b: Item) => number {
  const sign = desc ? -1 : 1;
  return (a, b) => sign * (a.t !== b.t ? a.t - b.t : a.chain !== b.chain ? (a.chain < b.chain ? -1 : 1) : a.seq - b.seq);
}

/**
 * `count` matches from `start` on, merged over the lanes in the search's order, going forward
 * (the page) or backward (the page before it, in reverse). Each lane is read in chunks, only as
 * far as the merge reaches.
 */
async function merge(lanes: Lane[], start: Positions, count: number, desc: boolean, forward: boolean): Promise<{ items: Item[]; end: Positions }> {
  const chunk = Math.min(1000, Math.max(16, 2 * Math.ceil(count / lanes.length)));
  const order = comparator(desc);
  const state = lanes.map((lane) => {
    const pos = Math.min(start[lane.key] ?? 0, lane.total);
    return { lane, pos, edge: pos, buf: [] as Item[] };
  });
  const out: Item[] = [];
  while (out.length < count) {
    await Promise.all(
      state
        .filter((s) => !s.buf.length && (forward ? s.edge < s.lane.total : s.edge > 0))
        .map(async (s) => {
          if (forward) {
            const to = Math.min(s.lane.total, s.edge + chunk);
            s.buf = await s.lane.items(s.edge, to);
            s.edge = to;
          } else {
            const from = Math.max(0, s.edge - chunk);
            s.buf = (await s.lane.items(from, s.edge)).reverse();
            s.edge = from;
          }
        }),
    );
    let best: (typeof state)[number] | undefined;
    for (const s of state) {
      const head = s.buf[0];
      if (!head) continue;
      const cmp = best ? order(head, best.buf[0]!) : 0;
      if (!best || (forward ? cmp < 0 : cmp > 0)) best = s;
    }
    if (!best) break;
    out.push(best.buf.shift()!);
    best.pos += forward ? 1 : -1;
  }
  return { items: forward ? out : out.reverse(), end: Object.fromEntries(state.map((s) => [s.lane.key, s.pos])) as Positions };
}

function sumOf(p: Positions): number {
  return Object.values(p).reduce<number>((sum, n) => sum + (n ?? 0), 0);
}

export interface MatchPage {
  total: number;
  items: Item[];
  asOf: number;
  next: Positions;
  previous?: Positions;
}

/**
 * The lanes of a search: each chain's Redis entries, and when the trail's home is PostgreSQL, what
 * it holds (store.home). The shipper's watermark per chain splits the two: entries up to it are
 * read from PostgreSQL, the rest from Redis, so an entry is in exactly one lane.
 */
async function lanesOf(store: AuditStore, q: AuditSearch, from: number, to: number, desc: boolean): Promise<Lane[]> {
  const chains = await store.chains();
  const home = store.home;
  const shipped = home ? await store.shippedSeqs(chains) : undefined;
  const matches = await Promise.all(chains.map((chain, i) => chainMatches(store, chain, q.clauses, from, to, q.limits, shipped?.[i] ?? 0)));
  const lanes = chains.map((chain, i) => redisLane(store, chain, matches[i]!, desc));
  if (home && shipped) lanes.unshift(await home.lane({ ...q, dateFrom: from, dateTo: to }, Object.fromEntries(chains.map((c, i) => [c, shipped[i]!])), desc));
  return lanes;
}

/** One page of matches, the total, and where the pages around it start. */
export async function searchMatches(store: AuditStore, q: AuditSearch): Promise<MatchPage> {
  const asOf = q.asOf ?? Date.now() + 1;
  const to = Math.min(asOf, q.dateTo ?? Infinity);
  const from = q.dateFrom ?? -Infinity;
  const desc = q.sort !== 'date';
  const lanes = await lanesOf(store, q, from, to, desc);
  const sum = lanes.reduce((n, l) => n + l.total, 0);
  const offset = q.offset ?? 0;
  const live = lanes.filter((l) => l.total > 0);

  if (live.length <= 1) {
    // One source has every match: a page is a slice of it.
    const lane = live[0];
    const items = lane && q.count > 0 && offset < lane.total ? await lane.items(offset, Math.min(lane.total, offset + q.count)) : [];
    const at = (n: number): Positions => (lane ? { [lane.key]: Math.min(n, lane.total) } : {});
    return { total: sum, items, asOf, next: at(offset + items.length), ...(offset > 0 ? { previous: at(Math.max(0, offset - q.count)) } : {}) };
  }

  let start = q.positions;
  if (!start || sumOf(start) !== offset) {
    if (offset > MAX_SEEK) throw new FhirError(400, 'too-costly', 'this page link does not say where it is in the trail (it is from an earlier version): search again from the first page');
    start = offset ? (await merge(live, {}, offset, desc, true)).end : {};
  }
  const { items, end } = q.count > 0 ? await merge(live, start, q.count, desc, true) : { items: [], end: start };
  const previous = offset > 0 ? (await merge(live, start, Math.min(q.count, offset), desc, false)).end : undefined;
  return { total: sum, items, asOf, next: end, ...(previous ? { previous } : {}) };
}

/** The AuditEvents of matches (an entry dropped since the search began is left out). */
export function eventsOf(items: Item[]): AuditEvent[] {
  return items.filter((i) => i.event).map((i) => decodeStored(i.event));
}

export async function search(store: AuditStore, q: AuditSearch): Promise<SearchResult> {
  const { items, ...rest } = await searchMatches(store, q);
  return { ...rest, events: eventsOf(items) };
}

/** Every match, page by page (exports): each page starts where the one before ended. */
export async function* searchAll(store: AuditStore, q: Omit<AuditSearch, 'count' | 'offset' | 'positions'>, pageSize: number): AsyncGenerator<AuditEvent[]> {
  const asOf = q.asOf ?? Date.now() + 1;
  let offset = 0;
  let positions: Positions = {};
  for (;;) {
    const page = await searchMatches(store, { ...q, asOf, count: pageSize, offset, positions });
    const events = eventsOf(page.items);
    if (events.length) yield events;
    if (page.items.length < pageSize) return;
    offset += page.items.length;
    positions = page.next;
  }
}
