import { FhirError } from '../http/fhir-api.js';
import type { AuditEvent } from './audit-event.js';
import type { ChainName } from './chain.js';
import type { IndexParam } from './indexes.js';
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

export interface Clause {
  param: IndexParam;
  /** Alternatives (a comma-separated parameter value): any of them matches. */
  values: string[];
}

/** How many matches of each chain come before a page, in the search's order (merged searches). */
export type Positions = Partial<Record<ChainName, number>>;

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

export interface RefsPage {
  total: number;
  refs: EventRef[];
  asOf: number;
  next: Positions;
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

async function chainMatches(store: AuditStore, chain: ChainName, clauses: Clause[], from: number, to: number, limits: AuditSearch['limits'] = {}): Promise<Matches> {
  const maxCandidates = limits.maxCandidates ?? MAX_CANDIDATES;
  const readWhole = limits.readWhole ?? 4 * maxCandidates;
  const { redis, keyspace } = store;
  const { lo, hi } = await seqWindow(redis, keyspace.auditStream(chain), from, to);
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

interface Lane {
  chain: ChainName;
  /** Tie-break between chains at the same trail time: the order of `chains()`. */
  rank: number;
  m: Matches;
  total: number;
}

interface Item {
  seq: number;
  t: number;
}

/** Matches [from, to) of a lane in the search's order, with their trail times. */
async function laneItems(store: AuditStore, lane: Lane, from: number, to: number, desc: boolean): Promise<Item[]> {
  const seqs = await page(store, lane.m, from, to - from, desc);
  const entries = await store.entriesAt(seqs.map((seq) => ({ chain: lane.chain, seq })));
  const items = seqs.map((seq, i) => ({ seq, t: entries[i]?.t ?? NaN }));
  // An entry purged since the search began keeps its place: it takes its neighbour's time.
  for (let i = 0; i < items.length; i++) if (Number.isNaN(items[i]!.t)) items[i]!.t = items[i - 1]?.t ?? items.find((x) => !Number.isNaN(x.t))?.t ?? 0;
  return items;
}

/**
 * `count` matches from `start` on, merged over the lanes by trail time (ties: lane rank), going
 * forward (the page) or backward (the page before it, in reverse). Each lane is read in chunks,
 * only as far as the merge reaches.
 */
async function merge(store: AuditStore, lanes: Lane[], start: Positions, count: number, desc: boolean, forward: boolean): Promise<{ refs: EventRef[]; end: Positions }> {
  const chunk = Math.min(1000, Math.max(16, 2 * Math.ceil(count / lanes.length)));
  const state = lanes.map((lane) => {
    const pos = Math.min(start[lane.chain] ?? 0, lane.total);
    return { lane, pos, edge: pos, buf: [] as Item[] };
  });
  // Does item a (of lane ra) come before item b (of lane rb) in the search's order?
  const first = (a: Item, ra: number, b: Item, rb: number) => (a.t === b.t ? ra < rb : desc ? a.t > b.t : a.t < b.t);
  const refs: EventRef[] = [];
  while (refs.length < count) {
    await Promise.all(
      state
        .filter((s) => !s.buf.length && (forward ? s.edge < s.lane.total : s.edge > 0))
        .map(async (s) => {
          if (forward) {
            const to = Math.min(s.lane.total, s.edge + chunk);
            s.buf = await laneItems(store, s.lane, s.edge, to, desc);
            s.edge = to;
          } else {
            const from = Math.max(0, s.edge - chunk);
            s.buf = (await laneItems(store, s.lane, from, s.edge, desc)).reverse();
            s.edge = from;
          }
        }),
    );
    let best: (typeof state)[number] | undefined;
    for (const s of state) {
      const head = s.buf[0];
      if (!head) continue;
      if (!best) best = s;
      else if (forward ? first(head, s.lane.rank, best.buf[0]!, best.lane.rank) : first(best.buf[0]!, best.lane.rank, head, s.lane.rank)) best = s;
    }
    if (!best) break;
    refs.push({ chain: best.lane.chain, seq: best.buf.shift()!.seq });
    best.pos += forward ? 1 : -1;
  }
  return { refs: forward ? refs : refs.reverse(), end: Object.fromEntries(state.map((s) => [s.lane.chain, s.pos])) as Positions };
}

function sumOf(p: Positions): number {
  return Object.values(p).reduce<number>((sum, n) => sum + (n ?? 0), 0);
}

/** The entries of one page of matches, the total, and where the pages around it start. */
export async function searchRefs(store: AuditStore, q: AuditSearch): Promise<RefsPage> {
  const asOf = q.asOf ?? Date.now() + 1;
  const to = Math.min(asOf, q.dateTo ?? Infinity);
  const from = q.dateFrom ?? -Infinity;
  const desc = q.sort !== 'date';
  const chains = await store.chains();
  const matches = await Promise.all(chains.map((chain) => chainMatches(store, chain, q.clauses, from, to, q.limits)));
  const lanes = chains.map((chain, rank) => ({ chain, rank, m: matches[rank]!, total: total(matches[rank]!) }));
  const sum = lanes.reduce((n, l) => n + l.total, 0);
  const offset = q.offset ?? 0;
  const live = lanes.filter((l) => l.total > 0);

  if (live.length <= 1) {
    // One chain has every match: a page is a slice of it.
    const lane = live[0];
    const seqs = lane && q.count > 0 ? await page(store, lane.m, offset, q.count, desc) : [];
    const at = (n: number): Positions => (lane ? { [lane.chain]: Math.min(n, lane.total) } : {});
    return { total: sum, refs: seqs.map((seq) => ({ chain: lane!.chain, seq })), asOf, next: at(offset + seqs.length), ...(offset > 0 ? { previous: at(Math.max(0, offset - q.count)) } : {}) };
  }

  let start = q.positions;
  if (!start || sumOf(start) !== offset) {
    if (offset > MAX_SEEK) throw new FhirError(400, 'too-costly', 'this page link does not say where it is in the trail (it is from an earlier version): search again from the first page');
    start = offset ? (await merge(store, live, {}, offset, desc, true)).end : {};
  }
  const { refs, end } = q.count > 0 ? await merge(store, live, start, q.count, desc, true) : { refs: [], end: start };
  const previous = offset > 0 ? (await merge(store, live, start, Math.min(q.count, offset), desc, false)).end : undefined;
  return { total: sum, refs, asOf, next: end, ...(previous ? { previous } : {}) };
}

export async function search(store: AuditStore, q: AuditSearch): Promise<SearchResult> {
  const { refs, ...rest } = await searchRefs(store, q);
  return { ...rest, events: await store.eventsAt(refs) };
}

/** Every match, page by page (exports): each page starts where the one before ended. */
export async function* searchAll(store: AuditStore, q: Omit<AuditSearch, 'count' | 'offset' | 'positions'>, pageSize: number): AsyncGenerator<EventRef[]> {
  const asOf = q.asOf ?? Date.now() + 1;
  let offset = 0;
  let positions: Positions = {};
  for (;;) {
    const page = await searchRefs(store, { ...q, asOf, count: pageSize, offset, positions });
    if (page.refs.length) yield page.refs;
    if (page.refs.length < pageSize) return;
    offset += page.refs.length;
    positions = page.next;
  }
}
