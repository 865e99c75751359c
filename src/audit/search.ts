import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis/connection.js';
import type { AuditEvent } from './audit-event.js';
import type { IndexParam } from './indexes.js';
import type { AuditStore } from './store.js';

/**
 * Runs an AuditEvent search against the index sorted sets, in one script: each parameter's
 * values are OR-ed (ZUNIONSTORE into a scratch set), parameters are AND-ed (ZINTERSTORE), the date
 * range is a score range, and the page is a ZREVRANGEBYSCORE (or ascending) LIMIT. The scratch sets
 * are deleted before the script returns. A search with no parameter reads the `all` index
 * directly, so date-only searches and plain paging stay O(log n + page).
 *
 * `asOf` is the upper score bound fixed when the first page was served: later pages of the same
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
}

export interface SearchResult {
  total: number;
  events: AuditEvent[];
  /** The upper score bound used (pass back for the next page). */
  asOf: number;
}

const SEARCH_SCRIPT = `
local nScratch = tonumber(ARGV[1])
local nClauses = tonumber(ARGV[2])
local min, max, dir, offset, count = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local i = 8
local clauseKeys = {}
for c = 1, nClauses do
  local k = tonumber(ARGV[i])
  local keys = {}
  for j = 1, k do keys[j] = KEYS[tonumber(ARGV[i + j])] end
  i = i + k + 1
  if k == 1 then
    clauseKeys[c] = keys[1]
  else
    local scratch = KEYS[c]
    -- Scores are the recorded time in every index: MIN keeps them (the default SUM would not).
    keys[#keys + 1] = 'AGGREGATE'
    keys[#keys + 1] = 'MIN'
    redis.call('ZUNIONSTORE', scratch, k, unpack(keys))
    clauseKeys[c] = scratch
  end
end
local final = clauseKeys[1]
if nClauses > 1 then
  final = KEYS[nScratch]
  clauseKeys[#clauseKeys + 1] = 'AGGREGATE'
  clauseKeys[#clauseKeys + 1] = 'MIN'
  redis.call('ZINTERSTORE', final, nClauses, unpack(clauseKeys))
end
local total = redis.call('ZCOUNT', final, min, max)
local ids
if tonumber(count) == 0 then
  ids = {}
elseif dir == 'desc' then
  ids = redis.call('ZREVRANGEBYSCORE', final, max, min, 'LIMIT', offset, count)
else
  ids = redis.call('ZRANGEBYSCORE', final, min, max, 'LIMIT', offset, count)
end
for s = 1, nScratch do redis.call('DEL', KEYS[s]) end
table.insert(ids, 1, total)
return ids
`;

interface SearchScripts {
  auditSearch(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<[number, ...string[]]>;
}

const defined = new WeakSet<RedisClient>();

function scripts(redis: RedisClient): RedisClient & SearchScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('auditSearch', { lua: SEARCH_SCRIPT });
    defined.add(redis);
  }
  return redis as RedisClient & SearchScripts;
}

/** The ids of one page of matches, and the total. */
export async function searchIds(store: AuditStore, q: AuditSearch): Promise<{ total: number; ids: string[]; asOf: number }> {
  const { redis, keyspace } = store;
  const clauses = q.clauses.length ? q.clauses : [{ param: 'all' as const, values: ['*'] }];
  const asOf = q.asOf ?? Date.now() + 1;
  const upper = Math.min(asOf, q.dateTo ?? Infinity);
  const lower = q.dateFrom ?? -Infinity;
  // Scratch keys first (one per clause plus the intersection), then the index keys.
  const id = randomUUID();
  const nScratch = clauses.length + 1;
  const keys: string[] = [];
  for (let n = 1; n <= nScratch; n++) keys.push(keyspace.auditScratch(id, n));
  const argv: Array<string | number> = [nScratch, clauses.length, fmt(lower), fmt(upper), q.sort === 'date' ? 'asc' : 'desc', q.offset ?? 0, q.count];
  for (const clause of clauses) {
    argv.push(clause.values.length);
    for (const value of clause.values) {
      keys.push(keyspace.auditIndex(clause.param, value));
      argv.push(keys.length);
    }
  }
  const [total, ...ids] = await scripts(redis).auditSearch(keys.length, ...keys, ...argv);
  return { total: Number(total), ids, asOf };
}

function fmt(n: number): string {
  return n === Infinity ? '+inf' : n === -Infinity ? '-inf' : String(n);
}

export async function search(store: AuditStore, q: AuditSearch): Promise<SearchResult> {
  const { total, ids, asOf } = await searchIds(store, q);
  return { total, events: await store.events(ids), asOf };
}
