import type { RedisClient } from '../../../platform/redis/connection.js';

/**
 * Lua scripts of second factors (records/directory/factors/). The keys of one script all belong to
 * one user and share the user's `{mfa:<id>}` hash tag (Keyspace), so each is Cluster-safe. Every
 * rule that must hold under concurrency is decided inside one script: a TOTP step is accepted once,
 * a WebAuthn counter only moves forward, an enrolment is confirmed once, a challenge is taken once.
 */

/**
 * Accepts a TOTP time step if it is later than the last one accepted for the user.
 * KEYS: step, factors. ARGV: step, factor id, memory seconds.
 * Returns 1 (accepted), 0 (this step or a later one was already used), -1 (the factor is gone).
 */
const ACCEPT_STEP = `
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return -1 end
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
`;

/**
 * Stores a WebAuthn signature counter if it moved forward (a counter that stays put while non-zero
 * means a cloned authenticator), and the time of use.
 * KEYS: factors, usage. ARGV: factor id, new counter, now (ISO).
 * Returns 1 (stored), 0 (counter did not increase), -1 (the factor is gone).
 */
const ADVANCE_COUNTER = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local old = tonumber(redis.call('HGET', KEYS[2], 'counter:' .. ARGV[1]) or '0')
local new = tonumber(ARGV[2])
if (new > 0 or old > 0) and new <= old then return 0 end
redis.call('HSET', KEYS[2], 'counter:' .. ARGV[1], ARGV[2], 'used:' .. ARGV[1], ARGV[3])
return 1
`;

/**
 * Turns the pending TOTP enrolment into a factor, once: the confirming code's step is used up too.
 * KEYS: pending, factors, step. ARGV: pending value as read, factor id, factor JSON, step,
 * memory seconds, most factors. Returns 'ok', 'gone' (nothing pending, or another request confirmed
 * it), 'reused' (the step was already used) or 'full'.
 */
const CONFIRM_TOTP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'gone' end
local last = tonumber(redis.call('GET', KEYS[3]) or '-1')
if tonumber(ARGV[4]) <= last then return 'reused' end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then return 'full' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
return 'ok'
`;

/**
 * Adds a WebAuthn factor unless the credential is already registered for the user or the user
 * has the most factors allowed. KEYS: factors. ARGV: factor id, factor JSON, most factors, credential id.
 * Returns 'ok', 'duplicate' or 'full'.
 */
const ADD_WEBAUTHN = `
local all = redis.call('HVALS', KEYS[1])
if #all >= tonumber(ARGV[3]) then return 'full' end
for _, json in ipairs(all) do
  local f = cjson.decode(json)
  if f.credentialId == ARGV[4] then return 'duplicate' end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'ok'
`;

/**
 * Removes one factor and what its use left; with the last factor go the recovery codes, which
 * stand in for a factor and mean nothing without one. With ARGV[2] = '1' the last factor is kept
 * (a policy requires one): the check and the removal are one step, so two removals at once cannot
 * both pass it. KEYS: factors, usage, recovery codes. ARGV: factor id, keep-last flag.
 * Returns 1 when removed, 0 when there is no such factor, -1 when it is the last and was kept.
 */
const REMOVE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == '1' and redis.call('HLEN', KEYS[1]) <= 1 then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'counter:' .. ARGV[1], 'used:' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[3]) end
return 1
`;

/**
 * Removes every factor, the pending enrolment and the recovery codes, and bumps the generation so
 * that challenges handed out before are refused; 'forget' (the user is deleted) drops the generation too.
 * KEYS: factors, usage, step, pending, recovery, generation. ARGV: 'reset' | 'forget'.
 * Returns {factors removed, recovery codes removed}.
 */
const RESET = `
local factors = redis.call('HLEN', KEYS[1])
local codes = redis.call('SCARD', KEYS[5])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if ARGV[1] == 'forget' then redis.call('DEL', KEYS[6]) else redis.call('INCR', KEYS[6]) end
return {factors, codes}
`;

/** Takes a challenge (single use) with the current generation. KEYS: challenge, generation. Returns {challenge|nil, generation|nil}. */
const TAKE_CHALLENGE = `
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return {v or false, redis.call('GET', KEYS[2]) or false}
`;

/** What the directory shows of a user, in one command. KEYS: factors, usage, recovery. Returns {factor JSONs, usage pairs, codes left}. */
const SNAPSHOT = `
return {redis.call('HVALS', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('SCARD', KEYS[3])}
`;

export interface FactorScripts {
  mfaAcceptStep(step: string, factors: string, value: number, factorId: string, memorySeconds: number): Promise<number>;
  mfaAdvanceCounter(factors: string, usage: string, factorId: string, counter: number, now: string): Promise<number>;
  mfaConfirmTotp(
    pending: string,
    factors: string,
    step: string,
    pendingValue: string,
    factorId: string,
    factorJson: string,
    value: number,
    memorySeconds: number,
    most: number,
  ): Promise<'ok' | 'gone' | 'reused' | 'full'>;
  mfaAddWebAuthn(
    factors: string,
    factorId: string,
    factorJson: string,
    most: number,
    credentialId: string,
  ): Promise<'ok' | 'duplicate' | 'full'>;
  mfaRemove(factors: string, usage: string, recoveryCodes: string, factorId: string, keepLast: '0' | '1'): Promise<number>;
  mfaReset(
    factors: string,
    usage: string,
    step: string,
    pending: string,
    recovery: string,
    generation: string,
    mode: 'reset' | 'forget',
  ): Promise<[number, number]>;
  mfaTakeChallenge(challenge: string, generation: string): Promise<[string | null, string | null]>;
  mfaSnapshot(factors: string, usage: string, recovery: string): Promise<[string[], string[], number]>;
}

const SCRIPTS: Array<[keyof FactorScripts, number, string]> = [
  ['mfaAcceptStep', 2, ACCEPT_STEP],
  ['mfaAdvanceCounter', 2, ADVANCE_COUNTER],
  ['mfaConfirmTotp', 3, CONFIRM_TOTP],
  ['mfaAddWebAuthn', 1, ADD_WEBAUTHN],
  ['mfaRemove', 3, REMOVE],
  ['mfaReset', 6, RESET],
  ['mfaTakeChallenge', 2, TAKE_CHALLENGE],
  ['mfaSnapshot', 3, SNAPSHOT],
];

const defined = new WeakSet<RedisClient>();

/** Registers the scripts on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function factorScripts(redis: RedisClient): RedisClient & FactorScripts {
  if (!defined.has(redis)) {
    for (const [name, numberOfKeys, lua] of SCRIPTS) redis.defineCommand(name, { numberOfKeys, lua });
    defined.add(redis);
  }
  return redis as RedisClient & FactorScripts;
}
