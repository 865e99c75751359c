import type { RedisClient } from '../../platform/redis/connection.js';

/**
 * Lua scripts of the user directory. All keys carry the `{scim}` hash tag (see Keyspace), so each
 * script runs on one Cluster slot and applies a change wholly or not at all: a record, its
 * unique userName index, its lookup indexes and group memberships never disagree. Every write is
 * compare-and-set on the record's version counter `v`.
 *
 * Replies are arrays whose first element says what happened: `ok` (then the new version),
 * `exists`, `gone`, `version` (then the current version), `taken` (userName in use), `retry`
 * (memberships changed under us) or `nouser` (then the id).
 */

/**
 * Shared opening of the write scripts: ARGV[1] id, ARGV[2] expected version ('' = create). Sets
 * `v` to the current version, or answers 'exists' / 'gone' / 'version' without writing.
 */
const CREATE_OR_CHECK_VERSION = `
local id = ARGV[1]
local v = 0
if ARGV[2] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
else
  local current = redis.call('HGET', KEYS[1], 'v')
  if not current then return {'gone'} end
  if current ~= ARGV[2] then return {'version', current} end
  v = tonumber(current)
end
`;

/**
 * Creates (ARGV[2] = '') or updates a user. KEYS: record, users zset, new userName index, old
 * userName index, then ARGV[7] index sets to leave, then the index sets to join. ARGV: id,
 * expected version, json, lastModified, creation score, password hash or '', count to leave.
 */
const USER_WRITE = `
${CREATE_OR_CHECK_VERSION}local owner = redis.call('GET', KEYS[3])
if owner and owner ~= id then return {'taken'} end
if KEYS[4] ~= KEYS[3] and redis.call('GET', KEYS[4]) == id then redis.call('DEL', KEYS[4]) end
redis.call('SET', KEYS[3], id)
local leave = tonumber(ARGV[7])
for i = 5, 4 + leave do redis.call('SREM', KEYS[i], id) end
for i = 5 + leave, #KEYS do redis.call('SADD', KEYS[i], id) end
v = v + 1
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'v', v, 'lm', ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'pw', ARGV[6]) end
if ARGV[2] == '' then redis.call('ZADD', KEYS[2], ARGV[5], id) end
return {'ok', tostring(v)}
`;

/**
 * Deletes a user and takes it out of its groups (whose versions change). KEYS: record, users
 * zset, userName index, user's groups set, ARGV[3] index sets, then per group its record and its
 * members set. ARGV: id, expected version, index count, lastModified for the groups, group ids.
 */
const USER_DELETE = `
local id = ARGV[1]
local current = redis.call('HGET', KEYS[1], 'v')
if not current then return {'gone'} end
if current ~= ARGV[2] then return {'version', current} end
local nIdx = tonumber(ARGV[3])
local nGroups = #ARGV - 4
if redis.call('SCARD', KEYS[4]) ~= nGroups then return {'retry'} end
for g = 1, nGroups do
  if redis.call('SISMEMBER', KEYS[4], ARGV[4 + g]) == 0 then return {'retry'} end
end
local base = 4 + nIdx
for g = 1, nGroups do
  redis.call('SREM', KEYS[base + 2 * g], id)
  if redis.call('EXISTS', KEYS[base + 2 * g - 1]) == 1 then
    redis.call('HINCRBY', KEYS[base + 2 * g - 1], 'v', 1)
    redis.call('HSET', KEYS[base + 2 * g - 1], 'lm', ARGV[4])
  end
end
if redis.call('GET', KEYS[3]) == id then redis.call('DEL', KEYS[3]) end
for i = 5, 4 + nIdx do redis.call('SREM', KEYS[i], id) end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], id)
return {'ok'}
`;

/** Rehash on sign-in: replaces the hash only if it is still the one that was verified. */
const REPLACE_PASSWORD_HASH = `
if redis.call('HGET', KEYS[1], 'pw') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'pw', ARGV[2])
  return 1
end
return 0
`;

/**
 * Creates (ARGV[2] = '') or updates a group and its membership. KEYS: record, groups zset,
 * members set, ARGV[6] index sets to leave, ARGV[7] to join, per added member its user record
 * and groups set, per removed member its groups set. ARGV: id, expected version, json,
 * lastModified, creation score, counts (leave, join, added, removed), added ids, removed ids.
 */
const GROUP_WRITE = `
${CREATE_OR_CHECK_VERSION}local leave, join, nAdd, nRemove = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local base = 3 + leave + join
for m = 1, nAdd do
  if redis.call('EXISTS', KEYS[base + 2 * m - 1]) == 0 then return {'nouser', ARGV[9 + m]} end
end
for i = 4, 3 + leave do redis.call('SREM', KEYS[i], id) end
for i = 4 + leave, base do redis.call('SADD', KEYS[i], id) end
for m = 1, nAdd do
  redis.call('SADD', KEYS[3], ARGV[9 + m])
  redis.call('SADD', KEYS[base + 2 * m], id)
end
for m = 1, nRemove do
  redis.call('SREM', KEYS[3], ARGV[9 + nAdd + m])
  redis.call('SREM', KEYS[base + 2 * nAdd + m], id)
end
v = v + 1
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'v', v, 'lm', ARGV[4])
if ARGV[2] == '' then redis.call('ZADD', KEYS[2], ARGV[5], id) end
return {'ok', tostring(v)}
`;

/**
 * Deletes a group. KEYS: record, groups zset, members set, ARGV[3] index sets, then the groups
 * set of each member. ARGV: id, expected version, index count.
 */
const GROUP_DELETE = `
local current = redis.call('HGET', KEYS[1], 'v')
if not current then return {'gone'} end
if current ~= ARGV[2] then return {'version', current} end
for i = 4, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok'}
`;

export type ScriptReply = [string, string?];

export interface DirectoryScripts {
  scimUserWrite(numKeys: number, ...keysAndArgs: string[]): Promise<ScriptReply>;
  scimUserDelete(numKeys: number, ...keysAndArgs: string[]): Promise<ScriptReply>;
  scimReplacePasswordHash(record: string, expected: string, replacement: string): Promise<number>;
  scimGroupWrite(numKeys: number, ...keysAndArgs: string[]): Promise<ScriptReply>;
  scimGroupDelete(numKeys: number, ...keysAndArgs: string[]): Promise<ScriptReply>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the scripts on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function directoryScripts(redis: RedisClient): RedisClient & DirectoryScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('scimUserWrite', { lua: USER_WRITE });
    redis.defineCommand('scimUserDelete', { lua: USER_DELETE });
    redis.defineCommand('scimReplacePasswordHash', { numberOfKeys: 1, lua: REPLACE_PASSWORD_HASH });
    redis.defineCommand('scimGroupWrite', { lua: GROUP_WRITE });
    redis.defineCommand('scimGroupDelete', { lua: GROUP_DELETE });
    defined.add(redis);
  }
  return redis as RedisClient & DirectoryScripts;
}

/** Calls a variadic script: keys first, then arguments. */
export function keysThenArgs(keys: string[], args: string[]): [number, ...string[]] {
  return [keys.length, ...keys, ...args];
}
