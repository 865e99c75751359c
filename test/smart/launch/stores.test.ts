import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { LaunchStore, type LaunchContext } from '../../../src/smart/launch/launch-store.js';
import { GrantContextStore } from '../../../src/oauth/tokens/grant-context.js';

let redis: RedisClient;
const keyspace = new Keyspace(`test-${randomUUID()}:`);

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL!, prefix: keyspace.prefix });
  await connectRedis(redis);
});
afterAll(() => redis.quit());

const context: LaunchContext = {
  patient: 'pat-1',
  encounter: 'enc-9',
  fhirContext: [{ reference: 'ImagingStudy/img-1' }, { canonical: 'http://example.org/Questionnaire/q|1.0', type: 'Questionnaire' }],
  need_patient_banner: false,
  smart_style_url: 'https://ehr.example.org/style.json',
  intent: 'reconcile-medications',
  tenant: 'east',
  aud: 'http://localhost:8080/fhir',
  clientId: 'growth-chart',
  createdBy: 'ehr-1',
};

describe('LaunchStore', () => {
  const store = () => new LaunchStore(redis, keyspace, 300);

  test('a launch value is 32 random bytes in base64url and gives back what was stored', async () => {
    const launches = store();
    const a = await launches.create(context);
    const b = await launches.create(context);
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(await launches.get(a)).toEqual(context);
    // get does not use it up
    expect(await launches.get(a)).toEqual(context);
  });

  test('the value itself is not a Redis key: keys hold a digest of it', async () => {
    const launch = await store().create(context);
    const keys = await redis.keys(`${keyspace.prefix}launch:*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.some((k) => k.includes(launch))).toBe(false);
  });

  test('it expires after the configured lifetime', async () => {
    const launches = new LaunchStore(redis, keyspace, 1);
    const launch = await launches.create(context);
    const keys = await redis.keys(`${keyspace.prefix}launch:*`);
    const ttls = await Promise.all(keys.map((k) => redis.ttl(k)));
    expect(ttls.some((t) => t === 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await launches.get(launch)).toBeUndefined();
    expect(await launches.consume(launch)).toBeUndefined();
  });

  test('consume is single use, also when two authorizations race', async () => {
    const launches = store();
    const launch = await launches.create(context);
    const results = await Promise.all([launches.consume(launch), launches.consume(launch), launches.consume(launch)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(results.find(Boolean)).toEqual(context);
    expect(await launches.get(launch)).toBeUndefined();
  });

  test.each(['', 'short', 'x'.repeat(43).replace(/x/g, '!'), 'A'.repeat(44), 'A'.repeat(5000)])(
    'a value that cannot be a launch (%#) is unknown',
    async (value) => {
      expect(await store().get(value)).toBeUndefined();
      expect(await store().consume(value)).toBeUndefined();
    },
  );
});

describe('GrantContextStore', () => {
  const store = () => new GrantContextStore(redis, keyspace);

  test('saves, reads and deletes the context of a grant, with the given lifetime', async () => {
    const contexts = store();
    const grantId = randomUUID();
    await contexts.save(grantId, { patient: 'p1', fhirUser: 'http://x/fhir/Patient/p1', onlineAccess: true }, 600);
    expect(await contexts.get(grantId)).toEqual({ patient: 'p1', fhirUser: 'http://x/fhir/Patient/p1', onlineAccess: true });
    const ttl = await redis.ttl(keyspace.grantContext(grantId));
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
    await contexts.delete(grantId);
    expect(await contexts.get(grantId)).toBeUndefined();
  });

  test('its key shares the hash tag of the grant', () => {
    expect(keyspace.grantContext('g1')).toContain('{g1}');
    expect(keyspace.grantIndex('g1')).toContain('{g1}');
  });

  test('an unknown grant has no context', async () => {
    expect(await store().get('no-such-grant')).toBeUndefined();
  });
});
