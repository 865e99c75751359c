import { randomUUID } from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { DEAD_GRANT_MARK_SECONDS } from '../../../src/platform/storage/grant-index.js';
import { claimOnce } from '../../../src/platform/storage/claim-once.js';
import { redisAdapterFactory } from '../../../src/platform/storage/redis-adapter.js';
import { expectNoTokenOutlivesRevocation } from './revocation-race.js';
import { commandsSent } from '../../support/redis-monitor.js';

interface ProviderError extends Error {
  error?: string;
  error_detail?: string;
}

let redis: RedisClient;
let keyspace: Keyspace;
let adapter: (name: string) => Adapter;

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL!, prefix: 'x:' });
  await connectRedis(redis);
  keyspace = new Keyspace(`test-${randomUUID()}:`);
  adapter = redisAdapterFactory(redis, keyspace);
});

afterAll(async () => {
  await redis.quit();
});

const uid = () => randomUUID();

function token(grantId: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
  return { jti: uid(), grantId, clientId: 'app', accountId: 'alice', kind: 'AccessToken', ...extra };
}

async function exists(key: string): Promise<boolean> {
  return (await redis.exists(key)) === 1;
}

async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (err) {
    return err as ProviderError;
  }
  throw new Error('expected a rejection');
}

describe('upsert and find', () => {
  test('stores the payload with expiresIn as TTL', async () => {
    const id = uid();
    const payload = { jti: id, clientId: 'app', scope: 'openid launch', kind: 'Interaction' };
    await adapter('Interaction').upsert(id, payload, 120);

    expect(await adapter('Interaction').find(id)).toEqual(payload);
    const pttl = await redis.pttl(keyspace.model('Interaction', id));
    expect(pttl).toBeGreaterThan(118_000);
    expect(pttl).toBeLessThanOrEqual(120_000);
  });

  test('stores without TTL when no expiresIn is given', async () => {
    const id = uid();
    await adapter('Client').upsert(id, { client_id: id, redirect_uris: ['https://app.example/cb'] });
    expect(await redis.pttl(keyspace.model('Client', id))).toBe(-1);
  });

  test('a re-upsert replaces the entry, its consumed mark and its TTL', async () => {
    const id = uid();
    const codes = adapter('AuthorizationCode');
    await codes.upsert(id, token(uid(), { consumed: 1_700_000_000 }), 60);
    expect((await codes.find(id))?.consumed).toBe(1_700_000_000);

    await codes.upsert(id, { jti: id, clientId: 'app' });
    const found = await codes.find(id);
    expect(found).toEqual({ jti: id, clientId: 'app' });
    expect(await redis.pttl(keyspace.model('AuthorizationCode', id))).toBe(-1);
  });

  test('find of a missing entry is undefined', async () => {
    expect(await adapter('AccessToken').find(uid())).toBeUndefined();
  });

  test('an already-expired lifetime (ReplayDetection) is stored briefly instead of failing', async () => {
    const id = uid();
    await adapter('ReplayDetection').upsert(id, { jti: id, iss: 'app' }, -5);
    expect(await redis.pttl(keyspace.model('ReplayDetection', id))).toBeLessThanOrEqual(1);
  });
});

describe('consume', () => {
  test('marks the entry consumed and keeps its TTL', async () => {
    const id = uid();
    const codes = adapter('AuthorizationCode');
    await codes.upsert(id, token(uid()), 60);
    const before = Math.floor(Date.now() / 1000);

    await codes.consume(id);

    const found = await codes.find(id);
    expect(typeof found?.consumed).toBe('number');
    expect(found?.consumed).toBeGreaterThanOrEqual(before);
    expect(await redis.pttl(keyspace.model('AuthorizationCode', id))).toBeGreaterThan(50_000);
  });

  test('consuming a missing entry fails and creates no key', async () => {
    const id = uid();
    const err = await rejection(adapter('AuthorizationCode').consume(id));
    expect(err.error).toBe('invalid_grant');
    expect(err.error_detail).toBe('authorization code not found');
    expect(await exists(keyspace.model('AuthorizationCode', id))).toBe(false);
  });

  test('of two concurrent code redemptions exactly one wins; the loser revokes the whole grant', async () => {
    const grantId = uid();
    const otherGrant = uid();
    const codeId = uid();
    await adapter('Grant').upsert(grantId, { jti: grantId, clientId: 'app', accountId: 'alice' }, 3600);
    await adapter('AuthorizationCode').upsert(codeId, token(grantId), 60);
    const earlierAt = uid();
    const earlierRt = uid();
    await adapter('AccessToken').upsert(earlierAt, token(grantId), 3600);
    await adapter('RefreshToken').upsert(earlierRt, token(grantId), 7200);
    const unrelated = uid();
    await adapter('AccessToken').upsert(unrelated, token(otherGrant), 3600);

    const results = await Promise.allSettled([adapter('AuthorizationCode').consume(codeId), adapter('AuthorizationCode').consume(codeId)]);

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const err = lost?.reason as ProviderError;
    expect(err.error).toBe('invalid_grant');
    expect(err.error_detail).toBe('authorization code already consumed');

    expect(await adapter('AuthorizationCode').find(codeId)).toBeUndefined();
    expect(await adapter('AccessToken').find(earlierAt)).toBeUndefined();
    expect(await adapter('RefreshToken').find(earlierRt)).toBeUndefined();
    expect(await adapter('Grant').find(grantId)).toBeUndefined();
    expect(await adapter('AccessToken').find(unrelated)).toBeDefined();

    // The winner is still issuing tokens for the grant: those writes must now be refused.
    const late = await rejection(adapter('AccessToken').upsert(uid(), token(grantId), 3600));
    expect(late.error).toBe('invalid_grant');
  });

  test('under many concurrent redemptions only one succeeds', async () => {
    const codeId = uid();
    await adapter('AuthorizationCode').upsert(codeId, token(uid()), 60);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => adapter('AuthorizationCode').consume(codeId)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as ProviderError).error).toBe('invalid_grant');
    }
  });

  test('a refresh token rotated twice concurrently reports reuse in refresh-token words', async () => {
    const rtId = uid();
    await adapter('RefreshToken').upsert(rtId, token(uid(), { kind: 'RefreshToken' }), 3600);
    const results = await Promise.allSettled([adapter('RefreshToken').consume(rtId), adapter('RefreshToken').consume(rtId)]);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect((lost?.reason as ProviderError).error_detail).toBe('refresh token already used');
    expect(await adapter('RefreshToken').find(rtId)).toBeUndefined();
  });

  test('a pushed authorization request used twice concurrently fails like a reused request_uri', async () => {
    const parId = uid();
    await adapter('PushedAuthorizationRequest').upsert(parId, { jti: parId, clientId: 'app' }, 60);
    const results = await Promise.allSettled([
      adapter('PushedAuthorizationRequest').consume(parId),
      adapter('PushedAuthorizationRequest').consume(parId),
    ]);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect((lost?.reason as ProviderError).error).toBe('invalid_request_uri');
  });
});

describe('grant index', () => {
  test('revokeByGrantId removes every token of the grant and nothing else', async () => {
    const grantId = uid();
    const otherGrant = uid();
    const mine = [
      ['AccessToken', uid()],
      ['RefreshToken', uid()],
      ['AuthorizationCode', uid()],
      ['DeviceCode', uid()],
    ] as const;
    for (const [model, id] of mine) await adapter(model).upsert(id, token(grantId), 600);
    const theirs = uid();
    await adapter('AccessToken').upsert(theirs, token(otherGrant), 600);

    await adapter('AccessToken').revokeByGrantId(grantId);

    for (const [model, id] of mine) expect(await adapter(model).find(id)).toBeUndefined();
    expect(await adapter('AccessToken').find(theirs)).toBeDefined();
    expect(await exists(keyspace.grantIndex(grantId))).toBe(false);
    expect(await exists(keyspace.grantIndex(otherGrant))).toBe(true);
  });

  test('a grant whose tokens were revoked but which still exists can get new tokens', async () => {
    const grantId = uid();
    await adapter('AccessToken').upsert(uid(), token(grantId), 600);
    await adapter('AccessToken').revokeByGrantId(grantId);

    const fresh = uid();
    await adapter('AccessToken').upsert(fresh, token(grantId), 600);
    expect(await adapter('AccessToken').find(fresh)).toBeDefined();
    expect(await redis.zscore(keyspace.grantIndex(grantId), keyspace.model('AccessToken', fresh))).not.toBeNull();
  });

  test('the index lives at least as long as its longest-lived member', async () => {
    const grantId = uid();
    const index = keyspace.grantIndex(grantId);
    await adapter('RefreshToken').upsert(uid(), token(grantId), 7200);
    await adapter('AccessToken').upsert(uid(), token(grantId), 60);
    expect(await redis.pttl(index)).toBeGreaterThan(7_190_000);

    await adapter('RefreshToken').upsert(uid(), token(grantId), 9000);
    expect(await redis.pttl(index)).toBeGreaterThan(8_990_000);

    await adapter('DeviceCode').upsert(uid(), token(grantId));
    expect(await redis.pttl(index)).toBe(-1);
    await adapter('AccessToken').upsert(uid(), token(grantId), 60);
    expect(await redis.pttl(index)).toBe(-1);
  });

  test('tokens without grantId and models outside the grant-bound list are not indexed', async () => {
    const grantId = uid();
    await adapter('ClientCredentials').upsert(uid(), { jti: uid(), clientId: 'app' }, 600);
    await adapter('Session').upsert(uid(), { uid: uid(), grantId } as AdapterPayload, 600);
    expect(await exists(keyspace.grantIndex(grantId))).toBe(false);
  });

  test('destroying the Grant revokes its tokens and refuses tokens still being issued for it', async () => {
    const grantId = uid();
    await adapter('Grant').upsert(grantId, { jti: grantId, clientId: 'app', accountId: 'alice' }, 3600);
    const at = uid();
    await adapter('AccessToken').upsert(at, token(grantId), 600);

    await adapter('Grant').destroy(grantId);

    expect(await adapter('Grant').find(grantId)).toBeUndefined();
    expect(await adapter('AccessToken').find(at)).toBeUndefined();
    const mark = await redis.ttl(keyspace.revokedGrant(grantId));
    expect(mark).toBeGreaterThan(DEAD_GRANT_MARK_SECONDS - 5);
    expect(mark).toBeLessThanOrEqual(DEAD_GRANT_MARK_SECONDS);

    const refused = uid();
    const err = await rejection(adapter('RefreshToken').upsert(refused, token(grantId), 600));
    expect(err.error).toBe('invalid_grant');
    expect(await exists(keyspace.model('RefreshToken', refused))).toBe(false);
  });

  test('no token written concurrently with revocations outlives them unindexed', async () => {
    await expectNoTokenOutlivesRevocation(adapter, redis, keyspace);
  });

  test('a single node writes an entry and its index entries in one script, so nothing else is sent', async () => {
    const grantId = uid();
    const sent = await commandsSent(redis, grantId, () => adapter('AccessToken').upsert(uid(), token(grantId), 600));
    expect(sent).toHaveLength(1);
    expect(['eval', 'evalsha']).toContain(sent[0]);
  });
});

describe('secondary lookups', () => {
  test('Session by uid, with the same TTL, and not after destroy', async () => {
    const id = uid();
    const sessionUid = uid();
    const sessions = adapter('Session');
    await sessions.upsert(id, { jti: id, uid: sessionUid, accountId: 'alice', kind: 'Session' }, 600);

    expect((await sessions.findByUid(sessionUid))?.jti).toBe(id);
    expect(await redis.pttl(keyspace.sessionUid(sessionUid))).toBeGreaterThan(590_000);

    await sessions.destroy(id);
    expect(await sessions.find(id)).toBeUndefined();
    expect(await sessions.findByUid(sessionUid)).toBeUndefined();
  });

  test('a stale uid pointer does not return a session that now has another uid', async () => {
    const id = uid();
    const oldUid = uid();
    const newUid = uid();
    const sessions = adapter('Session');
    await sessions.upsert(id, { jti: id, uid: oldUid }, 600);
    await sessions.upsert(id, { jti: id, uid: newUid }, 600);
    expect(await sessions.findByUid(oldUid)).toBeUndefined();
    expect((await sessions.findByUid(newUid))?.jti).toBe(id);
  });

  test('findByUid of an unknown uid is undefined', async () => {
    expect(await adapter('Session').findByUid(uid())).toBeUndefined();
  });

  test('DeviceCode by user code', async () => {
    const id = uid();
    const devices = adapter('DeviceCode');
    await devices.upsert(id, { jti: id, userCode: 'BCDF-GHJK', clientId: 'tv' }, 600);
    expect((await devices.findByUserCode('BCDF-GHJK'))?.jti).toBe(id);
    expect(await devices.findByUserCode('XXXX-XXXX')).toBeUndefined();
    expect(await redis.pttl(keyspace.userCode('BCDF-GHJK'))).toBeGreaterThan(590_000);
  });
});

describe('client index', () => {
  test('upsert adds the client id and destroy removes it', async () => {
    const id = `client-${uid()}`;
    const clients = adapter('Client');
    await clients.upsert(id, { client_id: id });
    expect(await redis.sismember(keyspace.clientIndex(), id)).toBe(1);

    await clients.destroy(id);
    expect(await redis.sismember(keyspace.clientIndex(), id)).toBe(0);
    expect(await clients.find(id)).toBeUndefined();
  });
});

describe('claimOnce', () => {
  test('is true for the first claim only and expires with the TTL', async () => {
    const jti = uid();
    expect(await claimOnce(redis, keyspace, 'jti', jti, 300)).toBe(true);
    expect(await claimOnce(redis, keyspace, 'jti', jti, 300)).toBe(false);
    expect(await claimOnce(redis, keyspace, 'other', jti, 300)).toBe(true);
  });

  test('of 20 concurrent claims exactly one wins', async () => {
    const jti = uid();
    const results = await Promise.all(Array.from({ length: 20 }, () => claimOnce(redis, keyspace, 'jti', jti, 300)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  test('sets a TTL even for a lifetime already past', async () => {
    const before = await redis.keys(`${keyspace.prefix}once:past:*`);
    expect(before).toHaveLength(0);
    expect(await claimOnce(redis, keyspace, 'past', uid(), -3)).toBe(true);
    const [key] = await redis.keys(`${keyspace.prefix}once:past:*`);
    expect(key).toBeDefined();
    const pttl = await redis.pttl(key!);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1000);
  });
});
