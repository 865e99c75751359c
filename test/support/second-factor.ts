/*
 * Second factors in tests: TOTP codes computed here from the secret, as an authenticator app
 * would, and factors enrolled for a user straight through the records (when a test is about
 * what comes after enrolment).
 */
import { generate } from 'otplib';
import { LoginLockout } from '../../src/records/directory/lockout.js';
import { createSecondFactors, type SecondFactors } from '../../src/records/directory/factors/second-factors.js';
import type { TestApp } from './test-app.js';
import { browse, postForm, promptOfPage, unescapeHtml, type Agent, type BrowserStop } from './smart-flow.js';

const PERIOD = 30;

/** The steps already used per secret: the server accepts each step once, so a test never repeats one. */
const usedSteps = new Map<string, number>();

/**
 * A code an authenticator app would show: the current 30-second step, or the next one when the
 * current one was already used (the server accepts one step either side of now). Throws when
 * both are used; a test then waits for the next step.
 */
export async function nextTotpCode(secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const current = Math.floor(now / PERIOD);
  const last = usedSteps.get(secret) ?? -1;
  const step = Math.max(current, last + 1);
  if (step > current + 1) throw new Error('both usable TOTP steps are used: wait for the next 30-second step');
  usedSteps.set(secret, step);
  return generate({ secret, algorithm: 'sha1', digits: 6, period: PERIOD, epoch: step * PERIOD });
}

/** A code of a given step offset from now, without marking anything used (for replay and drift tests). */
export async function totpCodeAt(secret: string, stepsFromNow: number): Promise<string> {
  const step = Math.floor(Date.now() / 1000 / PERIOD) + stepsFromNow;
  return generate({ secret, algorithm: 'sha1', digits: 6, period: PERIOD, epoch: step * PERIOD });
}

export function secondFactorsOf(t: TestApp): SecondFactors {
  return createSecondFactors(t.config, t.redis, t.keyspace, new LoginLockout(t.redis, t.keyspace, t.config.login));
}

/** Enrols an authenticator app for the user through the records; returns its secret. */
export async function enrolTotp(t: TestApp, userId: string, userName = 'user'): Promise<string> {
  const factors = secondFactorsOf(t);
  const { secret } = await factors.beginTotp(userId, userName);
  const factor = await factors.confirmTotp(userId, await nextTotpCode(secret));
  if (!factor) throw new Error('TOTP enrolment failed');
  return secret;
}

/** The TOTP secret an enrolment page shows (for a test to "scan"). */
export function totpSecretOnPage(html: string): string {
  const secret = /<code id="totp-secret">([^<]+)<\/code>/.exec(html)?.[1];
  if (!secret) throw new Error('no TOTP secret on the page');
  return unescapeHtml(secret);
}

/** The recovery codes a page shows once. */
export function recoveryCodesOnPage(html: string): string[] {
  return [...html.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => unescapeHtml(m[1]!));
}

/** Each person's authenticator app secret, once they have set one up. */
const secrets = new Map<string, string>();

/**
 * Breaking the glass needs a fresh second factor: a person without one sets up an authenticator
 * app on the way (and goes on past the recovery codes), one with one gives its next code.
 */
export async function passSecondFactor(agent: Agent, username: string, stop: BrowserStop): Promise<BrowserStop> {
  for (let i = 0; i < 3 && stop.kind === 'page'; i++) {
    const { uid, res } = stop;
    if (stop.prompt === 'enrol_factor') {
      const secret = totpSecretOnPage(res.text);
      secrets.set(username, secret);
      const enrolled = await postForm(agent, uid, 'second-factor/enrol-totp', res, { code: await nextTotpCode(secret) });
      stop = { kind: 'page', uid, prompt: promptOfPage(enrolled.text), res: enrolled };
    } else if (stop.prompt === 'factor_enrolled') {
      stop = await browse(agent, await postForm(agent, uid, 'second-factor/continue', res, {}));
    } else if (stop.prompt === 'second_factor') {
      const code = await nextTotpCode(secrets.get(username)!);
      stop = await browse(agent, await postForm(agent, uid, 'second-factor', res, { method: 'totp', code }));
    } else break;
  }
  return stop;
}

/** Moves the sign-in time of every session of the account back, as if it had happened `seconds` earlier. */
export async function ageSessions(t: TestApp, accountId: string, seconds: number): Promise<void> {
  const members = await t.redis.zrange(t.keyspace.ownerIndex('account', accountId), '0', '-1');
  const ids = members.filter((m) => m.startsWith('Session:')).map((m) => m.slice('Session:'.length));
  if (!ids.length) throw new Error(`account ${accountId} has no session`);
  for (const id of ids) {
    const session = await t.app.Session.find(id);
    if (!session) continue;
    session.loginTs = session.loginTs! - seconds;
    await session.save(3600);
  }
}
