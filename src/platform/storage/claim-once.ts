import { createHash } from 'node:crypto';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';

/**
 * Atomic "first caller wins" for one-time values such as client-assertion `jti`s: oidc-provider's
 * own ReplayDetection is find-then-save, so two concurrent requests can both pass it.
 *
 * The id is hashed so an attacker-chosen value (a 10 kB `jti`) cannot blow up key sizes. Include
 * whatever scopes the value (e.g. the issuer) in `id` or `namespace`.
 */
export async function claimOnce(
  redis: RedisClient,
  keyspace: Keyspace,
  namespace: string,
  id: string,
  ttlSeconds: number,
): Promise<boolean> {
  const digest = createHash('sha256').update(id).digest('base64url');
  // EX must be a positive integer; a value that is already past its lifetime still gets claimed
  // for a moment rather than making SET fail.
  const ttl = Math.max(1, Math.ceil(ttlSeconds));
  const result = await redis.set(keyspace.once(namespace, digest), '1', 'EX', ttl, 'NX');
  return result === 'OK';
}
