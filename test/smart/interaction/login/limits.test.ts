import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis, type RedisClient } from '../../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../../src/platform/redis/keyspace.js';
import { FAILURE_MEMORY_SECONDS, LoginLockout } from '../../../../src/records/directory/lockout.js';
import { IpRateLimiter, MAX_BACKOFF_SECONDS, networkOf } from '../../../../src/smart/interaction/login/ip-limiter.js';

let redis: RedisClient;
let keyspace: Keyspace;

beforeAll(async () => {
  // The server's own client settings: no offline queue, auto-pipelining.
  redis = createRedis({ url: process.env.REDIS_URL!, prefix: 'x:' });
  await connectRedis(redis);
});

beforeEach(() => {
  keyspace = new Keyspace(`test-${randomUUID()}:`);
});

afterAll(async () => {
  await redis.quit();
});

/** A wrong password as the sign-in page records it: a slot taken, then settled as a failure. */
async function wrongPassword(lockout: LoginLockout, userId: string): Promise<boolean | undefined> {
  return (await lockout.reserve(userId))?.failed();
}

describe('LoginLockout', () => {
  test('locks at the limit of consecutive failures, for lockoutSeconds', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 3, lockoutSeconds: 600 });
    expect(await wrongPassword(lockout, 'u1')).toBe(false);
    expect(await wrongPassword(lockout, 'u1')).toBe(false);
    expect(await lockout.isLocked('u1')).toBe(false);
    expect(await wrongPassword(lockout, 'u1')).toBe(true);
    expect(await lockout.isLocked('u1')).toBe(true);
    expect(await lockout.isLocked('u2')).toBe(false);
    const ttl = await redis.ttl(`${keyspace.rateLimit('login-account')}:u1`);
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
    expect(await lockout.secondsLeft('u1')).toBeGreaterThan(590);
    // Locked: no further slot, so no further password is checked.
    expect(await lockout.reserve('u1')).toBeUndefined();
  });

  test('failures below the limit are remembered for FAILURE_MEMORY_SECONDS from the first', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 3, lockoutSeconds: 600 });
    await wrongPassword(lockout, 'u1');
    const ttl = await redis.ttl(keyspace.loginFailures('u1'));
    expect(ttl).toBeGreaterThan(FAILURE_MEMORY_SECONDS - 10);
    expect(ttl).toBeLessThanOrEqual(FAILURE_MEMORY_SECONDS);
    expect(await lockout.secondsLeft('u1')).toBe(0);
  });

  test('a success resets the count, so only consecutive failures lock', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 2, lockoutSeconds: 600 });
    await wrongPassword(lockout, 'u1');
    await (await lockout.reserve('u1'))!.succeeded();
    expect(await wrongPassword(lockout, 'u1')).toBe(false);
    expect(await lockout.isLocked('u1')).toBe(false);
  });

  test('a released slot is given back without resetting the count', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 2, lockoutSeconds: 600 });
    await wrongPassword(lockout, 'u1');
    const slot = (await lockout.reserve('u1'))!;
    // Both slots taken: a third attempt is refused while the second is checked.
    expect(await lockout.isLocked('u1')).toBe(true);
    expect(await lockout.reserve('u1')).toBeUndefined();
    await slot.released();
    expect(await lockout.isLocked('u1')).toBe(false);
    expect(await redis.get(keyspace.loginFailures('u1'))).toBe('1');
    expect(await redis.ttl(keyspace.loginFailures('u1'))).toBeGreaterThan(600);
    expect(await wrongPassword(lockout, 'u1')).toBe(true);
  });

  test('an administrator clears a lock', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 1, lockoutSeconds: 600 });
    expect(await wrongPassword(lockout, 'u1')).toBe(true);
    expect(await lockout.isLocked('u1')).toBe(true);
    await lockout.clear('u1');
    expect(await lockout.isLocked('u1')).toBe(false);
    expect(await lockout.secondsLeft('u1')).toBe(0);
  });

  test('the lock expires by itself', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 1, lockoutSeconds: 1 });
    await wrongPassword(lockout, 'u1');
    expect(await lockout.isLocked('u1')).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await lockout.isLocked('u1')).toBe(false);
  });

  test('concurrent attempts get exactly the limit of slots, and exactly one failure locks', async () => {
    const lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 3, lockoutSeconds: 600 });
    const slots = await Promise.all(Array.from({ length: 12 }, () => lockout.reserve('u1')));
    const granted = slots.filter((s) => s !== undefined);
    expect(granted).toHaveLength(3);
    const locked = await Promise.all(granted.map((s) => s.failed()));
    expect(locked.filter(Boolean)).toHaveLength(1);
    expect(await lockout.isLocked('u1')).toBe(true);
  });
});

describe('IpRateLimiter', () => {
  test('allows the budget per minute, then blocks with doubling back-off', async () => {
    const limiter = new IpRateLimiter(redis, keyspace, 3);
    for (let i = 0; i < 3; i++) expect(await limiter.consume('203.0.113.7')).toEqual({ allowed: true });
    expect(await limiter.consume('203.0.113.7')).toEqual({ allowed: false, retryAfterSeconds: 60 });
    const again = await limiter.consume('203.0.113.7');
    expect(again.allowed).toBe(false);
    expect(again.allowed === false && again.retryAfterSeconds).toBeGreaterThan(55);
    // Another network has its own budget.
    expect(await limiter.consume('198.51.100.1')).toEqual({ allowed: true });

    // When the block ends (simulated) the next overrun waits twice as long.
    await redis.del(`${keyspace.rateLimit('login-ip')}:203.0.113.7`);
    for (let i = 0; i < 3; i++) expect(await limiter.consume('203.0.113.7')).toEqual({ allowed: true });
    expect(await limiter.consume('203.0.113.7')).toEqual({ allowed: false, retryAfterSeconds: 120 });
    const ttl = await redis.ttl(`${keyspace.rateLimit('login-ip')}:203.0.113.7`);
    expect(ttl).toBeGreaterThan(110);
  });

  test('back-off is capped', async () => {
    const limiter = new IpRateLimiter(redis, keyspace, 1);
    await redis.set(`${keyspace.rateLimit('login-ip-strikes')}:192.0.2.9`, '20', 'EX', 3600);
    await limiter.consume('192.0.2.9');
    expect(await limiter.consume('192.0.2.9')).toEqual({ allowed: false, retryAfterSeconds: MAX_BACKOFF_SECONDS });
  });

  test('exactly one of many concurrent overruns sets the back-off', async () => {
    const limiter = new IpRateLimiter(redis, keyspace, 2);
    const results = await Promise.all(Array.from({ length: 10 }, () => limiter.consume('192.0.2.1')));
    expect(results.filter((r) => r.allowed)).toHaveLength(2);
    expect(await redis.get(`${keyspace.rateLimit('login-ip-strikes')}:192.0.2.1`)).toBe('1');
  });

  test('IPv6 addresses share the budget of their /64, IPv4-mapped ones count as IPv4', () => {
    expect(networkOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(networkOf('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(networkOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(networkOf('::1')).toBe('0:0:0:0::/64');
    expect(networkOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(networkOf('203.0.113.7')).toBe('203.0.113.7');
  });
});
