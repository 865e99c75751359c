import type { RedisClient } from './redis/connection.js';
import { adapterScripts } from './storage/adapter-scripts.js';
import { directoryScripts } from './users/directory-scripts.js';
import { consentScripts } from './consent/consent-scripts.js';
import { registrationTokenScripts } from './clients/registration-tokens.js';
import { appendScripts } from './audit/append.js';
import { postingScripts } from './audit/postings.js';
import { lockoutScripts } from './users/lockout-scripts.js';

/**
 * Defines every Lua script on a client before its first command. ioredis copies a client's
 * scripts into an auto-pipeline when it creates one, so a script defined lazily while a pipeline
 * is pending (a timed audit checkpoint at start-up, say) is missing from that pipeline and the
 * call throws "pipeline[functionName] is not a function". Each definer is idempotent per client.
 */
export function defineLuaScripts(redis: RedisClient): void {
  for (const define of [adapterScripts, directoryScripts, consentScripts, registrationTokenScripts, appendScripts, postingScripts, lockoutScripts]) define(redis);
}
