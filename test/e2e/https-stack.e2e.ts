import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { get as httpsGet } from 'node:https';
import * as client from 'openid-client';
import type { Browser } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { BrowserSession, appResult, authorizeAtRelyingParty, decide, onConsentPage, signIn } from './support/flows.js';
import { APP_CLIENT_ID, startStack, type Stack } from './support/stack.js';

/**
 * The same flows over https, the server serving TLS itself with a throw-away certificate
 * (AUTHZ_TLS_CERT/KEY). Chromium trusts exactly that certificate by its public-key hash, and
 * Node-side clients by a fetch that trusts it as a CA, so nothing here ignores certificate
 * errors wholesale. Covers secure cookies, the fhirclient launch, the POST form of the
 * authorization request (form-action CSP on both sides), and openid-client's code flow.
 */

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  stack = await startStack({
    https: true,
    clients: (app) => [
      {
        client_id: 'e2e-rp-tls',
        client_name: 'openid-client over TLS',
        smart_client_kind: 'public_app',
        redirect_uris: [`${app}/rp-callback`],
        smart_scopes: ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs'],
      },
    ],
  });
  browser = await launchChromium([`--ignore-certificate-errors-spki-list=${stack.tls!.spkiHash}`]);
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

function cookiesOf(url: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca: stack.tls!.pem }, (res) => {
      res.resume();
      resolve(res.headers['set-cookie'] ?? []);
    }).on('error', reject);
  });
}

describe('over https with the server’s own TLS', () => {
  test('the issuer is https and its interaction cookies are Secure', async () => {
    expect(stack.issuer).toMatch(/^https:\/\/localhost:\d+$/);
    const meta = (await (await stack.fetch(`${stack.issuer}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      authorization_endpoint: string;
    };
    expect(meta.issuer).toBe(stack.issuer);
    const verifier = randomBytes(32).toString('base64url');
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: APP_CLIENT_ID,
      redirect_uri: `${stack.app.origin}/callback`,
      scope: 'openid fhirUser launch/patient patient/*.rs',
      aud: stack.rs.base,
      state: 's',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const cookies = await cookiesOf(url.href);
    expect(cookies.length).toBeGreaterThan(0);
    for (const c of cookies) expect(c.toLowerCase()).toContain('; secure');
  });

  test('fhirclient standalone launch as a patient', async () => {
    const s = await BrowserSession.open(browser);
    try {
      await s.page.goto(`${stack.app.origin}/launch`);
      await signIn(s, 'pat.jones', 'demo-pat-jones-2026', 'login-https');
      await onConsentPage(s, 'consent-https');
      await decide(s, 'allow');
      expect(await appResult(s.page)).toMatchObject({ name: 'Pat Jones', id: 'pat-jones' });
      s.expectClean();
    } finally {
      await s.close();
    }
  });

  test('the POST form of the authorization request', async () => {
    const s = await BrowserSession.open(browser);
    try {
      const verifier = randomBytes(32).toString('base64url');
      const redirectUri = `${stack.app.origin}/post-callback`;
      await s.page.route(`${redirectUri}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'code received' }));
      const fields = {
        response_type: 'code',
        client_id: APP_CLIENT_ID,
        redirect_uri: redirectUri,
        scope: 'openid fhirUser launch/patient patient/*.rs',
        aud: stack.rs.base,
        state: 'post-state',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      };
      // A form on the app's own page (its CSP allows form-action to the issuer), submitted by a
      // click: the app's CSP forbids inline script, and this is what a user's browser would do.
      await s.page.goto(`${stack.app.origin}/`);
      await s.page.evaluate(
        ({ action, fields: values }) => {
          // Runs in the page (this file is type-checked without the DOM library).
          interface El {
            append(...nodes: El[]): void;
            method: string;
            action: string;
            type: string;
            name: string;
            value: string;
            id: string;
            textContent: string | null;
          }
          const document = (
            globalThis as unknown as { document: { createElement(tag: string): El; querySelector(selector: string): El | null } }
          ).document;
          const form = document.createElement('form');
          form.method = 'post';
          form.action = action;
          for (const [name, value] of Object.entries(values)) {
            const input = document.createElement('input');
            input.type = 'hidden';
            input.name = name;
            input.value = value;
            form.append(input);
          }
          const button = document.createElement('button');
          button.type = 'submit';
          button.id = 'post-authorize';
          button.textContent = 'Sign in (POST)';
          form.append(button);
          document.querySelector('main')!.append(form);
        },
        { action: `${stack.issuer}/authorize`, fields },
      );
      await s.page.click('#post-authorize');
      await signIn(s, 'care.jones', 'demo-care-jones-2026');
      await s.page.locator('form[action$="/patient"]').waitFor();
      await s.page.getByLabel('Pat Jones').check();
      await s.page.click('form[action$="/patient"] button[type=submit]');
      await onConsentPage(s);
      await decide(s, 'allow');
      await s.page.waitForURL(`${redirectUri}**`);
      const back = new URL(s.page.url());
      expect(back.searchParams.get('state')).toBe('post-state');
      expect(back.searchParams.get('iss')).toBe(stack.issuer);
      s.expectClean();

      const res = await stack.fetch(`${stack.issuer}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: back.searchParams.get('code')!,
          redirect_uri: redirectUri,
          client_id: APP_CLIENT_ID,
          code_verifier: verifier,
        }),
      });
      const token = (await res.json()) as { access_token: string; patient: string };
      expect(res.status).toBe(200);
      expect(token.patient).toBe('pat-jones');
      const fhir = await fetch(`${stack.rs.base}/Patient/pat-jones`, { headers: { Authorization: `Bearer ${token.access_token}` } });
      expect(fhir.status).toBe(200);
      const other = await fetch(`${stack.rs.base}/Patient/sam-jones`, { headers: { Authorization: `Bearer ${token.access_token}` } });
      expect(other.status).toBe(403);
    } finally {
      await s.close();
    }
  });

  test('openid-client code flow over TLS (no allowInsecureRequests)', async () => {
    const config = await client.discovery(new URL(stack.issuer), 'e2e-rp-tls', undefined, client.None(), {
      [client.customFetch]: stack.fetch,
    });
    const redirectUri = `${stack.app.origin}/rp-callback`;
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid fhirUser launch/patient patient/*.rs',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      aud: stack.rs.base,
    });
    const s = await BrowserSession.open(browser);
    try {
      const callback = await authorizeAtRelyingParty(s, url.href, redirectUri, { userName: 'pat.jones', password: 'demo-pat-jones-2026' });
      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      expect(tokens.claims()).toMatchObject({ iss: stack.issuer, aud: 'e2e-rp-tls', fhirUser: `${stack.rs.base}/Patient/pat-jones` });
      const fhir = await fetch(`${stack.rs.base}/Patient/pat-jones`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
      expect(fhir.status).toBe(200);
      s.expectClean();
    } finally {
      await s.close();
    }
  });
});
