import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';

const LOCK_SECONDS = 3600;
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/**
 * Runs `fn` holding the trail's maintenance lock, so a purge and a migration (which both rewrite
 * chains) never interleave, on one host or several. The lock expires after an hour in case the
 * holder dies; only the holder releases it.
 */
export async function withMaintenanceLock<T>(redis: RedisClient, keyspace: Keyspace, busy: () => Error, fn: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  if ((await redis.set(keyspace.auditPurgeLock(), token, 'EX', LOCK_SECONDS, 'NX')) !== 'OK') throw busy();
  try {
    return await fn();
  } finally {
    await redis.eval(RELEASE, 1, keyspace.auditPurgeLock(), token);
  }
}
