import { randomUUID } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { redisAdapterFactory } from '../../../src/platform/storage/redis-adapter.js';
import { GrantIndex } from '../../../src/platform/storage/grant-index.js';
import { OWNER_REVOKED_MARK_SECONDS, OwnerIndex } from '../../../src/platform/storage/owner-index.js';

let redis: RedisClient;
let writer: RedisClient;
let keyspace: Keyspace;
let adapter: (name: string) => Adapter;
let owners: OwnerIndex;

beforeAll(async () => {
  // Two connections, as two instances would have: the revoker's commands are not ordered behind the writers'.
  redis = createRedis({ url: process.env.REDIS_URL!, prefix: 'x:' });
  writer = createRedis({ url: process.env.REDIS_URL!, prefix: 'x:' });
  await Promise.all([connectRedis(redis), connectRedis(writer)]);
  keyspace = new Keyspace(`test-${randomUUID()}:`);
  adapter = redisAdapterFactory(writer, keyspace);
  owners = new OwnerIndex(redis, keyspace, new GrantIndex(redis, keyspace));
});

afterAll(async () => {
  await Promise.all([redis.quit(), writer.quit()]);
});

const exists = async (key: string) => (await redis.exists(key)) === 1;

test('ending an account removes its grants with their tokens, and its sessions; another account keeps its own', async () => {
  const [grantId, otherGrant, sessionId, token] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  await adapter('Grant').upsert(grantId, { jti: grantId, accountId: 'alice', clientId: 'app', kind: 'Grant' }, 600);
  await adapter('Grant').upsert(otherGrant, { jti: otherGrant, accountId: 'bob', clientId: 'app', kind: 'Grant' }, 600);
  await adapter('Session').upsert(sessionId, { jti: sessionId, uid: randomUUID(), accountId: 'alice', kind: 'Session' }, 600);
  await adapter('AccessToken').upsert(token, { jti: token, grantId, accountId: 'alice', clientId: 'app', kind: 'AccessToken' }, 600);

  expect(await owners.end({ kind: 'account', id: 'alice' })).toBe(2);
  expect(await exists(keyspace.model('Grant', grantId))).toBe(false);
  expect(await exists(keyspace.model('AccessToken', token))).toBe(false);
  expect(await exists(keyspace.model('Session', sessionId))).toBe(false);
  expect(await exists(keyspace.model('Grant', otherGrant))).toBe(true);
  // The grant is dead: a token write for it still in flight is refused.
  await expect(
    adapter('RefreshToken').upsert(randomUUID(), { grantId, accountId: 'alice', clientId: 'app', kind: 'RefreshToken' }, 600),
  ).rejects.toMatchObject({ error: 'invalid_grant' });
});

test('while an account is revoked no grant of it is written, a session only until reinstatement', async () => {
  await owners.end({ kind: 'account', id: 'carol' });
  const ttl = await redis.ttl(keyspace.ownerRevoked('account', 'carol'));
  expect(ttl).toBeGreaterThan(OWNER_REVOKED_MARK_SECONDS - 5);
  const sessionId = randomUUID();
  // A grant is refused outright; a session is kept (the browser gets the sign-in page, not an
  // error) but indexed, and reinstating the account ends it.
  const grantId = randomUUID();
  await expect(
    adapter('Grant').upsert(grantId, { jti: grantId, accountId: 'carol', clientId: 'app', kind: 'Grant' }, 600),
  ).rejects.toMatchObject({ error: 'access_denied' });
  expect(await exists(keyspace.model('Grant', grantId))).toBe(false);
  await adapter('Session').upsert(sessionId, { jti: sessionId, accountId: 'carol', kind: 'Session' }, 600);
  expect(await exists(keyspace.model('Session', sessionId))).toBe(true);

  await owners.reinstate({ kind: 'account', id: 'carol' });
  expect(await exists(keyspace.model('Session', sessionId))).toBe(false);
  expect(await exists(keyspace.ownerRevoked('account', 'carol'))).toBe(false);
  await adapter('Grant').upsert(grantId, { jti: grantId, accountId: 'carol', clientId: 'app', kind: 'Grant' }, 600);
  expect(await exists(keyspace.model('Grant', grantId))).toBe(true);
});

test('a client update leaves its tokens alone; only a client registered again under a removed id is reinstated', async () => {
  const clientId = `app-${randomUUID()}`;
  const token = randomUUID();
  await adapter('Client').upsert(clientId, { client_id: clientId });
  await adapter('ClientCredentials').upsert(token, { jti: token, clientId, kind: 'ClientCredentials' }, 600);
  await adapter('Client').upsert(clientId, { client_id: clientId, client_name: 'renamed' });
  expect(await exists(keyspace.model('ClientCredentials', token))).toBe(true);

  await adapter('Client').destroy(clientId);
  expect(await exists(keyspace.model('ClientCredentials', token))).toBe(false);
  await expect(adapter('ClientCredentials').upsert(randomUUID(), { clientId, kind: 'ClientCredentials' }, 600)).rejects.toMatchObject({
    error: 'invalid_grant',
  });
  await adapter('Client').upsert(clientId, { client_id: clientId });
  const fresh = randomUUID();
  await adapter('ClientCredentials').upsert(fresh, { jti: fresh, clientId, kind: 'ClientCredentials' }, 600);
  expect(await exists(keyspace.model('ClientCredentials', fresh))).toBe(true);
});

test('client-credentials tokens written concurrently with the client being ended never survive it', async () => {
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  let mixed = 0;
  for (let round = 0; round < 5; round++) {
    const clientId = `backend-${randomUUID()}`;
    const ids = Array.from({ length: 120 }, () => randomUUID());
    const model = (i: number) => (i % 2 ? 'ClientCredentials' : 'JwtAccessToken');
    const writes: Array<Promise<string | undefined>> = [];
    let ended: Promise<number> | undefined;
    // Writes keep arriving in small waves; the revocation lands in the middle of them.
    for (const [i, id] of ids.entries()) {
      if (i % 4 === 0) await tick();
      if (i === ids.length / 2) ended = owners.end({ kind: 'client', id: clientId });
      writes.push(
        adapter(model(i))
          .upsert(id, { jti: id, clientId, kind: 'ClientCredentials' }, 600)
          .then(
            () => 'written',
            (err: { error?: string }) => err.error,
          ),
      );
    }
    const outcomes = await Promise.all(writes);
    await ended;
    expect(outcomes.every((o) => o === 'written' || o === 'invalid_grant')).toBe(true);
    if (outcomes.includes('written') && outcomes.includes('invalid_grant')) mixed += 1;
    const survivors = await Promise.all(ids.map((id, i) => exists(keyspace.model(model(i), id))));
    expect(survivors.filter(Boolean)).toEqual([]);
  }
  // The property was tested with writes on both sides of the revocation, not only before or after it.
  expect(mixed).toBeGreaterThan(0);
});
