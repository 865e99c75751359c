import type { RedisClient } from '../../platform/redis/connection.js';

/**
 * Lua scripts of the sign-in lock-out (records/directory/lockout.ts). Each touches one key, the account's
 * failure counter, so it is Cluster-safe without a hash tag. The counter holds the failures and
 * the password checks still in flight (reservations): a check is only made after a script has
 * taken a slot, so the number of checks can never outrun the limit, whatever the concurrency.
 */

/**
 * Takes a slot for one password check. KEYS: counter. ARGV: limit, memory seconds, lock seconds.
 * Returns 0 when the account is at the limit (locked, or every slot in flight), else the slot
 * number. A fresh counter is remembered `memory seconds`; the slot that reaches the limit starts
 * the lock at once, so a check that never settles (the process died) counts as the failure it
 * most likely was.
 */
const RESERVE = `
local limit = tonumber(ARGV[1])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= limit then return 0 end
n = redis.call('INCR', KEYS[1])
if n >= limit then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
elseif redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return n
`;

/**
 * Settles a slot whose password was wrong: the slot stays as a failure. KEYS: counter. ARGV:
 * limit, lock seconds, slot. Returns 1 when this failure is the one that locked the account (its
 * lock then runs from now), else 0. A counter reset meanwhile (a correct password, an
 * administrator) is left alone.
 */
const FAIL = `
local limit = tonumber(ARGV[1])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < limit or tonumber(ARGV[3]) < limit then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
`;

/**
 * Hands a slot back without resetting the count (a correct password for an account that may not
 * sign in). KEYS: counter. ARGV: limit, memory seconds, slot. The slot that had reached the limit
 * had started a lock; the count goes back to being remembered instead.
 */
const RELEASE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then return 0 end
redis.call('DECR', KEYS[1])
if tonumber(ARGV[3]) >= tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
`;

export interface LockoutScripts {
  lockoutReserve(counter: string, limit: number, memorySeconds: number, lockSeconds: number): Promise<number>;
  lockoutFail(counter: string, limit: number, lockSeconds: number, slot: number): Promise<number>;
  lockoutRelease(counter: string, limit: number, memorySeconds: number, slot: number): Promise<number>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the scripts on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function lockoutScripts(redis: RedisClient): RedisClient & LockoutScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('lockoutReserve', { numberOfKeys: 1, lua: RESERVE });
    redis.defineCommand('lockoutFail', { numberOfKeys: 1, lua: FAIL });
    redis.defineCommand('lockoutRelease', { numberOfKeys: 1, lua: RELEASE });
    defined.add(redis);
  }
  return redis as RedisClient & LockoutScripts;
}
