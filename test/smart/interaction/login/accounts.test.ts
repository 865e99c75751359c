import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis, type RedisClient } from '../../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../../src/platform/redis/keyspace.js';
import { loadConfig } from '../../../../src/platform/config/load.js';
import { createUserStore, type UserStore } from '../../../../src/records/directory/user-store.js';
import { absoluteFhirUser, findAccount } from '../../../../src/records/directory/accounts.js';
import { commandsSent } from '../../../support/redis-monitor.js';
import { CORE_USER_SCHEMA, SMART_USER_SCHEMA } from '../../../../src/records/directory/model.js';

const FHIR_BASE = 'https://fhir.example.org/r4';
let redis: RedisClient;
let users: UserStore;
const ctx = {} as never;

beforeAll(async () => {
  const config = loadConfig({ REDIS_URL: process.env.REDIS_URL!, AUTHZ_FHIR_SERVERS: FHIR_BASE });
  redis = createRedis(config.redis);
  await connectRedis(redis);
  users = createUserStore(config, redis, new Keyspace(`test-${randomUUID()}:`));
});

afterAll(async () => {
  await redis.quit();
});

test('fhirUser is made absolute on the first FHIR base; absolute ones are kept', () => {
  expect(absoluteFhirUser('Practitioner/1', FHIR_BASE)).toBe(`${FHIR_BASE}/Practitioner/1`);
  expect(absoluteFhirUser('Patient/p-2', `${FHIR_BASE}/`)).toBe(`${FHIR_BASE}/Patient/p-2`);
  expect(absoluteFhirUser('https://other.example.org/fhir/Patient/9', FHIR_BASE)).toBe('https://other.example.org/fhir/Patient/9');
  expect(absoluteFhirUser(undefined, FHIR_BASE)).toBeUndefined();
});

test('an active user is an account with OpenID and SMART claims', async () => {
  const user = await users.create({
    schemas: [CORE_USER_SCHEMA, SMART_USER_SCHEMA],
    userName: 'jane',
    password: 'irrelevant password',
    name: { givenName: 'Jane', familyName: 'Doe' },
    [SMART_USER_SCHEMA]: { fhirUser: 'Practitioner/jane-1' },
  });
  const account = await findAccount(users, { fhirBase: FHIR_BASE })(ctx, user.id);
  expect(account?.accountId).toBe(user.id);
  const claims = await account!.claims('id_token', 'openid fhirUser profile', {}, []);
  expect(claims).toEqual({
    sub: user.id,
    fhirUser: `${FHIR_BASE}/Practitioner/jane-1`,
    name: 'Jane Doe',
    given_name: 'Jane',
    family_name: 'Doe',
    preferred_username: 'jane',
    updated_at: Math.floor(Date.parse(user.meta.lastModified) / 1000),
  });
  expect(JSON.stringify(claims)).not.toContain('argon2');
});

test('the account lookup of a token request reads the user record alone, with one command', async () => {
  const user = await users.create({ userName: `lookup-${randomUUID()}`, password: 'irrelevant password' });
  const sent = await commandsSent(redis, user.id, () => findAccount(users, { fhirBase: FHIR_BASE })(ctx, user.id));
  expect(sent).toEqual(['hmget']);
});

test('a formatted name wins; absent attributes are left out', async () => {
  const user = await users.create({ userName: 'solo', name: { formatted: 'Dr. Solo' } });
  const claims = await (await findAccount(users, { fhirBase: FHIR_BASE })(ctx, user.id))!.claims('userinfo', 'openid profile', {}, []);
  expect(claims).toEqual({ sub: user.id, name: 'Dr. Solo', preferred_username: 'solo', updated_at: expect.any(Number) });
});

test('unknown and inactive users have no account', async () => {
  const lookup = findAccount(users, { fhirBase: FHIR_BASE });
  expect(await lookup(ctx, randomUUID())).toBeUndefined();
  const user = await users.create({ userName: 'gone', active: false });
  expect(await lookup(ctx, user.id)).toBeUndefined();
  await users.setActive(user.id, true);
  expect((await lookup(ctx, user.id))?.accountId).toBe(user.id);
});
