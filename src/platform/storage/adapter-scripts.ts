import type { RedisClient } from '../redis/connection.js';

/**
 * Lua scripts of the oidc-provider adapter. Each touches only keys of one hash slot (one entry, or
 * one grant's `{grantId}` keys), so they are Redis Cluster safe.
 */

/**
 * Replaces an entry wholesale (DEL first, so a stale `consumed` field or an old TTL never survives
 * an upsert). KEYS[1] entry; ARGV payload JSON, TTL in ms or '', consumed or ''.
 */
const WRITE_ENTRY = `
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'payload', ARGV[1], 'consumed', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'payload', ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
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
 * Adds an entry key to its grant index, refusing (0) when the grant was destroyed, unless ARGV[4]
 * is '1' (index it all the same). Owner indexes (owner-index.ts) use the same script with their
 * own index and revoked mark. Scores are
 * expiry times in ms (+inf when the entry has none) so members that expired can be pruned and the
 * index cannot grow without bound on a long-lived grant. The index TTL only ever grows: it is set
 * when the index is new, extended when shorter than the new member's, and dropped for a member
 * without TTL. KEYS[1] grant index, KEYS[2] revoked-grant mark; ARGV[1] member key, ARGV[2] TTL in
 * ms or '', ARGV[3] prune grace in ms, ARGV[4] '1' to index despite the mark (optional).
 */
const GRANT_INDEX_ADD = `
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('PTTL', KEYS[1])
if ARGV[2] == '' then
  redis.call('ZADD', KEYS[1], '+inf', ARGV[1])
  redis.call('PERSIST', KEYS[1])
else
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[1])
  if current == -2 or (current >= 0 and current < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[3])))
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
    redis.defineCommand('oidcConsumeEntry', { numberOfKeys: 1, lua: CONSUME_ENTRY });
    redis.defineCommand('oidcGrantIndexAdd', { numberOfKeys: 2, lua: GRANT_INDEX_ADD });
    redis.defineCommand('oidcGrantTeardown', { numberOfKeys: 3, lua: GRANT_TEARDOWN });
    redis.defineCommand('oidcOwnerTeardown', { numberOfKeys: 2, lua: OWNER_TEARDOWN });
    redis.defineCommand('oidcOwnerReinstate', { numberOfKeys: 2, lua: OWNER_REINSTATE });
    defined.add(redis);
  }
  return redis as RedisClient & AdapterScripts;
}
