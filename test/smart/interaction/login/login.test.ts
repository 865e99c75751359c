import { createTestApp, type TestApp } from '../../../support/test-app.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';
import { GENERIC_FAILURE } from '../../../../src/smart/interaction/login/password-login.js';
import { hashParameters } from '../../../../src/records/directory/passwords.js';
import { createUser, csrfOf, directoryOf, registerApp, REDIRECT_URI, startLogin, submitLogin, type Agent } from './support.js';

const PASSWORD = 'correct horse battery staple';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The page without what legitimately differs between two renderings: interaction, token, echoed name. */
function normalised(html: string, uid: string, username: string): string {
  return html
    .replaceAll(uid, 'UID')
    .replace(/name="csrf" value="[^"]+"/g, 'name="csrf" value="CSRF"')
    .replace(`value="${username}"`, 'value="USER"');
}

describe('the sign-in page', () => {
  let t: TestApp;
  let client: string;
  beforeAll(async () => {
    t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_LOGIN_MAX_FAILURES: '1000' });
    client = await registerApp(t);
    const { users } = directoryOf(t);
    await createUser(users, 'alex', PASSWORD);
    await createUser(users, 'retired', PASSWORD, { active: false });
  });
  afterAll(() => t.close());

  test('is an accessible form without scripts, under the strict CSP, never cached', async () => {
    const { uid, page } = await startLogin(t, client);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['content-security-policy']).toContain("form-action 'self'");
    expect(page.text).toMatch(/^<!doctype html>/);
    expect(page.text).not.toMatch(/<script/i);
    expect(page.text).not.toMatch(/\sstyle=|\son[a-z]+=/i);
    expect(page.text).toContain('<label for="username">');
    expect(page.text).toContain('<label for="password">');
    expect(page.text).toMatch(/<input id="username"[^>]*autocomplete="username"[^>]*autofocus/);
    expect(page.text).toMatch(/<input id="password"[^>]*type="password"[^>]*autocomplete="current-password"/);
    expect(page.text).toContain(`<form method="post" action="/interaction/${uid}/login"`);
    expect(page.text).toContain(`<form method="post" action="/interaction/${uid}/abort"`);
    expect(page.text).toContain('Sign in to continue to <strong>Growth Chart</strong>');
    expect(page.text).not.toContain('role="alert"');
  });

  test('a correct password signs in and the authorization continues to the next prompt', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const res = await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(page.text) });
    expect(res.status).toBe(303);
    expect(new URL(res.headers.location!).pathname).toBe(`/authorize/${uid}`);

    const resumed = await agent.get(new URL(res.headers.location!).pathname);
    expect(resumed.status).toBe(303);
    const cookies = ([] as string[]).concat(resumed.headers['set-cookie'] ?? []);
    expect(cookies.some((c) => /^_session=[^;]+;/.test(c))).toBe(true);
    // The next prompt is consent, a new interaction (its page is tested in test/interactions).
    const next = /^\/interaction\/([^/]+)$/.exec(resumed.headers.location!);
    expect(next?.[1]).toBeDefined();
    expect(next![1]).not.toBe(uid);
    const consent = await agent.get(resumed.headers.location!).set('Accept', 'text/html');
    expect(consent.status).toBe(200);
    expect(consent.text).toMatch(/^<!doctype html>/);
    expect(consent.text).toContain(`action="/interaction/${next![1]}/consent"`);
  });

  test('a user disabled before the authorization resumes is asked to sign in again', async () => {
    const { users } = directoryOf(t);
    const user = await createUser(users, 'short-lived', PASSWORD);
    const { agent, uid, page } = await startLogin(t, client);
    const res = await submitLogin(agent, uid, { username: 'short-lived', password: PASSWORD, csrf: csrfOf(page.text) });
    expect(res.status).toBe(303);
    await users.setActive(user.id, false);
    const resumed = await agent.get(new URL(res.headers.location!).pathname);
    expect(resumed.status).toBe(303);
    const next = await agent.get(resumed.headers.location!).set('Accept', 'text/html');
    expect(next.status).toBe(200);
    expect(next.text).toContain('<label for="password">');
  });

  test('a login_hint fills in the user name, escaped', async () => {
    const { agent } = await startLogin(t, client);
    const res = await agent.get('/authorize').query({
      client_id: client,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      login_hint: 'alex"><b>',
      aud: 'http://localhost:8080/fhir',
    });
    const page = await agent.get(res.headers.location!).set('Accept', 'text/html');
    expect(page.text).toContain('id="username" name="username" type="text" value="alex&#34;&gt;&lt;b&gt;"');
  });

  test('user names are matched without regard to case', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const res = await submitLogin(agent, uid, { username: 'ALEX', password: PASSWORD, csrf: csrfOf(page.text) });
    expect(res.status).toBe(303);
  });

  test('an unknown user and a wrong password get the same page', async () => {
    const unknown = await startLogin(t, client);
    const a = await submitLogin(unknown.agent, unknown.uid, { username: 'nobody', password: PASSWORD, csrf: csrfOf(unknown.page.text) });
    const wrong = await startLogin(t, client);
    const b = await submitLogin(wrong.agent, wrong.uid, { username: 'alex', password: 'not the password', csrf: csrfOf(wrong.page.text) });
    expect(a.status).toBe(400);
    expect(b.status).toBe(400);
    expect(a.text).toContain(GENERIC_FAILURE);
    expect(a.text).toContain('<p id="login-error" class="error" role="alert">');
    expect(a.text).toMatch(/<input id="password"[^>]*aria-describedby="login-error"[^>]*aria-invalid="true"/);
    expect(normalised(a.text, unknown.uid, 'nobody')).toBe(normalised(b.text, wrong.uid, 'alex'));
    // The form can be submitted again on the same interaction.
    const retry = await submitLogin(wrong.agent, wrong.uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(b.text) });
    expect(retry.status).toBe(303);
  });

  test('an inactive user cannot sign in, even with the right password', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const res = await submitLogin(agent, uid, { username: 'retired', password: PASSWORD, csrf: csrfOf(page.text) });
    expect(res.status).toBe(400);
    expect(res.text).toContain(GENERIC_FAILURE);
  });

  test('empty and oversized fields are refused with the same message', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const csrf = csrfOf(page.text);
    for (const form of [
      { username: '', password: PASSWORD },
      { username: 'alex', password: '' },
      { username: 'alex', password: 'x'.repeat(2000) },
    ]) {
      const res = await submitLogin(agent, uid, { ...form, csrf });
      expect(res.status).toBe(400);
      expect(res.text).toContain(GENERIC_FAILURE);
    }
  });

  test('unknown users and wrong passwords take about the same time', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const csrf = csrfOf(page.text);
    const time = async (username: string) => {
      const started = process.hrtime.bigint();
      const res = await submitLogin(agent, uid, { username, password: 'wrong password', csrf });
      expect(res.status).toBe(400);
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    await time('nobody'); // warms the dummy hash
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 5; i++) {
      unknown.push(await time(`nobody-${i}`));
      wrong.push(await time('alex'));
    }
    const [u, w] = [median(unknown), median(wrong)];
    // A skipped hash would make one side several times faster; noise stays well inside 2x.
    expect(Math.min(u, w) / Math.max(u, w)).toBeGreaterThan(0.5);
  });

  test('cancelling returns access_denied to the app', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const res = await agent
      .post(`/interaction/${uid}/abort`)
      .type('form')
      .send({ csrf: csrfOf(page.text) });
    expect(res.status).toBe(303);
    const resumed = await agent.get(new URL(res.headers.location!).pathname);
    expect(resumed.status).toBe(303);
    const back = new URL(resumed.headers.location!);
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT_URI);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('error_description')).toBe('The user cancelled the sign-in.');
    expect(back.searchParams.get('state')).toBe('s');
  });

  test('a missing, wrong or cross-site form is refused with 403 and counts no attempt', async () => {
    const { agent, uid, page } = await startLogin(t, client);
    const { users } = directoryOf(t);
    const alex = (await users.findByUserName('alex'))!;
    const counters = async () =>
      t.redis.mget(`${t.keyspace.rateLimit('login-account')}:${alex.id}`, `${t.keyspace.rateLimit('login-ip')}:127.0.0.1`);
    const wrong = await submitLogin(agent, uid, { username: 'alex', password: 'wrong', csrf: csrfOf(page.text) });
    expect(wrong.status).toBe(400);
    const before = await counters();
    expect(before.every((v) => Number(v) > 0)).toBe(true);
    const forms: Record<string, string>[] = [
      { username: 'alex', password: 'wrong' },
      { username: 'alex', password: 'wrong', csrf: 'forged' },
      { username: 'alex', password: 'wrong', csrf: `${csrfOf(page.text)}x` },
    ];
    for (const form of forms) {
      const res = await submitLogin(agent, uid, form);
      expect(res.status).toBe(403);
      expect(res.text).toContain('invalid_csrf');
      expect(res.text).toMatch(/^<!doctype html>/);
    }
    const crossSite = await agent
      .post(`/interaction/${uid}/login`)
      .type('form')
      .set('Sec-Fetch-Site', 'cross-site')
      .send({ username: 'alex', password: 'wrong', csrf: csrfOf(page.text) });
    expect(crossSite.status).toBe(403);
    const abort = await agent.post(`/interaction/${uid}/abort`).type('form').send({ csrf: 'forged' });
    expect(abort.status).toBe(403);
    expect(await counters()).toEqual(before);
  });

  test('a token for one interaction does not work for another', async () => {
    const first = await startLogin(t, client);
    const second = await startLogin(t, client);
    const res = await submitLogin(second.agent, second.uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(first.page.text) });
    expect(res.status).toBe(403);
  });

  test('unknown or expired interactions get a readable page', async () => {
    const page = await t.request.get('/interaction/does-not-exist').set('Accept', 'text/html');
    expect(page.status).toBe(400);
    expect(page.text).toContain('expired or was already used');
    expect(page.headers['cache-control']).toBe('no-store');
    const { agent, uid } = await startLogin(t, client);
    // The interaction cookie is scoped to its own path; another uid has no interaction behind it.
    const other = await agent
      .post('/interaction/someone-else/login')
      .type('form')
      .send({ username: 'alex', password: PASSWORD, csrf: 'x' });
    expect(other.status).toBe(400);
    expect(uid).toBeTruthy();
  });

  test('the client name and echoed user name are escaped', async () => {
    const evil = await registerApp(t, 'evil-app', '<script>alert("name")</script>');
    const { agent, uid, page } = await startLogin(t, evil);
    expect(page.status).toBe(200);
    expect(page.text).not.toMatch(/<script/i);
    expect(page.text).toContain('&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;');
    const res = await submitLogin(agent, uid, { username: '"><script>alert(1)</script>', password: 'x', csrf: csrfOf(page.text) });
    expect(res.status).toBe(400);
    expect(res.text).not.toMatch(/<script/i);
    expect(res.text).toContain('value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
  });
});

describe('lock-out and rate limits', () => {
  test('N wrong passwords lock the account; then even the right one fails the same way until cleared', async () => {
    const t = await createTestApp({ AUTHZ_LOGIN_MAX_FAILURES: '3', AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
    try {
      const client = await registerApp(t);
      const { users, lockout } = directoryOf(t);
      const user = await createUser(users, 'alex', PASSWORD);
      const { agent, uid, page } = await startLogin(t, client);
      const csrf = csrfOf(page.text);
      let last = page;
      for (let i = 0; i < 3; i++) {
        last = await submitLogin(agent, uid, { username: 'alex', password: `wrong-${i}`, csrf });
        expect(last.status).toBe(400);
      }
      expect(await lockout.isLocked(user.id)).toBe(true);
      const locked = await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf });
      expect(locked.status).toBe(400);
      expect(locked.text).toBe(last.text);
      // SCIM shows the lock.
      expect((await users.get(user.id))?.['urn:smart-authz:params:scim:schemas:extension:smart:2.0:User']?.locked).toBe(true);

      await lockout.clear(user.id);
      const ok = await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf });
      expect(ok.status).toBe(303);
    } finally {
      await t.close();
    }
  });

  test('a network over its per-minute budget gets 429 with Retry-After, whatever the password', async () => {
    const t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '3' });
    try {
      const client = await registerApp(t);
      const { users } = directoryOf(t);
      await createUser(users, 'alex', PASSWORD);
      const { agent, uid, page } = await startLogin(t, client);
      const csrf = csrfOf(page.text);
      for (let i = 0; i < 3; i++) expect((await submitLogin(agent, uid, { username: `guess-${i}`, password: 'x', csrf })).status).toBe(400);
      const limited = await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf });
      expect(limited.status).toBe(429);
      expect(limited.headers['retry-after']).toBe('60');
      expect(limited.headers['cache-control']).toBe('no-store');
      expect(limited.text).toMatch(/^<!doctype html>/);
      expect(limited.text).toContain('Too many sign-in attempts from your network. Wait a minute and try again.');
      expect(limited.text).not.toContain(GENERIC_FAILURE);
      const again = await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf });
      expect(again.status).toBe(429);
      expect(Number(again.headers['retry-after'])).toBeGreaterThan(50);
    } finally {
      await t.close();
    }
  });
});

test('a raised hashing cost upgrades the stored hash at the next sign-in', async () => {
  const first = await createTestApp();
  const second = await createTestApp({ AUTHZ_ARGON2_TIME_COST: '3' }, { prefix: first.config.redis.prefix });
  try {
    const client = await registerApp(first);
    const user = await createUser(directoryOf(first).users, 'alex', PASSWORD);
    const storedHash = async () => (await first.redis.hget(first.keyspace.scimUser(user.id), 'pw'))!;
    const before = await storedHash();
    expect(hashParameters(before)?.timeCost).toBe(2);

    // Signing in on an instance with the old policy leaves the hash alone.
    const old = await startLogin(first, client);
    expect((await submitLogin(old.agent, old.uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(old.page.text) })).status).toBe(303);
    expect(await storedHash()).toBe(before);

    const { agent, uid, page } = await startLogin(second, client);
    expect((await submitLogin(agent, uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(page.text) })).status).toBe(303);
    const after = await storedHash();
    expect(hashParameters(after)?.timeCost).toBe(3);
    // The new hash still verifies, on either instance.
    const again = await startLogin(first, client);
    expect(
      (await submitLogin(again.agent, again.uid, { username: 'alex', password: PASSWORD, csrf: csrfOf(again.page.text) })).status,
    ).toBe(303);
  } finally {
    await first.close();
    await second.close();
  }
});

test('the password never reaches the logs', async () => {
  const lines: string[] = [];
  const logger = createLogger('trace', { write: (line: string) => void lines.push(line) });
  const t = await createTestApp({}, { logger });
  try {
    const client = await registerApp(t);
    const secret = 'Very-Distinctive-Passw0rd-7f3a';
    await createUser(directoryOf(t).users, 'alex', secret);
    const attempt = async (agent: Agent, uid: string, html: string, username: string, password: string) =>
      submitLogin(agent, uid, { username, password, csrf: csrfOf(html) });
    const a = await startLogin(t, client);
    await attempt(a.agent, a.uid, a.page.text, 'alex', `${secret}-wrong`);
    await attempt(a.agent, a.uid, a.page.text, secret, secret); // a password typed into the user name field
    expect((await attempt(a.agent, a.uid, a.page.text, 'alex', secret)).status).toBe(303);
    const log = lines.join('');
    expect(log).toContain('"event":"login.failure"');
    expect(log).toContain('"event":"login.success"');
    expect(log).not.toContain(secret);
  } finally {
    await t.close();
  }
});
