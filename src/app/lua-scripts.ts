import type { RedisClient } from '../platform/redis/connection.js';
import { adapterScripts } from '../platform/storage/adapter-scripts.js';
import { directoryScripts } from '../records/directory/directory-scripts.js';
import { consentScripts } from '../records/consent/consent-scripts.js';
import { registrationTokenScripts } from '../oauth/clients/registration-tokens.js';
import { appendScripts } from '../records/audit/append.js';
import { postingScripts } from '../records/audit/postings.js';
import { lockoutScripts } from '../records/directory/lockout-scripts.js';
import { factorScripts } from '../records/directory/factors/factor-scripts.js';
import { upstreamLinkScripts } from '../records/directory/upstream-link-scripts.js';

/**
 * Defines every Lua script on a client before its first command. ioredis copies a client's
 * scripts into an auto-pipeline when it creates one, so a script defined lazily while a pipeline
 * is pending (a timed audit checkpoint at start-up, say) is missing from that pipeline and the
 * call throws "pipeline[functionName] is not a function". Each definer is idempotent per client.
 */
export function defineLuaScripts(redis: RedisClient): void {
  for (const define of [
    adapterScripts,
    directoryScripts,
    consentScripts,
    registrationTokenScripts,
    appendScripts,
    postingScripts,
    lockoutScripts,
    factorScripts,
    upstreamLinkScripts,
  ])
    define(redis);
}
