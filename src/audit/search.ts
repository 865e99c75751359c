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
 * Both chains are searched: the disclosure archive holds what retention moved out of the main
 * chain, so it is older than anything left there; newest first reads main then archive.
 *
 * `asOf` is the upper time bound fixed when the first page was served: later pages of the same
 * search ignore events recorded afterwards, so offsets do not shift while an officer pages.
 */

export interface Clause {
  param: IndexParam;
  /** Alternatives (a comma-separated parameter value): any of them matches. */
  values: string[];
}

export interface AuditSearch {
  clauses: Clause[];
  dateFrom?: number;
  dateTo?: number;
  sort?: 'date' | '-date';
  count: number;
  offset?: number;
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

/** The entries of one page of matches, and the total. */
export async function searchRefs(store: AuditStore, q: AuditSearch): Promise<{ total: number; refs: EventRef[]; asOf: number }> {
  const asOf = q.asOf ?? Date.now() + 1;
  const to = Math.min(asOf, q.dateTo ?? Infinity);
  const from = q.dateFrom ?? -Infinity;
  const desc = q.sort !== 'date';
  const order: ChainName[] = desc ? ['main', 'archive'] : ['archive', 'main'];
  const matches = await Promise.all(order.map((chain) => chainMatches(store, chain, q.clauses, from, to, q.limits)));
  const refs: EventRef[] = [];
  let skip = q.offset ?? 0;
  let want = q.count;
  for (const [i, m] of matches.entries()) {
    const n = total(m);
    if (skip >= n) {
      skip -= n;
      continue;
    }
    if (want > 0) {
      const seqs = await page(store, m, skip, want, desc);
      for (const seq of seqs) refs.push({ chain: order[i]!, seq });
      want -= seqs.length;
    }
    skip = 0;
  }
  return { total: matches.reduce((sum, m) => sum + total(m), 0), refs, asOf };
}

export async function search(store: AuditStore, q: AuditSearch): Promise<SearchResult> {
  const { total, refs, asOf } = await searchRefs(store, q);
  return { total, events: await store.eventsAt(refs), asOf };
}
