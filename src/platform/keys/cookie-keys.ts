import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';

/**
 * Production requires configured cookie keys (the schema enforces it). In development a random
 * key is generated once and kept in Redis, so sessions survive restarts and every local instance
 * agrees on it without any setup.
 */
export async function resolveCookieKeys(config: Config, redis: RedisClient, keyspace: Keyspace): Promise<string[]> {
  if (config.cookieKeys) return config.cookieKeys;
  const key = keyspace.key('dev', 'cookie-key');
  const candidate = randomBytes(32).toString('base64url');
  await redis.set(key, candidate, 'NX');
  const stored = await redis.get(key);
  return [stored ?? candidate];
}
