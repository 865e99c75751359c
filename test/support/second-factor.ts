/*
 * Second factors in tests: TOTP codes computed here from the secret, as an authenticator app
 * would, and factors enrolled for a user straight through the records (when a test is about
 * what comes after enrolment).
 */
import { generate } from 'otplib';
import { LoginLockout } from '../../src/records/directory/lockout.js';
import { createSecondFactors, type SecondFactors } from '../../src/records/directory/factors/second-factors.js';
import type { TestApp } from './test-app.js';
import { unescapeHtml } from './smart-flow.js';

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
