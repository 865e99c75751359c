import { decodeJwt } from 'jose';
import { createTestApp, type TestApp } from '../../../support/test-app.js';
import { browse, exchange, inputValues, pageOf, postForm, signIn, unescapeHtml, type Agent } from '../../../support/smart-flow.js';
import { createPerson, paramsFor, registerSmartApp, type Person } from '../../../support/fixtures.js';
import { secondFactorsOf } from '../../../support/second-factor.js';
import { SoftAuthenticator } from '../../../records/directory/factors/soft-authenticator.js';
import { ACR } from '../../../../src/domain/authn/assurance.js';

/**
 * Passkeys and security keys as the second step of a sign-in, through the real pages: the page
 * hands the browser the server's WebAuthn options, a software authenticator answers them as a
 * browser's would, and the server checks origin, RP ID, challenge, user verification and counter.
 */

const REDIRECT = 'https://passkey-app.example.org/cb';
const CLIENT = 'passkey-app';
const params = paramsFor({ client_id: CLIENT, redirect_uri: REDIRECT, aud: 'http://localhost:8080/fhir', state: 'st-pk' });
const SCOPE = 'openid fhirUser user/*.rs';

let t: TestApp;
let rp: { id: string; origin: string };

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', AUTHZ_MFA_REQUIRE_FHIR_USER_TYPES: 'Practitioner' });
  await registerSmartApp(t, { id: CLIENT, redirectUri: REDIRECT, scopes: ['openid', 'fhirUser', 'user/*.rs'] });
  const issuer = new URL(t.config.issuer);
  rp = { id: issuer.hostname, origin: issuer.origin };
});
afterAll(() => t.close());

const clinician = () => createPerson(t, { fhirUser: `Practitioner/pk-${Math.random().toString(36).slice(2, 8)}`, staff: true });

/** A passkey registered for the person through the records (as the account page would). */
async function withPasskey(person: Person, opts: { synced?: boolean } = {}): Promise<SoftAuthenticator> {
  const key = new SoftAuthenticator(rp, opts);
  const factors = secondFactorsOf(t);
  const options = await factors.registrationOptions(person.id, { userName: person.username, displayName: person.username }, 'setup');
  await factors.verifyRegistration(person.id, key.register(options), 'setup', 'Test key');
  return key;
}

/** The WebAuthn options a page's form carries for its script. */
function optionsOn(html: string, kind: 'authenticate' | 'register'): { challenge: string } {
  const raw = new RegExp(`data-webauthn="${kind}" data-options="([^"]+)"`).exec(html)?.[1];
  if (!raw) throw new Error(`no ${kind} form on the page`);
  return JSON.parse(unescapeHtml(raw)) as { challenge: string };
}

async function finishAt(agent: Agent, res: Parameters<typeof browse>[1], verifier: string) {
  let stop = await browse(agent, res);
  if (stop.kind === 'page' && stop.prompt === 'consent')
    stop = await browse(
      agent,
      await postForm(agent, stop.uid, 'consent', stop.res, { decision: 'allow', scope: inputValues(stop.res.text, 'checkbox', 'scope') }),
    );
  if (stop.kind !== 'app' || !stop.code)
    throw new Error(`expected a code, got ${stop.kind} ${stop.kind === 'app' ? stop.location.href : ''}`);
  const token = await exchange(t, stop.code, verifier, params(SCOPE));
  expect(token.status).toBe(200);
  return decodeJwt(token.body.id_token as string);
}

test('a practitioner signs in with a security key: the id_token says pwd, hwk, mfa at phishing-resistant AAL2', async () => {
  const dr = await clinician();
  const key = await withPasskey(dr);
  const { agent, verifier, stop } = await signIn(t, params(SCOPE), dr);
  const page = pageOf(stop);
  expect(page.prompt).toBe('second_factor');
  expect(page.res.headers['content-security-policy']).toContain("script-src 'self'");
  const assertion = key.assert(optionsOn(page.res.text, 'authenticate'));
  const res = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'webauthn', response: JSON.stringify(assertion) });
  expect(res.status).toBe(303);
  const idToken = await finishAt(agent, res, verifier);
  expect(idToken.amr).toEqual(['pwd', 'hwk', 'mfa']);
  expect(idToken.acr).toBe(ACR.aal2PhishingResistant);
});

test('a synced passkey is swk; an app asking for AAL2 reads the AAL2 it asked for', async () => {
  const dr = await clinician();
  const key = await withPasskey(dr, { synced: true });
  const { agent, verifier, stop } = await signIn(t, params(SCOPE, { acr_values: ACR.aal2 }), dr);
  const page = pageOf(stop);
  const res = await postForm(agent, page.uid, 'second-factor', page.res, {
    method: 'webauthn',
    response: JSON.stringify(key.assert(optionsOn(page.res.text, 'authenticate'))),
  });
  const idToken = await finishAt(agent, res, verifier);
  expect(idToken.amr).toEqual(['pwd', 'swk', 'mfa']);
  expect(idToken.acr).toBe(ACR.aal2);
});

test('an assertion made for another origin (a look-alike site relaying the challenge) is refused', async () => {
  const dr = await clinician();
  const key = await withPasskey(dr);
  const { agent, stop } = await signIn(t, params(SCOPE), dr);
  const page = pageOf(stop);
  const relayed = key.assert(optionsOn(page.res.text, 'authenticate'), { origin: 'https://login-hospital.example.net' });
  const res = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'webauthn', response: JSON.stringify(relayed) });
  expect(res.status).toBe(400);
  expect(res.text).toContain('role="alert"');
  expect(res.headers.location).toBeUndefined();
});

test('an assertion for another sign-in’s challenge, or without user verification, is refused', async () => {
  const dr = await clinician();
  const key = await withPasskey(dr);
  const one = await signIn(t, params(SCOPE), dr);
  const two = await signIn(t, params(SCOPE), dr);
  const pageOne = pageOf(one.stop);
  const pageTwo = pageOf(two.stop);
  // Sign-in two's challenge answered, then posted to sign-in one.
  const crossed = key.assert(optionsOn(pageTwo.res.text, 'authenticate'));
  const res = await postForm(one.agent, pageOne.uid, 'second-factor', pageOne.res, {
    method: 'webauthn',
    response: JSON.stringify(crossed),
  });
  expect(res.status).toBe(400);
  // The page shown again has a fresh challenge; without user verification it is still refused.
  const noUv = key.assert(optionsOn(res.text, 'authenticate'), { noUserVerification: true });
  const again = await postForm(one.agent, pageOne.uid, 'second-factor', res, { method: 'webauthn', response: JSON.stringify(noUv) });
  expect(again.status).toBe(400);
});

test('a practitioner without a factor can set up a security key during sign-in, then goes on', async () => {
  const dr = await clinician();
  const key = new SoftAuthenticator(rp);
  const { agent, verifier, stop } = await signIn(t, params(SCOPE), dr);
  const enrol = pageOf(stop);
  expect(enrol.prompt).toBe('enrol_factor');
  const registration = key.register(optionsOn(enrol.res.text, 'register'));
  const enrolled = await postForm(agent, enrol.uid, 'second-factor/enrol-passkey', enrol.res, { response: JSON.stringify(registration) });
  expect(enrolled.status).toBe(200);
  expect(enrolled.text).toContain('passkey or security key');
  const res = await postForm(agent, enrol.uid, 'second-factor/continue', enrolled, {});
  const idToken = await finishAt(agent, res, verifier);
  expect(idToken.amr).toEqual(['pwd', 'hwk', 'mfa']);
  expect(await secondFactorsOf(t).list(dr.id)).toEqual([expect.objectContaining({ kind: 'webauthn', keyType: 'hwk' })]);
});
