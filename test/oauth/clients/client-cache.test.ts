import { Redis } from 'ioredis';
import supertest from 'supertest';
import { buildApp } from '../../../src/app/app.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { Metrics } from '../../../src/platform/ops/metrics.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import { InvalidationFeed } from '../../../src/platform/redis/invalidation.js';
import { introspect, registerResourceServer, RS } from '../../support/fixtures.js';
import { ClientCache } from '../../../src/oauth/clients/client-cache.js';
import { redisAdapterFactory } from '../../../src/platform/storage/redis-adapter.js';

const TOKEN_URL = 'http://localhost:3000/token';

/** Two instances of the server sharing one Redis, as in a deployment. */
let a: TestApp;
let b: TestApp;
let first: BackendKey;
let second: BackendKey;

beforeAll(async () => {
  a = await createTestApp();
  b = await createTestApp({}, { prefix: a.config.redis.prefix });
  [first, second] = await Promise.all([backendKey('RS384'), backendKey('RS384')]);
});
afterAll(async () => {
  await a.close();
  await b.close();
});

const until = async (condition: () => boolean) => {
  for (let i = 0; !condition(); i++) {
    if (i > 200) throw new Error('condition not met within 2 s');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('client records cached per instance, invalidated on every instance at once', () => {
  test('a client removed on one instance is refused by the other on the very next request', async () => {
    await registerBackend(a, 'cache-removed', [first]);
    // Instance A has the client in memory from here on.
    expect((await tokenRequest(a, await signAssertion(first, 'cache-removed', TOKEN_URL))).status).toBe(200);
    expect((await tokenRequest(a, await signAssertion(first, 'cache-removed', TOKEN_URL))).status).toBe(200);

    expect(await b.registry.remove('cache-removed')).toBe(true);
    const res = await tokenRequest(a, await signAssertion(first, 'cache-removed', TOKEN_URL));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  test("a resource server's secret rotated on one instance is refused at the other's /introspect on the very next request", async () => {
    await registerResourceServer(a, RS);
    await registerBackend(a, 'cache-introspected', [first]);
    const token = (await tokenRequest(a, await signAssertion(first, 'cache-introspected', TOKEN_URL))).body.access_token as string;
    expect((await introspect(a, token)).body.active).toBe(true);
    expect((await introspect(a, token)).body.active).toBe(true);

    const rotated = await b.registry.rotateSecret(RS.id);
    expect((await introspect(a, token)).status).toBe(401);
    expect((await introspect(a, token, { id: RS.id, secret: rotated })).body.active).toBe(true);
  });

  test('a key rotated on one instance under concurrent load: no request started after the rotation succeeds with the old key', async () => {
    await registerBackend(a, 'cache-rotated', [first]);
    let rotatedAt = Infinity;
    const outcomes: Array<{ startedAt: number; finishedAt: number; key: 'first' | 'second'; status: number }> = [];
    let stop = false;
    const worker = async () => {
      // After the rotation each worker sends one more request with the old key, then the new one.
      let oldAfterRotation = 0;
      while (!stop) {
        const rotated = Date.now() >= rotatedAt;
        const key = !rotated || oldAfterRotation++ === 0 ? 'first' : 'second';
        const assertion = await signAssertion(key === 'first' ? first : second, 'cache-rotated', TOKEN_URL);
        const startedAt = Date.now();
        const res = await tokenRequest(a, assertion);
        outcomes.push({ startedAt, finishedAt: Date.now(), key, status: res.status });
      }
    };
    const workers = Array.from({ length: 6 }, () => worker());
    // Enough answered requests before the rotation, however slow the machine is today.
    for (let waited = 0; outcomes.length < 15; waited += 20) {
      if (waited > 15_000) throw new Error(`only ${outcomes.length} requests answered in 15 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const rotationBegins = Date.now();
    await b.registry.setJwks('cache-rotated', { keys: [second.publicJwk] });
    rotatedAt = Date.now();
    await new Promise((r) => setTimeout(r, 400));
    stop = true;
    await Promise.all(workers);

    // A request answered before the rotation began had only the old key to see; one that was still
    // in flight while it happened may have been checked against either, so it proves nothing.
    const before = outcomes.filter((o) => o.finishedAt < rotationBegins);
    const afterWithOld = outcomes.filter((o) => o.key === 'first' && o.startedAt >= rotatedAt);
    const afterWithNew = outcomes.filter((o) => o.key === 'second');
    expect(before.length).toBeGreaterThan(10);
    expect(before.every((o) => o.status === 200)).toBe(true);
    expect(afterWithOld.length).toBeGreaterThanOrEqual(6);
    expect(afterWithOld.map((o) => o.status)).toEqual(afterWithOld.map(() => 401));
    expect(afterWithNew.length).toBeGreaterThan(5);
    expect(afterWithNew.every((o) => o.status === 200)).toBe(true);
  });
});

test('an app rebuilt on the same connection (key rotation) shares its one subscription, and its cache is invalidated too', async () => {
  const subscriptions = async () => {
    const admin = new Redis(process.env.REDIS_URL!);
    try {
      return String(await admin.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(` name=${a.keyspace.prefix}invalidations `)).length;
    } finally {
      admin.disconnect();
    }
  };
  const before = await subscriptions();
  const rebuilt = buildApp({
    config: a.config,
    logger: createLogger('silent'),
    redis: a.redis,
    keyspace: a.keyspace,
    metrics: new Metrics({ defaultMetrics: false }),
    jwks: await a.keystore.providerJwks(),
    cookieKeys: ['rebuilt-cookie-key-0000000000000000000000'],
  });
  expect(await subscriptions()).toBe(before);

  await registerBackend(a, 'cache-rebuilt', [first]);
  const viaRebuilt = { ...a, app: rebuilt, request: supertest(rebuilt.callback()) };
  expect((await tokenRequest(viaRebuilt, await signAssertion(first, 'cache-rebuilt', TOKEN_URL))).status).toBe(200);
  expect(await b.registry.remove('cache-rebuilt')).toBe(true);
  expect((await tokenRequest(viaRebuilt, await signAssertion(first, 'cache-rebuilt', TOKEN_URL))).status).toBe(401);
});

describe('the client cache trusts nothing while its feed is down', () => {
  type Stored = { client_name?: string };
  const base = () => redisAdapterFactory(a.redis, a.keyspace)('Client');
  /** What the cache answers for `id`, loading the record from Redis on a miss. */
  const readClient = async (cache: ClientCache<Stored>, id: string) =>
    (await cache.get(id, async (key) => (await base().find(key)) as Stored | undefined))?.client_name;

  test('served from memory while the feed is live, read through while it is not, and emptied when it is back', async () => {
    await base().upsert('cache-feed', { client_id: 'cache-feed', client_name: 'one' });
    const feed = new InvalidationFeed(a.redis, a.keyspace).start();
    await until(() => feed.live);
    const cached = new ClientCache<Stored>(feed);
    expect(await readClient(cached, 'cache-feed')).toBe('one');

    // A write that bypasses the adapters (no announcement) is not seen while the feed is live...
    const key = a.keyspace.model('Client', 'cache-feed');
    const raw = await a.redis.hget(key, 'payload');
    await a.redis.hset(key, 'payload', raw!.replace('"one"', '"two"'));
    expect(await readClient(cached, 'cache-feed')).toBe('one');

    // ...but once the subscription's connection is lost, every read goes to Redis.
    const admin = new Redis(process.env.REDIS_URL!);
    try {
      // Every feed of this prefix (both instances' and this test's): they share the name.
      const name = `${a.keyspace.prefix}invalidations`;
      const ids = String(await admin.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(` name=${name} `))
        .map((line) => /^id=(\d+)/.exec(line)![1]!);
      expect(ids.length).toBeGreaterThanOrEqual(3);
      for (const id of ids) await admin.client('KILL', 'ID', id);
    } finally {
      admin.disconnect();
    }
    await until(() => !feed.live);
    expect(await readClient(cached, 'cache-feed')).toBe('two');

    // Back up (ioredis reconnects): nothing cached from before the outage is served.
    await until(() => feed.live);
    await a.redis.hset(key, 'payload', raw!.replace('"one"', '"three"'));
    expect(await readClient(cached, 'cache-feed')).toBe('three');
    feed.close();
  });

  test('unknown client ids are not kept (an attacker varies them)', async () => {
    const feed = new InvalidationFeed(a.redis, a.keyspace).start();
    await until(() => feed.live);
    const cached = new ClientCache<Stored>(feed);
    expect(await readClient(cached, 'cache-nobody')).toBeUndefined();
    // Written past the adapters, so no announcement: only not having kept the miss shows it.
    await a.redis.hset(
      a.keyspace.model('Client', 'cache-nobody'),
      'payload',
      JSON.stringify({ client_id: 'cache-nobody', client_name: 'now here' }),
    );
    expect(await readClient(cached, 'cache-nobody')).toBe('now here');
    feed.close();
  });
});
