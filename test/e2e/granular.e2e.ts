import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as client from 'openid-client';
import type { Browser } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { BrowserSession, decide, onConsentPage, signIn } from './support/flows.js';
import { startStack, type Stack } from './support/stack.js';

/**
 * (g)(10) Granular Scope Selection and Limited Access in Chromium, on the real consent page: the
 * person unticks and ticks plain HTML checkboxes (no script runs on the page), and the token's
 * `scope` must list exactly what stayed ticked. The app is an openid-client public client with
 * PKCE asking for what Inferno asks for; the user is the demo patient.
 */

const CLIENT_ID = 'e2e-inferno';
const PATIENT = { userName: 'pat.jones', password: 'demo-pat-jones-2026' };
const OBSERVATION = 'http://terminology.hl7.org/CodeSystem/observation-category';
const CONDITION = 'http://terminology.hl7.org/CodeSystem/condition-category';
const US_CORE_CONDITION = 'http://hl7.org/fhir/us/core/CodeSystem/condition-category';
const GRANULAR_SCOPES = 'launch/patient openid fhirUser offline_access patient/Condition.rs patient/Observation.rs patient/Patient.rs';
const LIMITED_SCOPES =
  'launch/patient openid fhirUser offline_access patient/Patient.rs patient/AllergyIntolerance.rs patient/Condition.rs patient/Observation.rs patient/Immunization.rs';

let stack: Stack;
let browser: Browser;
let config: client.Configuration;
let redirectUri: string;
const insecure = { execute: [client.allowInsecureRequests] };

beforeAll(async () => {
  [stack, browser] = await Promise.all([
    startStack({
      clients: (app) => [
        {
          client_id: CLIENT_ID,
          client_name: 'Inferno (e2e)',
          smart_client_kind: 'public_app',
          redirect_uris: [`${app}/inferno-callback`],
          smart_scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs'],
        },
      ],
    }),
    launchChromium(),
  ]);
  config = await client.discovery(new URL(stack.issuer), CLIENT_ID, undefined, client.None(), insecure);
  redirectUri = `${stack.app.origin}/inferno-callback`;
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

interface Started {
  url: string;
  verifier: string;
  state: string;
}

async function authorizationUrl(scope: string): Promise<Started> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    aud: stack.rs.base,
  });
  return { url: url.href, verifier, state };
}

function box(s: BrowserSession, scope: string) {
  return s.page.locator(`form[action$="/consent"] input[type="checkbox"][name="scope"][value="${scope}"]`);
}

/** Sets the consent page's boxes as a person would, then Allow; answers the code exchange's scope. */
async function allowWith(
  s: BrowserSession,
  started: Started,
  changes: { untick?: string[]; tick?: string[] },
): Promise<{ granted: string[]; ticked: string[] }> {
  for (const scope of changes.untick ?? []) await box(s, scope).uncheck();
  for (const scope of changes.tick ?? []) await box(s, scope).check();
  const ticked = await s.page
    .locator('form[action$="/consent"] input[name="scope"]:checked')
    .evaluateAll((inputs) => inputs.map((i) => (i as unknown as { value: string }).value));
  await decide(s, 'allow');
  await s.page.waitForURL(`${redirectUri}**`);
  const tokens = await client.authorizationCodeGrant(config, new URL(s.page.url()), {
    pkceCodeVerifier: started.verifier,
    expectedState: started.state,
    idTokenExpected: true,
  });
  expect(tokens.patient).toBe('pat-jones');
  return { granted: (tokens.scope ?? '').split(' ').sort(), ticked: ticked.sort() };
}

async function session(): Promise<BrowserSession> {
  const s = await BrowserSession.open(browser);
  await s.page.route(`${redirectUri}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' }));
  return s;
}

describe('(g)(10) in Chromium', () => {
  test('granular scope selection: categories instead of whole Condition and Observation, the token lists exactly what was ticked', async () => {
    const s = await session();
    try {
      const started = await authorizationUrl(GRANULAR_SCOPES);
      await s.page.goto(started.url);
      await signIn(s, PATIENT.userName, PATIENT.password);
      await onConsentPage(s, 'consent-granular');
      const chosen = [
        `patient/Condition.rs?category=${CONDITION}|problem-list-item`,
        `patient/Condition.rs?category=${US_CORE_CONDITION}|health-concern`,
        `patient/Observation.rs?category=${OBSERVATION}|laboratory`,
        `patient/Observation.rs?category=${OBSERVATION}|vital-signs`,
      ];
      const { granted, ticked } = await allowWith(s, started, { untick: ['patient/Condition.rs', 'patient/Observation.rs'], tick: chosen });
      const identity = ['fhirUser', 'launch/patient', 'openid'];
      expect(ticked).toEqual(['offline_access', 'patient/Patient.rs', ...chosen].sort());
      expect(granted).toEqual([...identity, ...ticked].sort());
      expect(granted).not.toContain('patient/Condition.rs');
      expect(granted).not.toContain('patient/Observation.rs');
      s.expectClean();
    } finally {
      await s.close();
    }
  });

  test('limited access: the same client and patient launch again, the page is shown and what is unticked is not granted', async () => {
    const s = await session();
    try {
      const first = await authorizationUrl(LIMITED_SCOPES);
      await s.page.goto(first.url);
      await signIn(s, PATIENT.userName, PATIENT.password);
      await onConsentPage(s);
      const all = await allowWith(s, first, {});
      expect(all.granted).toEqual(LIMITED_SCOPES.split(' ').sort());

      // The same browser session: no sign-in, yet the consent page comes, every choice untickable.
      const second = await authorizationUrl(LIMITED_SCOPES);
      await s.page.goto(second.url);
      await onConsentPage(s, 'consent-limited');
      const limited = await allowWith(s, second, {
        untick: ['patient/AllergyIntolerance.rs', 'patient/Immunization.rs', 'offline_access'],
      });
      expect(limited.ticked).toEqual(['patient/Condition.rs', 'patient/Observation.rs', 'patient/Patient.rs']);
      expect(limited.granted).toEqual(['fhirUser', 'launch/patient', 'openid', ...limited.ticked].sort());
      s.expectClean();
    } finally {
      await s.close();
    }
  });
});
