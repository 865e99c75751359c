import { Writable } from 'node:stream';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { createLogger } from '../../src/platform/ops/logger.js';
import { PasswordLogin, type LoginOutcome } from '../../src/smart/interaction/login/password-login.js';
import { IpRateLimiter } from '../../src/smart/interaction/login/ip-limiter.js';
import { createUser, csrfOf, directoryOf, registerApp, startLogin, submitLogin } from '../smart/interaction/login/support.js';

/*
 * Issue 14, item 3: concurrent guesses used to outrun the lock-out, because the account was
 * checked for a lock, the password hashed, and only then the failure counted. Every password
 * check now takes its slot first, atomically, so the limit bounds checks, not finished failures.
 */

const PASSWORD = 'correct horse battery staple';
const MAX_FAILURES = 5;
const ADDRESSES = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '198.51.100.4', '198.51.100.5'];

/** Log lines of a logger, parsed; the sign-in page logs one `login.failure` per refusal with its reason. */
function capturedLogs(): { lines: () => Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      raw.push(String(chunk));
      done();
    },
  });
  const lines = () =>
    raw
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { lines, logger: createLogger('info', sink) };
}

/** Passwords actually checked against the stored hash: refusals for a wrong one, plus sign-ins. */
function passwordChecks(lines: Array<Record<string, unknown>>): number {
  return lines.filter(
    (l) => (l.event === 'login.failure' && (l.reason === 'wrong_password' || l.reason === 'inactive')) || l.event === 'login.success',
  ).length;
}

const later = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PasswordLogin under concurrent guesses from several addresses', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ AUTHZ_LOGIN_MAX_FAILURES: String(MAX_FAILURES), AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  });
  afterAll(() => t.close());

  function passwordLogin(logger: ReturnType<typeof createLogger>) {
    const { users, lockout } = directoryOf(t);
    const ipLimiter = new IpRateLimiter(t.redis, t.keyspace, t.config.login.maxAttemptsPerIpPerMinute);
    return { login: new PasswordLogin({ users, lockout, ipLimiter, passwords: t.config.passwords, logger }), users, lockout };
  }

  test('20 concurrent wrong passwords get at most the limit of checks, and the right password 40 ms behind is refused', async () => {
    const { lines, logger } = capturedLogs();
    const { login, users, lockout } = passwordLogin(logger);
    const user = await createUser(users, 'race-1', PASSWORD);

    const guesses = Array.from({ length: 20 }, (_, i) =>
      login.attempt({ username: 'race-1', password: `guess-${i}`, ip: ADDRESSES[i % ADDRESSES.length]! }),
    );
    await later(40);
    const right = login.attempt({ username: 'race-1', password: PASSWORD, ip: '192.0.2.77' });
    const outcomes: LoginOutcome[] = await Promise.all([...guesses, right]);

    expect(outcomes.every((o) => !o.ok)).toBe(true);
    expect(await right).toMatchObject({ ok: false, reason: 'refused' });
    expect(passwordChecks(lines())).toBe(MAX_FAILURES);
    expect(lines().filter((l) => l.reason === 'locked')).toHaveLength(21 - MAX_FAILURES);
    expect(lines().filter((l) => l.event === 'login.account_locked')).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok && o.reason === 'refused' && o.lockedNow)).toHaveLength(1);
    expect(await lockout.isLocked(user.id)).toBe(true);
    expect(await lockout.secondsLeft(user.id)).toBeLessThanOrEqual(t.config.login.lockoutSeconds);
  });

  test('without contention, 4 wrong passwords then the right one signs in; the count ends only when the sign-in completes', async () => {
    const { lines, logger } = capturedLogs();
    const { login, users, lockout } = passwordLogin(logger);
    const user = await createUser(users, 'calm-1', PASSWORD);
    for (let i = 0; i < MAX_FAILURES - 1; i++)
      expect((await login.attempt({ username: 'calm-1', password: `typo-${i}`, ip: ADDRESSES[0]! })).ok).toBe(false);
    expect(await t.redis.get(t.keyspace.loginFailures(user.id))).toBe(String(MAX_FAILURES - 1));

    expect(await login.attempt({ username: 'calm-1', password: PASSWORD, ip: ADDRESSES[0]! })).toMatchObject({ ok: true });
    // The right password gave its slot back and left the count: a second factor may still be asked,
    // and guesses at it must not start from zero (test/smart/interaction/second-factor/sign-in-mfa.test.ts).
    expect(await t.redis.get(t.keyspace.loginFailures(user.id))).toBe(String(MAX_FAILURES - 1));
    expect(await lockout.isLocked(user.id)).toBe(false);
    // The completed sign-in (second-factor/sign-in-completion.ts) ends it; then typos start from zero.
    await lockout.clear(user.id);
    for (let i = 0; i < MAX_FAILURES - 1; i++) await login.attempt({ username: 'calm-1', password: `typo-${i}`, ip: ADDRESSES[0]! });
    expect(await lockout.isLocked(user.id)).toBe(false);
    expect(passwordChecks(lines())).toBe(2 * (MAX_FAILURES - 1) + 1);
  });

  test('a right password for a disabled account gives its slot back without resetting the count', async () => {
    const { logger } = capturedLogs();
    const { login, users } = passwordLogin(logger);
    const user = await createUser(users, 'retired-1', PASSWORD, { active: false });
    await login.attempt({ username: 'retired-1', password: 'typo', ip: ADDRESSES[0]! });
    expect(await login.attempt({ username: 'retired-1', password: PASSWORD, ip: ADDRESSES[0]! })).toMatchObject({
      ok: false,
      reason: 'refused',
    });
    expect(await t.redis.get(t.keyspace.loginFailures(user.id))).toBe('1');
  });
});

test('over HTTP from several addresses (behind a trusted proxy), each within its own budget, the account still gets only the limit of checks', async () => {
  const { lines, logger } = capturedLogs();
  const t = await createTestApp(
    {
      AUTHZ_PROXY: 'true',
      AUTHZ_LOGIN_MAX_FAILURES: String(MAX_FAILURES),
      AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '2',
      AUTHZ_LOG_LEVEL: 'info',
    },
    { logger },
  );
  try {
    const client = await registerApp(t);
    const { users, lockout } = directoryOf(t);
    const user = await createUser(users, 'race-http', PASSWORD);
    const { agent, uid, page } = await startLogin(t, client);
    const csrf = csrfOf(page.text);
    const post = (password: string, ip: string) =>
      agent
        .post(`/interaction/${uid}/login`)
        .type('form')
        .set('Accept', 'text/html')
        .set('X-Forwarded-For', ip)
        .send({ username: 'race-http', password, csrf })
        .timeout(15_000);

    // 2 guesses from each of 5 addresses: no address goes over its per-minute budget.
    const guesses = Array.from({ length: 10 }, (_, i) => post(`guess-${i}`, ADDRESSES[i % ADDRESSES.length]!).then((r) => r));
    await later(40);
    const right = post(PASSWORD, '192.0.2.77').then((r) => r);
    const responses = await Promise.all([...guesses, right]);

    expect(responses.map((r) => r.status)).toEqual(Array.from({ length: 11 }, () => 400));
    expect(
      new Set(
        lines()
          .filter((l) => l.event === 'login.failure')
          .map((l) => l.ip),
      ),
    ).toEqual(new Set([...ADDRESSES, '192.0.2.77']));
    expect(passwordChecks(lines())).toBe(MAX_FAILURES);
    expect(await lockout.isLocked(user.id)).toBe(true);

    // Locked means locked: the right password alone, later, is refused the same way.
    const after = await submitLogin(agent, uid, { username: 'race-http', password: PASSWORD, csrf });
    expect(after.status).toBe(400);
    expect(passwordChecks(lines())).toBe(MAX_FAILURES);
  } finally {
    await t.close();
  }
});
