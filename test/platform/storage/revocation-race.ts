import { randomUUID } from 'node:crypto';
import { expect } from '@jest/globals';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { RedisClient } from '../../../src/platform/redis/connection.js';
import type { Keyspace } from '../../../src/platform/redis/keyspace.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Tokens written for a grant while the grant's tokens are revoked, concurrently, `rounds` times:
 * every entry that exists afterwards is in the grant's index, and a last revocation leaves none.
 * Shared by the single-node suite (one atomic script per write) and the Cluster suite (index,
 * write, check), the two paths of RedisAdapter.upsert.
 */
export async function expectNoTokenOutlivesRevocation(
  adapter: (name: string) => Adapter,
  redis: RedisClient,
  keyspace: Keyspace,
  rounds = 15,
): Promise<void> {
  const model = (i: number) => (i % 2 ? 'AccessToken' : 'RefreshToken');
  for (let round = 0; round < rounds; round++) {
    const grantId = randomUUID();
    const ids = Array.from({ length: 40 }, () => randomUUID());
    const payload = (id: string): AdapterPayload => ({ jti: id, grantId, clientId: 'app', accountId: 'alice', kind: 'AccessToken' });
    await Promise.all([
      ...ids.map(async (id, i) => {
        await sleep(i % 7);
        await adapter(model(i))
          .upsert(id, payload(id), 600)
          .catch(() => undefined);
      }),
      ...[1, 3, 5].map(async (ms) => {
        await sleep(ms);
        await adapter('AccessToken').revokeByGrantId(grantId);
      }),
    ]);
    const index = keyspace.grantIndex(grantId);
    for (const [i, id] of ids.entries()) {
      const key = keyspace.model(model(i), id);
      if ((await redis.exists(key)) === 1) expect(await redis.zscore(index, key)).not.toBeNull();
    }
    await adapter('AccessToken').revokeByGrantId(grantId);
    for (const [i, id] of ids.entries()) expect(await redis.exists(keyspace.model(model(i), id))).toBe(0);
  }
}
