import type { RedisClient } from '../../platform/redis/connection.js';

/**
 * Lua scripts of the consent store. Every key they touch carries the `{consents}` hash tag (see
 * Keyspace), so each runs in one Cluster slot and applies wholly or not at all: a Consent is never
 * stored without its Provenance, its indexes or its outbox entry, nor withdrawn halfway.
 */

/**
 * Stores a new Consent. KEYS: record, provenance list, by-patient, by-client, all, remembered,
 * outbox, by-performer. ARGV: id, json, status, patient, client, performer, scopes JSON, end ms or
 * '', date ms, remembered key name, provenance JSON, remember '1'/'0', enqueue '1'/'0'. Returns 0
 * when the id is taken (nothing written), else 1.
 */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'v', '1', 'status', ARGV[3], 'patient', ARGV[4], 'client', ARGV[5], 'performer', ARGV[6], 'scopes', ARGV[7], 'end', ARGV[8], 'date', ARGV[9], 'rk', ARGV[10])
redis.call('RPUSH', KEYS[2], ARGV[11])
redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[9], ARGV[1])
if ARGV[12] == '1' then redis.call('ZADD', KEYS[6], ARGV[9], ARGV[1]) end
if ARGV[13] == '1' then redis.call('XADD', KEYS[7], '*', 'consent', ARGV[1], 'version', '1') end
return 1
`;

/**
 * Withdraws an active Consent if it is still at the version the caller read (compare-and-set).
 * KEYS: record, provenance list, remembered, outbox, grants set. ARGV: id, expected version, new
 * json, provenance JSON, enqueue '1'/'0'. Returns {'ok', version, grant ids}, {'gone'},
 * {'version'} (changed meanwhile: read again) or {'status', current status}.
 */
const WITHDRAW = `
local fields = redis.call('HMGET', KEYS[1], 'v', 'status')
if not fields[1] then return {'gone'} end
if fields[1] ~= ARGV[2] then return {'version'} end
if fields[2] ~= 'active' then return {'status', fields[2]} end
local v = tostring(tonumber(fields[1]) + 1)
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'v', v, 'status', 'inactive')
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[5] == '1' then redis.call('XADD', KEYS[4], '*', 'consent', ARGV[1], 'version', v) end
return {'ok', v, redis.call('SMEMBERS', KEYS[5])}
`;

/**
 * Ties a grant to a Consent, only while the Consent is active: a withdrawal that ran first wins.
 * KEYS: record, grants set, grant→consent. ARGV: grant id, consent id. Returns 'ok', 'gone' or
 * the Consent's status.
 */
const LINK_GRANT = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if status ~= 'active' then return status end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
return 'ok'
`;

/**
 * Settles an outbox entry: acknowledged and deleted, and with ARGV[2] = '1' copied to the dead
 * letters first (the FHIR server refused it for good). KEYS: outbox, dead letters. ARGV: entry id,
 * dead '1'/'0', consent id, reason, dead-letter cap, group.
 */
const SETTLE_OUTBOX = `
if ARGV[2] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[1], 'consent', ARGV[3], 'reason', ARGV[4])
end
redis.call('XACK', KEYS[1], ARGV[6], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`;

export type WithdrawReply = ['ok', string, string[]] | ['gone'] | ['version'] | ['status', string];

export interface ConsentScripts {
  consentCreate(...args: string[]): Promise<number>;
  consentWithdraw(...args: string[]): Promise<WithdrawReply>;
  consentLinkGrant(...args: string[]): Promise<string>;
  consentSettleOutbox(...args: string[]): Promise<number>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the scripts on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function consentScripts(redis: RedisClient): RedisClient & ConsentScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('consentCreate', { numberOfKeys: 8, lua: CREATE });
    redis.defineCommand('consentWithdraw', { numberOfKeys: 5, lua: WITHDRAW });
    redis.defineCommand('consentLinkGrant', { numberOfKeys: 3, lua: LINK_GRANT });
    redis.defineCommand('consentSettleOutbox', { numberOfKeys: 2, lua: SETTLE_OUTBOX });
    defined.add(redis);
  }
  return redis as RedisClient & ConsentScripts;
}
