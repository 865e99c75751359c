import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { ScimError } from '../../../src/domain/scim/errors.js';
import { GroupStore } from '../../../src/records/directory/group-store.js';
import { SMART_USER_SCHEMA } from '../../../src/records/directory/model.js';
import { hashPassword, verifyPassword } from '../../../src/records/directory/passwords.js';
import { UserStore, type LockStateReader } from '../../../src/records/directory/user-store.js';

const POLICY = { memoryKiB: 19_456, timeCost: 2, parallelism: 1 };

let redis: RedisClient;
let keyspace: Keyspace;
let store: UserStore;
const locked = new Set<string>();
const lockState: LockStateReader = {
  isLocked: async (id) => locked.has(id),
  clear: async (id) => {
    locked.delete(id);
  },
};

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL!, prefix: 'x:' });
  await connectRedis(redis);
});
beforeEach(() => {
  keyspace = new Keyspace(`test-${randomUUID()}:`);
  store = new UserStore({ redis, keyspace, passwords: POLICY, lockState, scimBase: 'https://auth.example.org/scim/v2' });
});
afterAll(async () => {
  await redis.quit();
});

async function scimError(p: Promise<unknown>): Promise<ScimError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ScimError) return err;
    throw err;
  }
  throw new Error('expected a ScimError');
}

describe('UserStore', () => {
  test('create, get, findByUserName (any case) and credentials', async () => {
    const user = await store.create({ userName: 'Dr.Who@Example.org', password: 'tardis-1963', name: { givenName: 'John' } });
    expect(user).toMatchObject({
      userName: 'Dr.Who@Example.org',
      active: true,
      meta: { resourceType: 'User', version: 'W/"1"', location: `https://auth.example.org/scim/v2/Users/${user.id}` },
    });
    expect(await store.get(user.id)).toEqual(user);
    expect(await store.findByUserName('dr.who@example.ORG')).toEqual(user);
    expect(await store.findByUserName('dr.who')).toBeUndefined();
    const creds = await store.credentials('DR.WHO@example.org');
    expect(creds!.user).toEqual(user);
    expect(await verifyPassword(creds!.passwordHash!, 'tardis-1963')).toBe(true);
    expect(JSON.stringify(await store.get(user.id))).not.toMatch(/argon2|tardis|password/);
    expect(await store.credentials('nobody')).toBeUndefined();
  });

  test('a user without password has credentials without a hash', async () => {
    await store.create({ userName: 'sso-only' });
    const creds = await store.credentials('SSO-ONLY');
    expect(creds).toBeDefined();
    expect(creds!.passwordHash).toBeUndefined();
  });

  test('one index read finds a user: the userName index holds the id', async () => {
    const user = await store.create({ userName: 'Indexed' });
    expect(await redis.get(keyspace.scimUserName('indexed'))).toBe(user.id);
    expect(Object.keys(await redis.hgetall(keyspace.scimUser(user.id))).sort()).toEqual(['json', 'lm', 'v']);
  });

  test('setPassword, replacePasswordHash (compare-and-set) and setActive', async () => {
    const user = await store.create({ userName: 'rehash', password: 'one' });
    const first = (await store.credentials('rehash'))!.passwordHash!;
    await store.setPassword(user.id, 'two');
    const second = (await store.credentials('rehash'))!.passwordHash!;
    expect(await verifyPassword(second, 'two')).toBe(true);
    expect((await store.get(user.id))!.meta.version).toBe('W/"2"');
    const upgraded = await hashPassword('two', { ...POLICY, timeCost: 3 });
    expect(await store.replacePasswordHash(user.id, first, upgraded)).toBe(false);
    expect(await store.replacePasswordHash(user.id, second, upgraded)).toBe(true);
    expect((await store.credentials('rehash'))!.passwordHash).toBe(upgraded);
    expect((await store.get(user.id))!.meta.version).toBe('W/"2"');
    const inactive = await store.setActive(user.id, false);
    expect(inactive.active).toBe(false);
    expect((await store.credentials('rehash'))!.user.active).toBe(false);
    expect(await store.replacePasswordHash('nobody', second, upgraded)).toBe(false);
  });

  test('userName stays unique when two creates race', async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.create({ userName: i % 2 ? 'Racer' : 'racer' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ status: 409, scimType: 'uniqueness' });
    expect(await store.count()).toBe(1);
  });

  test('renaming moves the index; the old name is free', async () => {
    const a = await store.create({ userName: 'before', emails: [{ value: 'A@x.org' }] });
    await store.update(a.id, (u) => ({ ...u, userName: 'after', emails: [{ value: 'b@x.org' }] }));
    expect(await store.findByUserName('before')).toBeUndefined();
    expect((await store.findByUserName('AFTER'))!.id).toBe(a.id);
    expect(await redis.exists(keyspace.scimUserEmail('a@x.org'))).toBe(0);
    expect(await redis.smembers(keyspace.scimUserEmail('b@x.org'))).toEqual([a.id]);
    expect((await store.create({ userName: 'BEFORE' })).userName).toBe('BEFORE');
  });

  test('delete removes the record and every index', async () => {
    const u = await store.create({ userName: 'gone', externalId: 'E1', emails: [{ value: 'gone@x.org' }], password: 'pw' });
    expect(await store.delete(u.id)).toBe(true);
    expect(await store.delete(u.id)).toBe(false);
    expect(await store.get(u.id)).toBeUndefined();
    const keys = await redis.keys(`${keyspace.prefix}*`);
    expect(keys).toEqual([]);
  });

  test('locked comes from the lock state; writing false clears it, true is refused', async () => {
    const u = await store.create({ userName: 'locked-out' });
    locked.add(u.id);
    const shown = await store.get(u.id);
    expect(shown![SMART_USER_SCHEMA]).toEqual({ locked: true });
    expect(shown!.schemas).toContain(SMART_USER_SCHEMA);
    expect((await store.findByUserName('locked-out'))![SMART_USER_SCHEMA]?.locked).toBe(true);
    const stillLocked = await store.update(u.id, (cur) => cur);
    expect(stillLocked[SMART_USER_SCHEMA]?.locked).toBe(true);
    const unlocked = await store.update(u.id, (cur) => ({ ...cur, [SMART_USER_SCHEMA]: { locked: false } }));
    expect(unlocked[SMART_USER_SCHEMA]).toBeUndefined();
    expect(locked.has(u.id)).toBe(false);
    expect((await scimError(store.update(u.id, (cur) => ({ ...cur, [SMART_USER_SCHEMA]: { locked: true } })))).scimType).toBe('mutability');
  });

  test('If-Match: a stale version is 412, the current one writes', async () => {
    const u = await store.create({ userName: 'etag' });
    await store.setActive(u.id, false);
    expect((await scimError(store.replace(u.id, { userName: 'etag', nickName: 'x' }, { ifMatch: 'W/"1"' }))).status).toBe(412);
    expect((await store.replace(u.id, { userName: 'etag', nickName: 'x' }, { ifMatch: 'W/"2"' })).nickName).toBe('x');
    expect((await scimError(store.delete(u.id, { ifMatch: 'W/"2"' }))).status).toBe(412);
  });

  test("effectiveRoles: the user's roles and its groups' roles", async () => {
    const groups = new GroupStore({ redis, keyspace });
    const role = (code: string) => ({ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code });
    const u = await store.create({ userName: 'roles', [SMART_USER_SCHEMA]: { roles: [role('A')] } });
    await groups.create({
      displayName: 'G1',
      members: [{ value: u.id }],
      'urn:smart-authz:params:scim:schemas:extension:smart:2.0:Group': { roles: [role('B'), role('A')] },
    });
    await groups.create({
      displayName: 'G2',
      members: [{ value: u.id }],
      'urn:smart-authz:params:scim:schemas:extension:smart:2.0:Group': { roles: [role('C')] },
    });
    const roles = await store.effectiveRoles(u.id);
    expect(roles.map((r) => r.code).sort()).toEqual(['A', 'B', 'C']);
    expect(roles[0]!.code).toBe('A');
  });

  test('search: index lookups work beyond the scan limit, scans are refused there', async () => {
    const small = new UserStore({ redis, keyspace, passwords: POLICY, limits: { maxFilterScan: 100, maxPageSize: 10 } });
    await Promise.all(Array.from({ length: 101 }, (_, i) => small.create({ userName: `u${i}`, emails: [{ value: `u${i}@x.org` }] })));
    expect((await small.search({ filter: 'userName eq "U50"' })).resources.map((u) => u.userName)).toEqual(['u50']);
    expect((await small.search({ filter: 'emails.value eq "u51@x.org"' })).totalResults).toBe(1);
    expect((await scimError(small.search({ filter: 'userName co "5"' }))).scimType).toBe('tooMany');
    const page = await small.search({ startIndex: 99, count: 50 });
    expect(page).toMatchObject({ totalResults: 101, startIndex: 99 });
    expect(page.resources).toHaveLength(3);
  });
});
