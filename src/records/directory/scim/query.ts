import { resolveAttributePath, valuesAt, type ResolvedAttribute } from './attribute-paths.js';
import { compileFilter, type CompiledFilter, type IndexedAttributes, type IndexLookup } from './filter.js';
import { invalidValue, ScimError } from '../../../domain/scim/errors.js';
import { findAttribute } from './attribute-paths.js';
import type { ResourceTypeDef } from './schema-definitions.js';

/**
 * Listing and searching (RFC 7644 §3.4.2): filter, sort, page. Equality on an indexed attribute
 * reads only the matching records; any other filter, or a sort on anything but creation time,
 * examines at most `maxFilterScan` records and is refused with `tooMany` beyond that, so no
 * request can make the server read an unbounded directory.
 */

export interface ResourceQuery {
  filter?: string;
  sortBy?: string;
  sortOrder?: string;
  /** 1-based (RFC 7644 §3.4.2.4). */
  startIndex?: number;
  count?: number;
}

export interface QueryLimits {
  maxFilterScan: number;
  maxPageSize: number;
}

export interface QueryPage<T> {
  totalResults: number;
  startIndex: number;
  resources: T[];
}

export interface LoadOptions {
  /** Group members must be loaded to evaluate the filter (members are costly to list). */
  members: boolean;
}

/** What a store offers the query runner. */
export interface QuerySource<T> {
  total(): Promise<number>;
  /** Ids in creation order (newest first when `descending`). */
  idsInOrder(offset: number, count: number, descending: boolean): Promise<string[]>;
  idsFor(lookup: IndexLookup): Promise<string[]>;
  /** The resources in the order of `ids`; ids that no longer exist are left out. */
  load(ids: string[], opts: LoadOptions): Promise<T[]>;
}

const BATCH = 500;

function pageBounds(q: ResourceQuery, limits: QueryLimits): { startIndex: number; count: number } {
  const startIndex = Math.max(1, Math.floor(q.startIndex ?? 1));
  const count = Math.min(Math.max(0, Math.floor(q.count ?? limits.maxPageSize)), limits.maxPageSize);
  return { startIndex, count };
}

function sortKey(resolved: ResolvedAttribute): (r: Record<string, unknown>) => string | number | boolean | undefined {
  const target = resolved.sub ?? resolved.attr;
  return (r) => {
    const values = valuesAt(r, resolved);
    // Multi-valued: the primary value when there is one (RFC 7644 §3.4.2.3), else the first.
    const items = resolved.attr.multiValued && !resolved.sub ? values : undefined;
    const v = items
      ? ((items.find((i) => (i as { primary?: boolean }).primary) ?? items[0]) as Record<string, unknown> | undefined)?.value
      : values[0];
    if (v === undefined || v === null) return undefined;
    if (target.type === 'dateTime' && typeof v === 'string') return Date.parse(v);
    if (typeof v === 'string') return target.caseExact ? v : v.toLowerCase();
    return v as number | boolean;
  };
}

function resolveSort(rt: ResourceTypeDef, sortBy: string): ResolvedAttribute {
  const found = resolveAttributePath(rt, sortBy);
  const def = found?.sub ?? found?.attr;
  if (!found || !def || def.returned === 'never') throw invalidValue(`sortBy names no sortable attribute of ${rt.name}`);
  if (def.type === 'complex') {
    const value = findAttribute(def.subAttributes, 'value');
    if (!value || found.sub) throw invalidValue(`sortBy ${found.path} is complex; name one of its sub-attributes`);
    return found;
  }
  return found;
}

function compareKeys(a: unknown, b: unknown): number {
  // Unassigned values sort after every assigned one, whatever the order (RFC 7644 §3.4.2.3).
  if (a === undefined) return b === undefined ? 0 : 1;
  if (b === undefined) return -1;
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

export async function runQuery<T extends Record<string, unknown>>(
  rt: ResourceTypeDef,
  source: QuerySource<T>,
  indexed: IndexedAttributes,
  q: ResourceQuery,
  limits: QueryLimits,
): Promise<QueryPage<T>> {
  const { startIndex, count } = pageBounds(q, limits);
  const order = (q.sortOrder ?? 'ascending').toLowerCase();
  if (order !== 'ascending' && order !== 'descending') throw invalidValue('sortOrder must be ascending or descending');
  const descending = order === 'descending';
  const filter: CompiledFilter | undefined = q.filter !== undefined ? compileFilter(q.filter, rt, indexed) : undefined;
  const sort = q.sortBy ? resolveSort(rt, q.sortBy) : undefined;
  const byCreation = !sort || sort.path === 'meta.created';
  const loadOpts: LoadOptions = { members: [...(filter?.reads ?? [])].some((p) => p.startsWith('members')) };

  if (!filter && byCreation) {
    const total = await source.total();
    const ids = count > 0 ? await source.idsInOrder(startIndex - 1, count, descending) : [];
    return { totalResults: total, startIndex, resources: await source.load(ids, loadOpts) };
  }

  let candidates: string[];
  if (filter?.lookups) {
    const found = await Promise.all(filter.lookups.map((l) => source.idsFor(l)));
    candidates = [...new Set(found.flat())];
  } else {
    const total = await source.total();
    if (total > limits.maxFilterScan) {
      const why = filter
        ? `the filter can use no index (equality on ${Object.keys(indexed).join(', ')} can)`
        : `sorting by ${sort!.path} needs every ${rt.name} record`;
      throw new ScimError(
        400,
        'tooMany',
        `${why} and there are ${total} ${rt.name} resources, more than the ${limits.maxFilterScan} this server examines per request; narrow the filter with an indexed equality`,
      );
    }
    candidates = await source.idsInOrder(0, total, false);
  }

  const matches: T[] = [];
  for (let i = 0; i < candidates.length; i += BATCH) {
    const loaded = await source.load(candidates.slice(i, i + BATCH), loadOpts);
    for (const r of loaded) if (!filter || filter.test(r)) matches.push(r);
  }

  const created = (r: T) => (r.meta as { created?: string } | undefined)?.created ?? '';
  const key = sort ? sortKey(sort) : (r: T) => created(r);
  const keyed = matches.map((r) => ({ r, k: key(r), c: created(r), id: String(r.id) }));
  keyed.sort((a, b) => {
    const primary = compareKeys(a.k, b.k);
    if (primary !== 0) return descending && a.k !== undefined && b.k !== undefined ? -primary : primary;
    return a.c < b.c ? -1 : a.c > b.c ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  const page = keyed.slice(startIndex - 1, startIndex - 1 + count).map((x) => x.r);
  return { totalResults: matches.length, startIndex, resources: page };
}
