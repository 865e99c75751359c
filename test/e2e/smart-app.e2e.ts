import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { launchChromium, screenshot } from './support/browser.js';
import { BrowserSession, allowIfAsked, appResult, decide, onConsentPage, signIn } from './support/flows.js';
import { createLaunch, startStack, type Stack } from './support/stack.js';

/**
 * The example SMART app (official `fhirclient`) in Chromium against the real server over plain
 * http on localhost (development mode): every launch kind, a refusal and a withdrawal. Each flow
 * also fails on a CSP violation, an uncaught page error, or a serious/critical axe-core finding on
 * any page it passes through; screenshots go to test-results/e2e-screenshots/.
 */

let stack: Stack;
let browser: Browser;
const sessions: BrowserSession[] = [];

beforeAll(async () => {
  [stack, browser] = await Promise.all([startStack(), launchChromium()]);
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await browser?.close();
  await stack?.close();
});

async function session(): Promise<BrowserSession> {
  const s = await BrowserSession.open(browser);
  sessions.push(s);
  return s;
}

function rsCalls(since: number) {
  return stack.rsLog.slice(since).filter((l) => l.path.startsWith('/fhir/Patient'));
}

describe('fhirclient example app in Chromium (http, development mode)', () => {
  test('(a) standalone launch as a patient: login, consent, token, reads her own Patient', async () => {
    const s = await session();
    const mark = stack.rsLog.length;
    await s.page.goto(`${stack.app.origin}/`);
    await s.check('app home', s.page, 'app-home');
    await s.page.click('#standalone');
    await signIn(s, 'pat.jones', 'demo-pat-jones-2026', 'login');
    await onConsentPage(s, 'consent-patient');
    await decide(s, 'allow');
    const result = await appResult(s.page);
    expect(result).toMatchObject({ name: 'Pat Jones', id: 'pat-jones' });
    expect(result.scope?.split(' ')).toEqual(expect.arrayContaining(['launch/patient', 'patient/*.rs', 'offline_access']));
    await s.check('app patient', s.page, 'app-patient');
    expect(rsCalls(mark)).toEqual([{ method: 'GET', path: '/fhir/Patient/pat-jones', status: 200, client: 'e2e-app' }]);
    s.expectClean();
  });

  test('(b) a caregiver chooses which patient to open', async () => {
    const s = await session();
    await s.page.goto(`${stack.app.origin}/launch`);
    await signIn(s, 'care.jones', 'demo-care-jones-2026');
    await s.page.locator('form[action$="/patient"]').waitFor();
    await s.check('picker (caregiver)', s.page, 'picker-caregiver');
    await s.page.getByLabel('Sam Jones').check();
    await s.page.click('form[action$="/patient"] button[type=submit]');
    await onConsentPage(s, 'consent-caregiver');
    await decide(s, 'allow');
    expect(await appResult(s.page)).toMatchObject({ name: 'Sam Jones', id: 'sam-jones' });
    s.expectClean();
  });

  test('(c) a practitioner searches the FHIR server for the patient', async () => {
    const s = await session();
    const mark = stack.rsLog.length;
    await s.page.goto(`${stack.app.origin}/launch`);
    await signIn(s, 'dr.smith', 'demo-dr-smith-2026');
    await s.page.locator('form[action$="/patient-search"]').waitFor();
    await s.check('picker search', s.page, 'picker-search');
    await s.page.fill('#name', 'jones');
    await s.page.click('form[action$="/patient-search"] button[type=submit]');
    await s.page.locator('#results-heading').waitFor();
    await s.check('picker results', s.page, 'picker-search-results');
    // The search reached the example FHIR server with the server's own patient-search token.
    expect(stack.rsLog.slice(mark)).toContainEqual(
      expect.objectContaining({
        path: expect.stringMatching(/^\/fhir\/Patient\?name=jones/),
        status: 200,
        client: 'smart-authz-patient-search',
      }),
    );
    await s.page.locator('label', { hasText: 'Pat Jones' }).click();
    await s.page.click('form[action$="/patient"] button[type=submit]');
    await onConsentPage(s, 'consent-practitioner');
    await decide(s, 'allow');
    expect(await appResult(s.page)).toMatchObject({ name: 'Pat Jones', id: 'pat-jones' });
    s.expectClean();
  });

  test('(d) EHR launch from a launch context created through the API', async () => {
    const launch = await createLaunch(stack, { patient: 'sam-jones', encounter: 'enc-1', need_patient_banner: false });
    const s = await session();
    await s.page.goto(`${stack.app.origin}/launch?iss=${encodeURIComponent(stack.rs.base)}&launch=${encodeURIComponent(launch)}`);
    await signIn(s, 'dr.smith', 'demo-dr-smith-2026');
    await onConsentPage(s, 'consent-ehr');
    await decide(s, 'allow');
    const result = await appResult(s.page);
    expect(result).toMatchObject({ name: 'Sam Jones', id: 'sam-jones' });
    expect(result.scope?.split(' ')).toEqual(expect.arrayContaining(['launch', 'patient/*.rs']));
    s.expectClean();
  });

  test('(f) withdrawal on the management page: the app’s next FHIR call is refused', async () => {
    const s = await session();
    await s.page.goto(`${stack.app.origin}/launch`);
    await signIn(s, 'pat.jones', 'demo-pat-jones-2026');
    // (a) consented for this app and patient already: remembered, so usually no consent page.
    await allowIfAsked(s);
    expect(await appResult(s.page)).toMatchObject({ id: 'pat-jones' });

    const manage = await s.newPage();
    await manage.goto(`${stack.issuer}/manage`);
    // Every consent for this app on Pat's record: hers from (a) and Dr Smith's from (c).
    const rows = () => manage.locator('ul.consents > li', { hasText: 'Example SMART app (e2e)' });
    await rows().first().waitFor();
    await s.check('manage', manage, 'manage');
    const before = await rows().count();
    expect(before).toBeGreaterThanOrEqual(1);
    for (let left = before; left > 0; left -= 1) {
      // The form posts, then the list comes back (303): wait for that page, not the old notice.
      await Promise.all([
        manage.waitForNavigation({ waitUntil: 'load' }),
        rows().first().locator('button', { hasText: 'Withdraw access' }).click(),
      ]);
      await manage.locator('p.notice').waitFor();
      expect(await rows().count()).toBe(left - 1);
    }
    await s.check('manage after withdrawal', manage, 'manage-withdrawn');

    const mark = stack.rsLog.length;
    await s.page.bringToFront();
    await s.page.click('#reload');
    // The record stays on screen until the read fails, so wait for the error itself.
    const error = s.page.locator('#error:not([hidden])');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/401 Unauthorized — The access token is not active/);
    await screenshot(s.page, 'app-error-withdrawn');
    expect(rsCalls(mark)).toEqual([expect.objectContaining({ path: '/fhir/Patient/pat-jones', status: 401 })]);
    s.expectClean();
  });

  test('(e) Deny on the consent page: the app gets access_denied and no token', async () => {
    const s = await session();
    const mark = stack.rsLog.length;
    // The second registration: no consent to remember yet, so the consent page is asked.
    await s.page.goto(`${stack.appB.origin}/launch`);
    await signIn(s, 'pat.jones', 'demo-pat-jones-2026');
    await onConsentPage(s);
    await decide(s, 'deny');
    const result = await appResult(s.page);
    expect(result.error).toMatch(/access_denied/);
    await s.check('app error', s.page, 'app-error-denied');
    expect(rsCalls(mark)).toEqual([]);
    s.expectClean();
  });

  test('the server’s error page (an unregistered redirect_uri) is readable and accessible', async () => {
    const s = await session();
    const url = new URL(`${stack.issuer}/authorize`);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: 'e2e-app',
      redirect_uri: 'https://evil.example/cb',
      scope: 'openid',
      state: 'x',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const res = await s.page.goto(url.toString());
    expect(res?.status()).toBe(400);
    await expect(s.page.locator('h1').textContent()).resolves.toBeTruthy();
    await s.check('server error', s.page, 'server-error');
    s.expectClean();
  });
});
