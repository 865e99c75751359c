import { jest } from '@jest/globals';
import supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { csrfFrom, followOnServer, unescapeHtml, type Agent } from '../../support/smart-flow.js';
import { createPerson } from '../../support/fixtures.js';
import {
  enrolTotp,
  nextTotpCode,
  recoveryCodesOnPage,
  secondFactorsOf,
  totpCodeAt,
  totpSecretOnPage,
} from '../../support/second-factor.js';
import { SoftAuthenticator } from '../../records/directory/factors/soft-authenticator.js';
import { readTrail } from '../../records/audit/trail-reader.js';
import { auditEventProblems, type AuditEvent } from '../../../src/records/audit/audit-event.js';
import { ACR } from '../../../src/domain/authn/assurance.js';
import { MANAGE_CLIENT_ID } from '../../../src/oauth/clients/manage-client.js';

/**
 * The account security page (/manage/security), through the real management sign-in: people list
 * their second factors, add an authenticator app or a passkey, remove one, make new recovery
 * codes; each change needs a recent sign-in (with the second factor, when they have one), a
 * verified form, and is recorded in the audit trail.
 */

const ISSUER = 'http://localhost:3000';
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_MFA_REQUIRE_FHIR_USER_TYPES: 'Practitioner' });
});
afterAll(() => t.close());

interface Who {
  username: string;
  password: string;
  /** The person's authenticator app, for the second-factor page of a sign-in. */
  totpSecret?: string;
}

const patient = () => createPerson(t, { fhirUser: `Patient/p-${Math.random().toString(36).slice(2, 8)}` });
const clinician = () => createPerson(t, { fhirUser: `Practitioner/dr-${Math.random().toString(36).slice(2, 8)}`, staff: true });
const browser = (): Agent => supertest.agent(t.app.callback());

/** The sign-in pages met on the way, in order. */
type Step = 'login' | 'second_factor';

/**
 * Follows `from` as a browser would, signing in on this server's pages when they come up
 * (password, then the authenticator app's code), until a page of /manage is shown.
 */
async function through(agent: Agent, from: supertest.Response, who: Who): Promise<{ page: supertest.Response; steps: Step[] }> {
  const steps: Step[] = [];
  let res = await followOnServer(t, agent, from);
  for (let i = 0; i < 3; i++) {
    const login = /action="\/interaction\/([^/"]+)\/login"/.exec(res.text);
    const factor = /action="\/interaction\/([^/"]+)\/second-factor"/.exec(res.text);
    let form: URLSearchParams;
    let action: string;
    if (login) {
      steps.push('login');
      form = new URLSearchParams({ csrf: csrfFrom(res.text), username: who.username, password: who.password });
      action = `/interaction/${login[1]}/login`;
    } else if (factor && who.totpSecret) {
      steps.push('second_factor');
      form = new URLSearchParams({ csrf: csrfFrom(res.text), method: 'totp', code: await nextTotpCode(who.totpSecret) });
      action = `/interaction/${factor[1]}/second-factor`;
    } else break;
    res = await followOnServer(t, agent, await agent.post(action).type('form').set('Accept', 'text/html').send(form.toString()));
  }
  return { page: res, steps };
}

/** Opens a page of /manage in `agent`, signing in when asked. */
async function open(path: string, who: Who, agent: Agent = browser()) {
  const { page, steps } = await through(agent, await agent.get(path).set('Accept', 'text/html'), who);
  return { agent, page, steps };
}

function post(agent: Agent, path: string, fields: Record<string, string>) {
  return agent.post(path).type('form').set('Accept', 'text/html').send(new URLSearchParams(fields).toString());
}

/** The remove forms of the security page: the factor ids in page order. */
const removeForms = (html: string) => [...html.matchAll(/action="\/manage\/security\/factors\/([^/"]+)\/remove"/g)].map((m) => m[1]!);

/** The WebAuthn options of a registration form (data-options, escaped by EJS). */
function registrationOptionsOn(html: string): { challenge: string } {
  const raw = /data-webauthn="register" data-options="([^"]+)"/.exec(html)?.[1];
  if (!raw) throw new Error('no registration form on the page');
  return JSON.parse(unescapeHtml(raw)) as { challenge: string };
}

const rp = () => ({ id: new URL(t.config.issuer).hostname, origin: new URL(t.config.issuer).origin });

/** The factor events of one account, oldest first: subtype code and factor kind. */
async function factorEventsOf(accountId: string): Promise<Array<{ code: string; kind: unknown; event: AuditEvent }>> {
  const events = (await readTrail(t)).filter((e) => JSON.stringify(e.entity ?? []).includes(accountId));
  return events.flatMap((event) => {
    const code = (event.subtype ?? []).map((s) => s.code).find((c) => c === 'mfa-enrolled' || c === 'mfa-removed');
    if (!code) return [];
    const details = event.entity?.flatMap((e) => e.detail ?? []) ?? [];
    const kind = details.find((d) => d.type === 'factor_kind')?.valueString;
    return [{ code, kind, event }];
  });
}

describe('the page', () => {
  test('not signed in: off to this server’s sign-in, and back to the security page; linked from /manage', async () => {
    const agent = browser();
    const start = await agent.get('/manage/security');
    expect(start.status).toBe(303);
    const authorize = new URL(start.headers.location!, ISSUER);
    expect(authorize.pathname).toBe('/authorize');
    expect(authorize.searchParams.get('client_id')).toBe(MANAGE_CLIENT_ID);
    const who = await patient();
    const { page, steps } = await through(agent, start, who);
    expect(steps).toEqual(['login']);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<h1>Security: second factors</h1>');
    expect(page.text).toContain('You have no second factor yet.');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).not.toContain('script-src');
    expect(page.text).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
    // No remove or new-codes form without a factor; the two ways to add one.
    expect(removeForms(page.text)).toEqual([]);
    expect(page.text).not.toContain('action="/manage/security/recovery-codes"');
    expect(page.text).toContain('href="/manage/security/authenticator-app"');
    expect(page.text).toContain('href="/manage/security/passkey"');
    const manage = await agent.get('/manage');
    expect(manage.text).toContain('<a href="/manage/security">Security: second factors</a>');
  });

  test('lists the person’s factors: kind, label, added, last used; recovery codes left', async () => {
    const who = await patient();
    const secret = await enrolTotp(t, who.id, who.username);
    const factors = secondFactorsOf(t);
    await factors.newRecoveryCodes(who.id);
    const [factor] = await factors.list(who.id);
    const { page } = await open('/manage/security', { ...who, totpSecret: secret });
    expect(page.status).toBe(200);
    expect(removeForms(page.text)).toEqual([factor!.id]);
    expect(page.text).toContain('<h3 id="factor-0">Authenticator app</h3>');
    expect(page.text).toContain('<dt>Kind</dt><dd>Authenticator app</dd>');
    expect(page.text).toContain(`<dt>Added</dt><dd><time datetime="${new Date(factor!.createdAt).toISOString()}">`);
    // Used for this very sign-in: a person who set up a factor is asked for it every time.
    expect(page.text).toMatch(/<dt>Last used<\/dt><dd><time datetime=/);
    expect(page.text).toContain('10 recovery codes left.');
    expect(page.text).toContain('action="/manage/security/recovery-codes"');
  });
});

describe('adding an authenticator app', () => {
  test('QR code and key, the first code adds it; recovery codes made and shown once; both on record', async () => {
    const who = await patient();
    const { agent, page, steps } = await open('/manage/security/authenticator-app', who);
    expect(steps).toEqual(['login']);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<img class="qr" src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+" alt="QR code for your authenticator app"/);
    expect(page.text).toContain('<label for="code">Code from your authenticator app</label>');
    expect(page.headers['content-security-policy']).not.toContain('script-src');
    const secret = totpSecretOnPage(page.text);
    const added = await post(agent, '/manage/security/authenticator-app', {
      csrf: csrfFrom(page.text),
      code: await nextTotpCode(secret),
      label: 'My phone',
    });
    expect(added.status).toBe(200);
    expect(added.text).toContain('Authenticator app added: My phone.');
    const codes = recoveryCodesOnPage(added.text);
    expect(codes).toHaveLength(10);
    expect(await secondFactorsOf(t).list(who.id)).toEqual([expect.objectContaining({ kind: 'totp', label: 'My phone' })]);
    expect(await secondFactorsOf(t).recoveryCodesLeft(who.id)).toBe(10);
    // Shown once: the page again has no codes.
    const again = await agent.get('/manage/security');
    expect(recoveryCodesOnPage(again.text)).toEqual([]);
    expect(again.text).toContain('10 recovery codes left.');
    const events = await factorEventsOf(who.id);
    expect(events.map((e) => [e.code, e.kind])).toEqual([
      ['mfa-enrolled', 'totp'],
      ['mfa-enrolled', 'recovery'],
    ]);
    for (const { event } of events) {
      expect(auditEventProblems(event)).toEqual([]);
      expect(JSON.stringify(event)).not.toContain(secret);
      for (const code of codes) expect(JSON.stringify(event)).not.toContain(code);
    }
  });

  test('a second app keeps the recovery codes the person has; the session counts as two-factor after adding one', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/authenticator-app', who);
    const first = await post(agent, '/manage/security/authenticator-app', {
      csrf: csrfFrom(page.text),
      code: await nextTotpCode(totpSecretOnPage(page.text)),
    });
    expect(recoveryCodesOnPage(first.text)).toHaveLength(10);
    // The person now has a factor, and proved it on the page: no new sign-in is asked for.
    const second = await agent.get('/manage/security/authenticator-app');
    expect(second.status).toBe(200);
    // The account's TOTP steps are single-use across its apps: the second app's code is of the next step.
    const added = await post(agent, '/manage/security/authenticator-app', {
      csrf: csrfFrom(second.text),
      code: await totpCodeAt(totpSecretOnPage(second.text), 1),
    });
    expect(added.status).toBe(200);
    expect(recoveryCodesOnPage(added.text)).toEqual([]);
    expect(removeForms(added.text)).toHaveLength(2);
  });

  test('the name given is cleaned, bounded and shown escaped', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/authenticator-app', who);
    const label = `<script>alert(1)</script>\u0000\u0007 ${'x'.repeat(500)}`;
    const added = await post(agent, '/manage/security/authenticator-app', {
      csrf: csrfFrom(page.text),
      code: await nextTotpCode(totpSecretOnPage(page.text)),
      label,
    });
    expect(added.status).toBe(200);
    expect(added.text).not.toContain('<script>alert(1)');
    expect(added.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const [factor] = await secondFactorsOf(t).list(who.id);
    expect(factor!.label.length).toBeLessThanOrEqual(64);
    // eslint-disable-next-line no-control-regex
    expect(factor!.label).not.toMatch(/[\u0000-\u001f]/);
  });

  test('a wrong or missing code adds nothing: a readable page with a new key, the error announced', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/authenticator-app', who);
    const secret = totpSecretOnPage(page.text);
    for (const code of ['000000', '', 'x'.repeat(500)]) {
      const wrong = await post(agent, '/manage/security/authenticator-app', { csrf: csrfFrom(page.text), code });
      expect(wrong.status).toBe(400);
      expect(wrong.text).toMatch(/<p id="enrol-error" class="error" role="alert">That code did not match/);
      expect(totpSecretOnPage(wrong.text)).not.toBe(secret);
    }
    expect(await secondFactorsOf(t).list(who.id)).toEqual([]);
  });
});

describe('adding a passkey', () => {
  test('the registration form runs this server’s scripts only; a software authenticator’s answer adds it', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/passkey', who);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.text).toContain('<script src="/static/simplewebauthn-browser.js"></script><script src="/static/webauthn.js"></script>');
    expect(page.text).not.toMatch(/<script>|\son[a-z]+=/i);
    const key = new SoftAuthenticator(rp());
    const response = key.register(registrationOptionsOn(page.text));
    const added = await post(agent, '/manage/security/passkey', {
      csrf: csrfFrom(page.text),
      response: JSON.stringify(response),
      label: 'YubiKey',
    });
    expect(added.status).toBe(200);
    expect(added.text).toContain('Security key added: YubiKey.');
    expect(recoveryCodesOnPage(added.text)).toHaveLength(10);
    expect(added.headers['content-security-policy']).not.toContain('script-src');
    expect(await secondFactorsOf(t).list(who.id)).toEqual([
      expect.objectContaining({ kind: 'webauthn', label: 'YubiKey', keyType: 'hwk' }),
    ]);
    const events = await factorEventsOf(who.id);
    expect(events.map((e) => [e.code, e.kind])).toEqual([
      ['mfa-enrolled', 'webauthn'],
      ['mfa-enrolled', 'recovery'],
    ]);
    // The same registration again is refused: its challenge was used.
    const replay = await post(agent, '/manage/security/passkey', { csrf: csrfFrom(page.text), response: JSON.stringify(response) });
    expect(replay.status).toBe(400);
    expect(replay.text).toMatch(/role="alert">This registration has expired or was already used/);
  });

  test('a registration started in another session does not complete in this one', async () => {
    const who = await patient();
    const a = await open('/manage/security/passkey', who);
    const b = await open('/manage/security/passkey', who);
    const key = new SoftAuthenticator(rp());
    // Browser A's challenge, answered, posted in browser B (its own form token).
    const stolen = key.register(registrationOptionsOn(a.page.text));
    const refused = await post(b.agent, '/manage/security/passkey', { csrf: csrfFrom(b.page.text), response: JSON.stringify(stolen) });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('role="alert"');
    expect(await secondFactorsOf(t).list(who.id)).toEqual([]);
    // In its own session it completes.
    const own = await post(a.agent, '/manage/security/passkey', { csrf: csrfFrom(a.page.text), response: JSON.stringify(stolen) });
    expect(own.status).toBe(200);
    expect(await secondFactorsOf(t).list(who.id)).toHaveLength(1);
  });

  test('an answer for another site, or no answer at all, is a readable refusal', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/passkey', who);
    const key = new SoftAuthenticator(rp());
    const phished = key.register(registrationOptionsOn(page.text), { origin: 'https://evil.example' });
    const wrong = await post(agent, '/manage/security/passkey', { csrf: csrfFrom(page.text), response: JSON.stringify(phished) });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toMatch(/role="alert">The security key could not be registered/);
    for (const response of ['', 'not json', '"a string"', '{"id":1}', `{"id":"${'x'.repeat(10_000)}"}`]) {
      const bad = await post(agent, '/manage/security/passkey', { csrf: csrfFrom(wrong.text), response });
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('role="alert"');
    }
    // Beyond the body limit: a readable refusal too.
    const huge = await post(agent, '/manage/security/passkey', { csrf: csrfFrom(wrong.text), response: 'x'.repeat(20_000) });
    expect(huge.status).toBe(413);
    expect(huge.headers['content-type']).toMatch(/^text\/html/);
    expect(await secondFactorsOf(t).list(who.id)).toEqual([]);
  });
});

describe('removing a factor', () => {
  test('removes it, on record; someone else’s factor or a made-up id is not found', async () => {
    const who = await patient();
    const secret = await enrolTotp(t, who.id, who.username);
    const other = await patient();
    await enrolTotp(t, other.id, other.username);
    const [othersFactor] = await secondFactorsOf(t).list(other.id);
    // Having a factor, the patient is asked for it at sign-in: the session is recent and proved.
    const { agent, page, steps } = await open('/manage/security', { ...who, totpSecret: secret });
    expect(steps).toEqual(['login', 'second_factor']);
    const [id] = removeForms(page.text);
    const csrfNow = csrfFrom(page.text);
    for (const bogus of [othersFactor!.id, 'not-an-id', '00000000-0000-0000-0000-000000000000', '..%2F..%2Fx']) {
      const notFound = await post(agent, `/manage/security/factors/${bogus}/remove`, { csrf: csrfNow });
      expect(notFound.status).toBe(404);
      expect(notFound.text).toContain('There is no such second factor on your account.');
    }
    expect(await secondFactorsOf(t).list(other.id)).toHaveLength(1);
    const removed = await post(agent, `/manage/security/factors/${id}/remove`, { csrf: csrfNow });
    expect(removed.status).toBe(200);
    expect(removed.text).toContain('Authenticator app removed: Authenticator app.');
    expect(removeForms(removed.text)).toEqual([]);
    expect(await secondFactorsOf(t).list(who.id)).toEqual([]);
    const events = await factorEventsOf(who.id);
    expect(events.map((e) => [e.code, e.kind])).toEqual([['mfa-removed', 'totp']]);
    expect(auditEventProblems(events[0]!.event)).toEqual([]);
  });

  test('the last factor of a person the policy requires is not removed; with another one it is', async () => {
    const dr = await clinician();
    const secret = await enrolTotp(t, dr.id, dr.username);
    const { agent, page, steps } = await open('/manage/security', { ...dr, totpSecret: secret });
    expect(steps).toEqual(['login', 'second_factor']);
    expect(page.text).toContain('Your organisation requires one for your account.');
    const [only] = removeForms(page.text);
    const refused = await post(agent, `/manage/security/factors/${only}/remove`, { csrf: csrfFrom(page.text) });
    expect(refused.status).toBe(409);
    expect(refused.text).toMatch(/<p id="security-error" class="error" role="alert">This is your only second factor/);
    expect(await secondFactorsOf(t).list(dr.id)).toHaveLength(1);
    expect((await factorEventsOf(dr.id)).filter((e) => e.code === 'mfa-removed')).toEqual([]);
    // A passkey added, the app can go.
    const passkeyPage = await agent.get('/manage/security/passkey');
    const key = new SoftAuthenticator(rp(), { synced: true });
    const added = await post(agent, '/manage/security/passkey', {
      csrf: csrfFrom(passkeyPage.text),
      response: JSON.stringify(key.register(registrationOptionsOn(passkeyPage.text))),
    });
    expect(added.text).toContain('Passkey added: Passkey.');
    const removed = await post(agent, `/manage/security/factors/${only}/remove`, { csrf: csrfFrom(added.text) });
    expect(removed.status).toBe(200);
    expect(await secondFactorsOf(t).list(dr.id)).toEqual([expect.objectContaining({ kind: 'webauthn', keyType: 'swk' })]);
  });

  test('both factors removed at once from two tabs: one goes, the last one stays', async () => {
    const dr = await clinician();
    const secret = await enrolTotp(t, dr.id, dr.username);
    const { agent, page } = await open('/manage/security', { ...dr, totpSecret: secret });
    const passkeyPage = await agent.get('/manage/security/passkey');
    const added = await post(agent, '/manage/security/passkey', {
      csrf: csrfFrom(passkeyPage.text),
      response: JSON.stringify(new SoftAuthenticator(rp()).register(registrationOptionsOn(passkeyPage.text))),
    });
    const both = removeForms(added.text);
    expect(both).toHaveLength(2);
    const answers = await Promise.all(
      both.map((id) => post(agent, `/manage/security/factors/${id}/remove`, { csrf: csrfFrom(page.text) })),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    expect(await secondFactorsOf(t).list(dr.id)).toHaveLength(1);
    expect((await factorEventsOf(dr.id)).filter((e) => e.code === 'mfa-removed')).toHaveLength(1);
  });
});

describe('recovery codes', () => {
  test('new codes replace the old ones and are shown once, on record', async () => {
    const who = await patient();
    const { agent, page } = await open('/manage/security/authenticator-app', who);
    const first = await post(agent, '/manage/security/authenticator-app', {
      csrf: csrfFrom(page.text),
      code: await nextTotpCode(totpSecretOnPage(page.text)),
    });
    const old = recoveryCodesOnPage(first.text);
    const renewed = await post(agent, '/manage/security/recovery-codes', { csrf: csrfFrom(first.text) });
    expect(renewed.status).toBe(200);
    expect(renewed.text).toContain('New recovery codes made: the earlier ones no longer work.');
    const codes = recoveryCodesOnPage(renewed.text);
    expect(codes).toHaveLength(10);
    expect(codes.filter((c) => old.includes(c))).toEqual([]);
    expect(await secondFactorsOf(t).recoveryCodesLeft(who.id)).toBe(10);
    // An old code no longer signs in; a new one does.
    const factors = secondFactorsOf(t);
    expect((await factors.verify(who.id, { kind: 'recovery', code: old[0]! }, 'test')).ok).toBe(false);
    expect((await factors.verify(who.id, { kind: 'recovery', code: codes[0]! }, 'test')).ok).toBe(true);
    const events = await factorEventsOf(who.id);
    expect(events.map((e) => [e.code, e.kind])).toEqual([
      ['mfa-enrolled', 'totp'],
      ['mfa-enrolled', 'recovery'],
      ['mfa-enrolled', 'recovery'],
    ]);
    for (const { event } of events) for (const code of [...old, ...codes]) expect(JSON.stringify(event)).not.toContain(code);
  });

  test('without a factor there are none to make: a readable refusal', async () => {
    const who = await patient();
    // The page offers no such form; a post made by hand (with the token of /manage) is refused readably.
    const { agent, page } = await open('/manage', who);
    const res = await post(agent, '/manage/security/recovery-codes', { csrf: csrfFrom(page.text) });
    expect(res.status).toBe(400);
    expect(res.text).toContain('role="alert">Recovery codes stand in for a second factor');
    expect(await secondFactorsOf(t).recoveryCodesLeft(who.id)).toBe(0);
  });
});

describe('forms', () => {
  test('a post without the form token, with another session’s, or from another site is refused (403) and changes nothing', async () => {
    const who = await patient();
    const secret = await enrolTotp(t, who.id, who.username);
    const { agent, page } = await open('/manage/security', { ...who, totpSecret: secret });
    const [id] = removeForms(page.text);
    const other = await open('/manage', await patient());
    const stale = csrfFrom(other.page.text);
    for (const path of [
      `/manage/security/factors/${id}/remove`,
      '/manage/security/recovery-codes',
      '/manage/security/authenticator-app',
      '/manage/security/passkey',
    ]) {
      for (const fields of [{}, { csrf: stale }, { csrf: 'x' }] as Array<Record<string, string>>) {
        const res = await post(agent, path, fields);
        expect(res.status).toBe(403);
        expect(res.text).toContain('The form could not be verified');
      }
      const crossSite = await post(agent, path, { csrf: csrfFrom(page.text) }).set('Sec-Fetch-Site', 'cross-site');
      expect(crossSite.status).toBe(403);
    }
    expect(await secondFactorsOf(t).list(who.id)).toHaveLength(1);
    expect(await factorEventsOf(who.id)).toEqual([]);
  });

  test('a post with no session at all asks to sign in (401), never a 500', async () => {
    const res = await post(browser(), '/manage/security/recovery-codes', { csrf: 'x' });
    expect(res.status).toBe(401);
    const get = await browser().get('/manage/security/passkey');
    expect(get.status).toBe(303);
  });
});

/** Moves the clock `minutes` ahead for the server and the test alike (the sign-in's auth_time stays where it was). */
function later(minutes: number) {
  const offset = minutes * 60 * 1000;
  const real = Date.now.bind(Date);
  return jest.spyOn(Date, 'now').mockImplementation(() => real() + offset);
}

describe('a recent sign-in', () => {
  test('ten minutes on, changes ask for the password and the factor again; nothing changes meanwhile', async () => {
    const who = await patient();
    const secret = await enrolTotp(t, who.id, who.username);
    const withApp = { ...who, totpSecret: secret };
    // Recent, the person's factor proved on the way: the page shows the forms and changes would work.
    const { agent, steps: opened } = await open('/manage/security', withApp);
    expect(opened).toEqual(['login', 'second_factor']);
    const page = await agent.get('/manage/security');
    const [id] = removeForms(page.text);
    const csrf = csrfFrom(page.text);
    const clock = later(11);
    try {
      const remove = await post(agent, `/manage/security/factors/${id}/remove`, { csrf });
      expect(remove.status).toBe(303);
      const authorize = new URL(remove.headers.location!, ISSUER);
      expect(authorize.pathname).toBe('/authorize');
      expect(authorize.searchParams.get('prompt')).toBe('login');
      expect(authorize.searchParams.get('acr_values')).toBe(ACR.aal2);
      expect(await secondFactorsOf(t).list(who.id)).toHaveLength(1);
      const codes = await post(agent, '/manage/security/recovery-codes', { csrf });
      expect(codes.status).toBe(303);
      expect(await secondFactorsOf(t).recoveryCodesLeft(who.id)).toBe(0);
      expect((await post(agent, '/manage/security/authenticator-app', { csrf, code: '123456' })).status).toBe(303);
      const add = await agent.get('/manage/security/passkey');
      expect(add.status).toBe(303);
      // The listing itself needs no recent sign-in.
      expect((await agent.get('/manage/security')).status).toBe(200);
      // Signing in again (password and the app's code) comes back to the page asked for, and changes work.
      const { page: back, steps } = await through(agent, add, withApp);
      expect(steps).toEqual(['login', 'second_factor']);
      expect(back.text).toContain('data-webauthn="register"');
      const removed = await post(agent, `/manage/security/factors/${id}/remove`, { csrf: csrfFrom(back.text) });
      expect(removed.status).toBe(200);
      expect(await secondFactorsOf(t).list(who.id)).toEqual([]);
    } finally {
      clock.mockRestore();
    }
  });

  test('a sign-in session reused for the page is not recent: what counts is when the person authenticated', async () => {
    const who = await patient();
    const { agent } = await open('/manage/security', who);
    const clock = later(11);
    try {
      // The page's own session gone (the sign-in session stays): the page signs in again without a password.
      agent.jar.setCookie('manage_session=; Path=/manage; Expires=Thu, 01 Jan 1970 00:00:00 GMT', '127.0.0.1', '/manage');
      const start = await agent.get('/manage/security');
      expect(start.status).toBe(303);
      expect(start.headers.location).toMatch(/^\/authorize\?/);
      const reopened = await through(agent, start, who);
      expect(reopened.steps).toEqual([]);
      expect(reopened.page.text).toContain('<h1>Security: second factors</h1>');
      // A new page session, from a sign-in eleven minutes old: adding asks for the password again (no factor yet: only that).
      const add = await agent.get('/manage/security/authenticator-app');
      expect(add.status).toBe(303);
      const authorize = new URL(add.headers.location!, ISSUER);
      expect(authorize.searchParams.get('prompt')).toBe('login');
      expect(authorize.searchParams.has('acr_values')).toBe(false);
      const { page, steps } = await through(agent, add, who);
      expect(steps).toEqual(['login']);
      expect(page.text).toContain('<code id="totp-secret">');
    } finally {
      clock.mockRestore();
    }
  });
});
