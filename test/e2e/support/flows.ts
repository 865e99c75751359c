import { expect } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeProblems, screenshot, watchedPage, type AxeProblem, type PageWatch } from './browser.js';

/** Pages already checked by axe-core in this test file (each kind once: a run takes a second or two). */
const checkedPages = new Set<string>();

/**
 * One person's browser for one test: a fresh context (no cookies), every page's CSP reports and
 * errors recorded, and an accessibility check of every distinct page it is asked to look at.
 */
export class BrowserSession {
  readonly a11y: (AxeProblem & { page: string })[] = [];

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly watch: PageWatch,
  ) {}

  static async open(browser: Browser): Promise<BrowserSession> {
    const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
    const watch: PageWatch = { csp: [], errors: [] };
    return new BrowserSession(context, await watchedPage(context, watch), watch);
  }

  async newPage(): Promise<Page> {
    return watchedPage(this.context, this.watch);
  }

  /** axe-core on the page (once per `label` in a test file), and a screenshot when `shot` names one. */
  async check(label: string, page: Page = this.page, shot?: string): Promise<void> {
    if (shot) await screenshot(page, shot);
    if (checkedPages.has(label)) return;
    checkedPages.add(label);
    for (const p of await axeProblems(page)) this.a11y.push({ ...p, page: label });
  }

  /** What every flow must end with: no CSP violation, no uncaught error, no serious a11y problem. */
  expectClean(): void {
    expect(this.watch.csp).toEqual([]);
    expect(this.watch.errors).toEqual([]);
    expect(this.a11y).toEqual([]);
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

export async function signIn(s: BrowserSession, userName: string, password: string, shot?: string): Promise<void> {
  const form = s.page.locator('form[action$="/login"]');
  await form.waitFor();
  await s.check('login', s.page, shot);
  await s.page.fill('#username', userName);
  await s.page.fill('#password', password);
  await s.page.click('form[action$="/login"] button[type=submit]');
}

export async function onConsentPage(s: BrowserSession, shot?: string): Promise<void> {
  await s.page.locator('form[action$="/consent"]').waitFor();
  await s.check('consent', s.page, shot);
}

export async function decide(s: BrowserSession, decision: 'allow' | 'deny'): Promise<void> {
  await s.page.click(`form[action$="/consent"] button[value=${decision}]`);
}

/** Allows on the consent page when it comes; a remembered consent goes straight back to the app. */
export async function allowIfAsked(s: BrowserSession): Promise<void> {
  const consent = s.page.locator('form[action$="/consent"]');
  await consent.or(s.page.locator('#patient:not([hidden]), #error:not([hidden])')).first().waitFor({ timeout: 20_000 });
  if (await consent.count()) await decide(s, 'allow');
}

/** The example app's callback page once it has read the patient (or shown an error). */
export async function appResult(page: Page): Promise<{ name?: string; id?: string; error?: string; scope?: string }> {
  await page.locator('#patient:not([hidden]), #error:not([hidden])').first().waitFor({ timeout: 20_000 });
  const text = async (sel: string) =>
    (await page.locator(`${sel}:not([hidden])`).count()) ? ((await page.locator(sel).textContent()) ?? undefined) : undefined;
  const error = await text('#error');
  if (error) return { error };
  return {
    name: (await page.locator('#patient-name').textContent()) ?? '',
    id: (await page.locator('#patient-id').textContent()) ?? '',
    scope: (await page.locator('#scope').textContent()) ?? '',
  };
}

/**
 * A relying party's authorization in the browser: the user signs in and allows, and the browser
 * lands on the party's redirect URI (answered here: no server behind it). Returns that URL, code
 * and all, for the party to exchange.
 */
export async function authorizeAtRelyingParty(
  s: BrowserSession,
  authorizationUrl: string,
  redirectUri: string,
  user: { userName: string; password: string },
): Promise<URL> {
  await s.page.route(`${redirectUri}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'signed in' }));
  await s.page.goto(authorizationUrl);
  await signIn(s, user.userName, user.password);
  await onConsentPage(s);
  await decide(s, 'allow');
  await s.page.waitForURL(`${redirectUri}**`);
  return new URL(s.page.url());
}
