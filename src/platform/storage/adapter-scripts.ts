import type { RedisClient } from '../redis/connection.js';

/**
 * Lua scripts of the oidc-provider adapter. All but INDEXED_WRITE touch only keys of one hash slot
 * (one entry, or one grant's `{grantId}` keys), so they are Redis Cluster safe; INDEXED_WRITE spans
 * slots and is used only where there are none (a single node or Sentinel).
 */

/**
 * Replaces an entry wholesale (DEL first, so a stale `consumed` field or an old TTL never survives
 * an upsert). Shared by WRITE_ENTRY and INDEXED_WRITE.
 */
const WRITE_ENTRY_FN = `
local function writeEntry(key, payload, ttl, consumed)
  redis.call('DEL', key)
  if consumed ~= '' then
    redis.call('HSET', key, 'payload', payload, 'consumed', consumed)
  else
    redis.call('HSET', key, 'payload', payload)
  end
  if ttl ~= '' then
    redis.call('PEXPIRE', key, ttl)
  end
end
`;

/** KEYS[1] entry; ARGV payload JSON, TTL in ms or '', consumed or ''. */
const WRITE_ENTRY = `${WRITE_ENTRY_FN}
writeEntry(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
`;

/**
 * Marks an entry consumed unless someone already did. Returns nil when the entry is gone (and
 * creates nothing, so no TTL-less husk), 1 when this caller consumed it, and the payload when
 * another caller had consumed it first (the caller needs its grantId to revoke the grant).
 * KEYS[1] entry; ARGV[1] epoch seconds.
 */
const CONSUME_ENTRY = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1]) == 1 then
  return 1
end
return redis.call('HGET', KEYS[1], 'payload')
`;

/**
 * Adds a member to an index (a grant's, or an owner's: owner-index.ts). Scores are expiry times in
 * ms (+inf when the entry has none) so members that expired can be pruned and the index cannot
 * grow without bound on a long-lived grant. The index TTL only ever grows: it is set when the
 * index is new, extended when shorter than the new member's, and dropped for a member without TTL.
 */
const INDEX_ADD_FN = `
local function indexAdd(index, member, ttl, grace)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local current = redis.call('PTTL', index)
  if ttl == '' then
    redis.call('ZADD', index, '+inf', member)
    redis.call('PERSIST', index)
  else
    local ms = tonumber(ttl)
    redis.call('ZADD', index, string.format('%d', now + ms), member)
    if current == -2 or (current >= 0 and current < ms) then
      redis.call('PEXPIRE', index, ms)
    end
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', now - tonumber(grace)))
end
`;

/**
 * Adds an entry key to its grant index, refusing (0) when the grant was destroyed, unless ARGV[4]
 * is '1' (index it all the same). Owner indexes use the same script with their own index and
 * revoked mark. KEYS[1] grant index, KEYS[2] revoked-grant mark; ARGV[1] member key, ARGV[2] TTL
 * in ms or '', ARGV[3] prune grace in ms, ARGV[4] '1' to index despite the mark (optional).
 */
const GRANT_INDEX_ADD = `${INDEX_ADD_FN}
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
indexAdd(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
`;

/**
 * Index adds and the entry write as one atomic step, for a single node or Sentinel: refuses (0,
 * nothing written) when any index's revoked mark is set, unless ARGV[6] is '1'; otherwise adds the
 * member to every index and writes the entry. Atomic, so a revocation runs wholly before (its mark
 * refuses the write) or wholly after (it finds the member): the after-write check of the Cluster
 * path (grant-index.ts) is not needed, and three round trips become one.
 * KEYS[1] entry, then pairs of (index, revoked mark); ARGV[1] payload JSON, ARGV[2] TTL in ms or
 * '', ARGV[3] consumed or '', ARGV[4] member, ARGV[5] prune grace in ms, ARGV[6] '1' to write
 * despite a mark.
 */
const INDEXED_WRITE = `${WRITE_ENTRY_FN}${INDEX_ADD_FN}
if ARGV[6] ~= '1' then
  for i = 2, #KEYS, 2 do
    if redis.call('EXISTS', KEYS[i + 1]) == 1 then
      return 0
    end
  end
end
for i = 2, #KEYS, 2 do
  indexAdd(KEYS[i], ARGV[4], ARGV[2], ARGV[5])
end
writeEntry(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
`;

/**
 * Empties a grant index and returns its members for the caller to delete. With ARGV[1] = '1' the
 * grant is dead: also delete the Grant entry and leave the revoked mark for ARGV[2] seconds.
 * KEYS[1] grant index, KEYS[2] revoked-grant mark, KEYS[3] Grant entry.
 */
const GRANT_TEARDOWN = `
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
if ARGV[1] == '1' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  redis.call('DEL', KEYS[3])
end
return members
`;

/**
 * Ends an owner's access: sets the revoked mark (so writes still in flight for the owner are
 * refused), empties the owner index and returns its members for the caller to end. With
 * ARGV[2] = '1' an owner with nothing indexed is left untouched (no mark is written for an id
 * that owns nothing, such as one that never existed).
 * KEYS[1] owner index, KEYS[2] revoked mark; ARGV[1] mark lifetime in seconds.
 */
const OWNER_TEARDOWN = `
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return members
`;

/**
 * Lets an owner have entries again and returns what was indexed for it meanwhile, for the caller
 * to end (nothing written while the owner was revoked may outlive its reinstatement). With
 * ARGV[1] = '1' only an owner whose revoked mark is set is touched.
 * KEYS[1] owner index, KEYS[2] revoked mark.
 */
const OWNER_REINSTATE = `
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {}
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
return members
`;

export interface AdapterScripts {
  oidcWriteEntry(entry: string, payload: string, ttlMs: string, consumed: string): Promise<number>;
  /** Variable key count: (numberOfKeys, entry, ...index/mark pairs, ...ARGV). */
  oidcIndexedWrite(numberOfKeys: number, ...keysAndArgs: string[]): Promise<number>;
  oidcConsumeEntry(entry: string, now: string): Promise<number | string | null>;
  oidcGrantIndexAdd(
    index: string,
    revoked: string,
    member: string,
    ttlMs: string,
    pruneGraceMs: string,
    evenIfRevoked?: '0' | '1',
  ): Promise<number>;
  oidcGrantTeardown(index: string, revoked: string, grantEntry: string, dead: '0' | '1', revokedTtlSeconds: string): Promise<string[]>;
  oidcOwnerTeardown(index: string, revoked: string, revokedTtlSeconds: string, onlyIfIndexed: '0' | '1'): Promise<string[]>;
  oidcOwnerReinstate(index: string, revoked: string, onlyIfRevoked: '0' | '1'): Promise<string[]>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the scripts on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function adapterScripts(redis: RedisClient): RedisClient & AdapterScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('oidcWriteEntry', { numberOfKeys: 1, lua: WRITE_ENTRY });
    redis.defineCommand('oidcIndexedWrite', { lua: INDEXED_WRITE });
    redis.defineCommand('oidcConsumeEntry', { numberOfKeys: 1, lua: CONSUME_ENTRY });
    redis.defineCommand('oidcGrantIndexAdd', { numberOfKeys: 2, lua: GRANT_INDEX_ADD });
    redis.defineCommand('oidcGrantTeardown', { numberOfKeys: 3, lua: GRANT_TEARDOWN });
    redis.defineCommand('oidcOwnerTeardown', { numberOfKeys: 2, lua: OWNER_TEARDOWN });
    redis.defineCommand('oidcOwnerReinstate', { numberOfKeys: 2, lua: OWNER_REINSTATE });
    defined.add(redis);
  }
  return redis as RedisClient & AdapterScripts;
}
