import type { RedisClient } from '../../platform/redis/connection.js';

/**
 * The Lua script of upstream-links.ts. Both keys share the `{federation}` hash tag, so the
 * check of both directions and the writing of both is one atomic step, Cluster-safe.
 */

/**
 * Links a user to an upstream subject, or checks the link made before. KEYS: the user's link
 * (holds the subject), the subject's link (holds the user id). ARGV: subject, user id, and a user
 * id the subject's link may be taken over from ('' for none: the caller found that user gone).
 * Returns `first` (both written now), `same` (already linked so), `user-linked` (the user is
 * linked to another subject) or `subject-linked` plus the user id the subject is linked to.
 */
const PIN = `
local subject = redis.call('GET', KEYS[1])
local user = redis.call('GET', KEYS[2])
if subject and subject ~= ARGV[1] then return {'user-linked'} end
if user and user ~= ARGV[2] and user ~= ARGV[3] then return {'subject-linked', user} end
if subject and user == ARGV[2] then return {'same'} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return {'first'}
`;

export interface UpstreamLinkScripts {
  upstreamLinkPin(userKey: string, subjectKey: string, subject: string, userId: string, replaceable: string): Promise<string[]>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the script on a client once (ioredis sends EVALSHA and falls back to EVAL itself). */
export function upstreamLinkScripts(redis: RedisClient): RedisClient & UpstreamLinkScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('upstreamLinkPin', { numberOfKeys: 2, lua: PIN });
    defined.add(redis);
  }
  return redis as RedisClient & UpstreamLinkScripts;
}
