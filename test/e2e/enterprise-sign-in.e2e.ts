import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import type { Browser, CDPSession } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { BrowserSession, allowIfAsked, appResult, signIn } from './support/flows.js';
import { createLaunch, startStack, type Stack } from './support/stack.js';
import { nextTotpCode } from '../support/second-factor.js';
import { startUpstreamIdp, type UpstreamIdp } from '../support/upstream-idp.js';

/**
 * Enterprise sign-in in Chromium against the real server (development mode, demo data), with
 * every practitioner required to use a second factor and a second oidc-provider as the hospital's
 * identity provider: a practitioner signs in there (Chromium follows the real redirects both
 * ways), sets up a passkey on Chromium's virtual authenticator (DevTools WebAuthn domain) during
 * an EHR launch, and the app's id_token says so; a patient sets up an authenticator app when an app
 * asks for AAL2, and her next standalone launch asks for its code (computed here, as her phone would).
 */

const RP_ID = 'e2e-mfa-rp';
const AAL2 = 'http://idmanagement.gov/ns/assurance/aal/2';
const AAL2_PHR = 'http://idmanagement.gov/ns/assurance/aal/2?phishing_resistant=true';
let stack: Stack;
let browser: Browser;
let idp: UpstreamIdp;
const insecure = { execute: [client.allowInsecureRequests] };

beforeAll(async () => {
  [stack, browser] = await Promise.all([
    startStack({
      env: async (issuer) => {
        // The hospital's IdP knows Dr Smith by user name and does no multi-factor of its own.
        idp = await startUpstreamIdp({ redirectUris: [`${issuer}/federation/hospital/callback`] });
        idp.addUser({ sub: 'upstream-smith', claims: { preferred_username: 'dr.smith', name: 'Dr Smith' }, amr: ['pwd'] });
        const providers = join(mkdtempSync(join(tmpdir(), 'smart-authz-e2e-idp-')), 'providers.json');
        writeFileSync(
          providers,
          JSON.stringify([
            {
              id: 'hospital',
              displayName: 'General Hospital',
              issuer: idp.issuer,
              clientId: idp.clientId,
              clientSecret: idp.clientSecret,
              link: [{ claim: 'preferred_username', attribute: 'userName' }],
            },
          ]),
        );
        return { AUTHZ_MFA_REQUIRE_FHIR_USER_TYPES: 'Practitioner', AUTHZ_FEDERATION_PROVIDERS: providers };
      },
      clients: (app) => [
        {
          client_id: RP_ID,
          client_name: 'Enterprise sign-in relying party (e2e)',
          smart_client_kind: 'public_app',
          redirect_uris: [`${app}/rp-callback`],
          smart_scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'patient/*.rs', 'user/*.rs'],
        },
      ],
    }),
    launchChromium(),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  await idp?.close();
});

/** Chromium's virtual platform authenticator with user verification (a laptop's fingerprint reader). */
async function virtualAuthenticator(s: BrowserSession): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await s.context.newCDPSession(s.page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** The relying party's authorization URL, and what it needs to finish. */
async function relyingParty(params: Record<string, string>) {
  const config = await client.discovery(new URL(stack.issuer), RP_ID, undefined, client.None(), insecure);
  const redirectUri = `${stack.app.origin}/rp-callback`;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    aud: stack.rs.base,
    ...params,
  });
  return {
    url,
    redirectUri,
    finish: (callback: URL) =>
      client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      }),
  };
}

describe('second factors in Chromium', () => {
  test('a practitioner signs in at the hospital IdP, sets up a passkey during an EHR launch; the id_token says pwd, hwk, mfa at phishing-resistant AAL2', async () => {
    const s = await BrowserSession.open(browser);
    try {
      const { cdp, authenticatorId } = await virtualAuthenticator(s);
      const launch = await createLaunch(stack, { patient: 'sam-jones' });
      const rp = await relyingParty({ scope: 'launch openid fhirUser patient/*.rs', launch });
      await s.page.route(`${rp.redirectUri}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'signed in' }));
      await s.page.goto(rp.url.href);
      // The sign-in page offers the hospital's IdP beside the password form; its own page asks who.
      await s.page.locator('form[action$="/login"]').waitFor();
      await s.check('login with providers', s.page, 'login-federated');
      await s.page.getByRole('link', { name: /General Hospital/ }).click();
      await s.page.locator('#sub').waitFor();
      expect(new URL(s.page.url()).origin).toBe(new URL(idp.issuer).origin);
      await s.page.fill('#sub', 'upstream-smith');
      await s.page.click('button[type=submit]');

      // Back here, linked to dr.smith: no factor yet, and the policy names practitioners: set one up first.
      await s.page.locator('#add-passkey').waitFor();
      await s.check('enrol factor', s.page, 'mfa-enrol');
      await s.page.click('#add-passkey');
      await s.page.locator('#recovery-codes').waitFor();
      await s.check('factor enrolled', s.page, 'mfa-enrolled');
      expect(await s.page.locator('#recovery-codes li').count()).toBe(10);
      // The authenticator holds one credential, for this server's host only.
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      expect(credentials.map((c) => c.rpId)).toEqual([new URL(stack.issuer).hostname]);
      await s.page.click('#continue');

      await s.page.locator('form[action$="/consent"]').waitFor();
      await s.page.click('form[action$="/consent"] button[value=allow]');
      await s.page.waitForURL(`${rp.redirectUri}**`);
      const tokens = await rp.finish(new URL(s.page.url()));
      const claims = tokens.claims()!;
      expect(claims.amr).toEqual(['pwd', 'hwk', 'mfa']);
      expect(claims.acr).toBe(AAL2_PHR);
      expect(tokens.patient).toBe('sam-jones');

      // The next EHR launch in the same browser: the session already meets the need, no page asks again.
      const again = await createLaunch(stack, { patient: 'sam-jones' });
      const rp2 = await relyingParty({ scope: 'launch openid fhirUser patient/*.rs', launch: again });
      await s.page.goto(rp2.url.href);
      const consentOrBack = s.page.locator('form[action$="/consent"]');
      await Promise.race([consentOrBack.waitFor(), s.page.waitForURL(`${rp2.redirectUri}**`)]);
      if (await consentOrBack.count()) await s.page.click('form[action$="/consent"] button[value=allow]');
      await s.page.waitForURL(`${rp2.redirectUri}**`);
      expect((await rp2.finish(new URL(s.page.url()))).claims()!.amr).toEqual(['pwd', 'hwk', 'mfa']);

      // A new browser session: password, then the passkey (no enrolment any more).
      await s.context.clearCookies();
      const rp3 = await relyingParty({ scope: 'openid fhirUser user/*.rs', acr_values: AAL2_PHR });
      await s.page.goto(rp3.url.href);
      await signIn(s, 'dr.smith', 'demo-dr-smith-2026');
      await s.page.locator('#use-passkey').waitFor();
      await s.check('second factor', s.page, 'mfa-verify-passkey');
      await s.page.click('#use-passkey');
      await allowAndReturn(s, rp3.redirectUri);
      const third = (await rp3.finish(new URL(s.page.url()))).claims()!;
      expect(third.acr).toBe(AAL2_PHR);
      expect(third.amr).toEqual(['pwd', 'hwk', 'mfa']);
      s.expectClean();
    } finally {
      await s.close();
    }
  });

  test('a patient sets up an authenticator app when an app asks for AAL2; her next standalone launch asks for its code', async () => {
    const s = await BrowserSession.open(browser);
    try {
      const rp = await relyingParty({ scope: 'openid fhirUser launch/patient patient/*.rs', acr_values: AAL2 });
      await s.page.route(`${rp.redirectUri}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'signed in' }));
      await s.page.goto(rp.url.href);
      await signIn(s, 'pat.jones', 'demo-pat-jones-2026');
      await s.page.locator('#totp-secret').waitFor();
      const secret = (await s.page.locator('#totp-secret').textContent())!.trim();
      await s.page.fill('#code', await nextTotpCode(secret));
      await s.page.click('form[action$="/enrol-totp"] button[type=submit]');
      await s.page.locator('#recovery-codes').waitFor();
      await s.page.click('#continue');
      await allowAndReturn(s, rp.redirectUri);
      const claims = (await rp.finish(new URL(s.page.url()))).claims()!;
      expect(claims).toMatchObject({ acr: AAL2, amr: ['pwd', 'otp', 'mfa'] });

      // Another day, another browser: the example app's standalone launch asks for the code.
      await s.context.clearCookies();
      await s.page.goto(`${stack.app.origin}/launch`);
      await signIn(s, 'pat.jones', 'demo-pat-jones-2026');
      await s.page.locator('form[action$="/second-factor"] #code').waitFor();
      await s.check('second factor (app)', s.page, 'mfa-verify-totp');
      await s.page.fill('#code', await nextTotpCode(secret));
      await s.page.click('form[action$="/second-factor"] button[type=submit]');
      await allowIfAsked(s);
      expect(await appResult(s.page)).toMatchObject({ name: 'Pat Jones', id: 'pat-jones' });
      s.expectClean();
    } finally {
      await s.close();
    }
  });
});

/** Allows on the consent page if it comes, and waits until the browser is back at the relying party. */
async function allowAndReturn(s: BrowserSession, redirectUri: string): Promise<void> {
  const consent = s.page.locator('form[action$="/consent"]');
  await Promise.race([consent.waitFor(), s.page.waitForURL(`${redirectUri}**`)]);
  if (await consent.count()) await s.page.click('form[action$="/consent"] button[value=allow]');
  await s.page.waitForURL(`${redirectUri}**`);
}
