import { decodeJwt } from 'jose';
import { createTestApp, type TestApp } from '../../../support/test-app.js';
import {
  authorizeThroughPages,
  browse,
  inputValues,
  exchangeCode,
  pageOf,
  postForm,
  promptOfPage,
  signIn,
  startAuthorization,
  startAuthorizationIn,
  type PageAnswers,
} from '../../../support/smart-flow.js';
import { createPerson, paramsFor, registerSmartApp, type Person } from '../../../support/fixtures.js';
import {
  ageSessions,
  enrolTotp,
  nextTotpCode,
  recoveryCodesOnPage,
  secondFactorsOf,
  totpCodeAt,
  totpSecretOnPage,
} from '../../../support/second-factor.js';
import { ACR } from '../../../../src/domain/authn/assurance.js';
import { createUserStore } from '../../../../src/records/directory/user-store.js';
import { SMART_USER_SCHEMA } from '../../../../src/records/directory/model.js';
import { startFakeFhir, type FakeFhir } from '../fake-fhir.js';
import { readTrail } from '../../../records/audit/trail-reader.js';
import { auditEventProblems } from '../../../../src/records/audit/audit-event.js';

/**
 * The second step of sign-in, through the real pages: who must have a second factor (policy,
 * `acr_values`), enrolment when they have none, verification when they have one, step-up of a
 * session that is not strong enough, and what id_tokens then say (amr, acr, auth_time).
 */

const REDIRECT = 'https://mfa-app.example.org/cb';
const CLIENT = 'mfa-app';

let fake: FakeFhir;
let t: TestApp;
const params = paramsFor(() => ({ client_id: CLIENT, redirect_uri: REDIRECT, aud: fake.base, state: 'st-mfa' }));
const SCOPE = 'openid fhirUser launch/patient patient/*.rs';

beforeAll(async () => {
  fake = await startFakeFhir();
  t = await createTestApp({
    AUTHZ_FHIR_SERVERS: fake.base,
    AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000',
    AUTHZ_LOGIN_MAX_FAILURES: '4',
    AUTHZ_MFA_REQUIRE_FHIR_USER_TYPES: 'Practitioner',
  });
  await registerSmartApp(t, {
    id: CLIENT,
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs', 'user/*.rs'],
  });
  fake.patients.push({ id: 'pat-mfa', given: 'Pat', family: 'Mfa', birthDate: '1980-04-23', mrn: 'MRN-MFA' });
});
afterAll(async () => {
  await t.close();
  await fake.close();
});

const patient = () => createPerson(t, { fhirUser: 'Patient/pat-mfa' });
const clinician = () => createPerson(t, { fhirUser: `Practitioner/dr-${Math.random().toString(36).slice(2, 8)}`, staff: true });
const answersOf = (p: Person, extra: Partial<PageAnswers> = {}): PageAnswers => ({ username: p.username, password: p.password, ...extra });

async function idTokenOf(flow: Awaited<ReturnType<typeof authorizeThroughPages>>) {
  const res = await exchangeCode(t, flow, params(SCOPE));
  expect(res.status).toBe(200);
  return decodeJwt(res.body.id_token as string);
}

describe('who needs a second factor', () => {
  test('a patient the policy does not name signs in with a password: amr pwd, acr AAL1', async () => {
    const flow = await authorizeThroughPages(t, params(SCOPE), answersOf(await patient()));
    expect(flow.pages).toEqual(['login', 'consent']);
    const idToken = await idTokenOf(flow);
    expect(idToken.amr).toEqual(['pwd']);
    expect(idToken.acr).toBe(ACR.aal1);
  });

  test('a patient who set up an authenticator app is asked for it, though the policy does not name patients', async () => {
    const pat = await patient();
    const secret = await enrolTotp(t, pat.id, pat.username);
    const flow = await authorizeThroughPages(t, params(SCOPE), answersOf(pat, { totpCode: () => nextTotpCode(secret) }));
    expect(flow.pages).toEqual(['login', 'second_factor', 'consent']);
    expect(flow.stop.kind).toBe('app');
    const idToken = await idTokenOf(flow);
    expect(idToken.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(idToken.acr).toBe(ACR.aal2);
  });

  test('a practitioner without a factor is led through enrolment before any grant; the id_token says pwd, otp, mfa at AAL2', async () => {
    const dr = await clinician();
    let secret = '';
    const flow = await authorizeThroughPages(
      t,
      params('openid fhirUser user/*.rs'),
      answersOf(dr, {
        enrolTotp: async (html) => {
          secret = totpSecretOnPage(html);
          return nextTotpCode(secret);
        },
      }),
    );
    expect(flow.pages).toEqual(['login', 'enrol_factor', 'factor_enrolled', 'consent']);
    const res = await exchangeCode(t, flow, params(SCOPE));
    const idToken = decodeJwt(res.body.id_token as string);
    expect(idToken.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(idToken.acr).toBe(ACR.aal2);
    expect(Math.abs((idToken.auth_time as number) - Date.now() / 1000)).toBeLessThan(30);
    expect(await secondFactorsOf(t).list(dr.id)).toEqual([expect.objectContaining({ kind: 'totp' })]);
    expect(await secondFactorsOf(t).recoveryCodesLeft(dr.id)).toBe(10);
  });

  test('the enrolment page shows the secret and a QR code, runs only this server’s scripts, and the recovery codes are shown once', async () => {
    const dr = await clinician();
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const enrol = pageOf(stop);
    expect(enrol.prompt).toBe('enrol_factor');
    const csp = enrol.res.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(enrol.res.text).not.toMatch(/<script>|\son[a-z]+=/i);
    expect(enrol.res.text).toMatch(/<img class="qr" src="data:image\/svg\+xml;base64,/);
    expect(enrol.res.text).toContain('data-webauthn="register"');
    const secret = totpSecretOnPage(enrol.res.text);
    const enrolled = await postForm(agent, enrol.uid, 'second-factor/enrol-totp', enrol.res, { code: await nextTotpCode(secret) });
    expect(enrolled.status).toBe(200);
    const codes = recoveryCodesOnPage(enrolled.text);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    // A reload shows the page to go on from, without the codes.
    const again = await agent.get(`/interaction/${enrol.uid}`);
    expect(again.status).toBe(200);
    expect(recoveryCodesOnPage(again.text)).toEqual([]);
    expect(again.text).toContain('/second-factor/continue"');
  });

  test('a practitioner without a factor cannot skip enrolment: continue is refused and no code is issued', async () => {
    const dr = await clinician();
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const enrol = pageOf(stop);
    const skipped = await postForm(agent, enrol.uid, 'second-factor/continue', enrol.res, {});
    expect(skipped.status).toBe(400);
    // Nor does going back to the authorization endpoint get a code: the interaction still waits for sign-in.
    const resumed = await agent.get(`/interaction/${enrol.uid}`);
    expect(promptOfPage(resumed.text)).toBe('enrol_factor');
    const wrong = await postForm(agent, enrol.uid, 'second-factor/enrol-totp', enrol.res, { code: '000000' });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('did not match');
  });
});

describe('verifying a factor', () => {
  test('a practitioner with an app: the second-factor page, then the grant; a wrong code and a reused code are refused', async () => {
    const dr = await clinician();
    const secret = await enrolTotp(t, dr.id, dr.username);
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const page = pageOf(stop);
    expect(page.prompt).toBe('second_factor');
    expect(page.res.text).toContain('Your organisation requires a second factor');
    expect(page.res.text).not.toContain('<script');

    const wrong = await postForm(agent, page.uid, 'second-factor', page.res, {
      method: 'totp',
      code: '123456' === (await totpCodeAt(secret, 0)) ? '654321' : '123456',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('role="alert"');

    // The code that enrolled the app was used: it is refused, as is any earlier one.
    const reused = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: await totpCodeAt(secret, 0) });
    expect(reused.status).toBe(400);

    const ok = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: await nextTotpCode(secret) });
    expect(ok.status).toBe(303);
    const next = pageOf(await browse(agent, ok));
    expect(next.prompt).toBe('consent');
  });

  test('a recovery code signs in once; the same code again is refused', async () => {
    const dr = await clinician();
    await enrolTotp(t, dr.id, dr.username);
    const [code] = await secondFactorsOf(t).newRecoveryCodes(dr.id);
    for (const expected of [303, 400]) {
      const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
      const page = pageOf(stop);
      const res = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'recovery', code: code! });
      expect(res.status).toBe(expected);
    }
    expect(await secondFactorsOf(t).recoveryCodesLeft(dr.id)).toBe(9);
  });

  test('wrong codes count toward the account lock-out like wrong passwords; then even a right code is refused', async () => {
    const dr = await clinician();
    const secret = await enrolTotp(t, dr.id, dr.username);
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const page = pageOf(stop);
    const right = await totpCodeAt(secret, 1);
    const wrongCode = right === '111111' ? '222222' : '111111';
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: wrongCode })).status);
    expect(statuses).toEqual([400, 400, 400, 400]);
    const locked = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: right });
    expect(locked.status).toBe(403);
    expect(locked.text).toContain('locked');
  });

  test('a right password between rounds of code guesses does not reset the count: the account still locks', async () => {
    const dr = await clinician();
    const secret = await enrolTotp(t, dr.id, dr.username);
    const right = await totpCodeAt(secret, 1);
    const wrongCode = right === '111111' ? '222222' : '111111';
    const statuses: number[] = [];
    // Two rounds of (right password, two wrong codes): four failures, the limit here.
    for (let round = 0; round < 2; round++) {
      const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
      const page = pageOf(stop);
      for (let i = 0; i < 2; i++)
        statuses.push((await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: wrongCode })).status);
    }
    expect(statuses).toEqual([400, 400, 400, 400]);
    // Locked now: the password itself is refused, with the generic message.
    const { stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    expect(stop.kind).toBe('error');
    expect(stop.res.status).toBe(400);
    expect(promptOfPage(stop.res.text)).toBe('login');
  });

  test('someone who has a factor cannot set up another one during sign-in (a stolen password cannot add the thief’s app)', async () => {
    const dr = await clinician();
    await enrolTotp(t, dr.id, dr.username);
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const page = pageOf(stop);
    const res = await postForm(agent, page.uid, 'second-factor/enrol-totp', page.res, { code: '123456' });
    expect(res.status).toBe(403);
    expect(await secondFactorsOf(t).list(dr.id)).toHaveLength(1);
  });

  test('a second-factor post without the sign-in in progress, or without its CSRF token, is refused', async () => {
    const { agent, first } = await startAuthorization(t, params(SCOPE));
    const login = pageOf(await browse(agent, first));
    const early = await postForm(agent, login.uid, 'second-factor', login.res, { method: 'totp', code: '123456' });
    expect(early.status).toBe(400);
    const dr = await clinician();
    await enrolTotp(t, dr.id, dr.username);
    const signedIn = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const page = pageOf(signedIn.stop);
    const noCsrf = await postForm(signedIn.agent, page.uid, 'second-factor', page.res, { csrf: '', method: 'totp', code: '123456' });
    expect(noCsrf.status).toBe(403);
  });
});

describe('the audit trail', () => {
  test('enrolment, a failed code and a verified one are each an AuditEvent naming the account, never the code', async () => {
    const dr = await clinician();
    let secret = '';
    let firstCode = '';
    const flow = await authorizeThroughPages(
      t,
      params('openid fhirUser user/*.rs'),
      answersOf(dr, {
        enrolTotp: async (html) => {
          secret = totpSecretOnPage(html);
          return (firstCode = await nextTotpCode(secret));
        },
      }),
    );
    expect(flow.code).toBeDefined();
    const { agent, stop } = await signIn(t, params('openid fhirUser user/*.rs'), dr);
    const page = pageOf(stop);
    const wrong = firstCode === '000000' ? '111111' : '000000';
    await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: wrong });
    const code = await nextTotpCode(secret);
    expect((await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code })).status).toBe(303);

    const mine = (await readTrail(t)).filter((e) => JSON.stringify(e).includes(dr.id));
    const subtypes = mine.flatMap((e) => (e.subtype ?? []).map((s) => s.code)).filter((c) => c?.startsWith('mfa-'));
    expect(subtypes).toEqual(['mfa-enrolled', 'mfa-failed', 'mfa-verified']);
    for (const event of mine) {
      expect(auditEventProblems(event)).toEqual([]);
      expect(JSON.stringify(event)).not.toContain(code);
      expect(JSON.stringify(event)).not.toContain(secret);
    }
  });
});

describe('what the app asks for', () => {
  test('acr_values AAL2 makes a patient with an app verify it; the id_token states the AAL2 asked for', async () => {
    const pat = await patient();
    const secret = await enrolTotp(t, pat.id, pat.username);
    const flow = await authorizeThroughPages(
      t,
      params(SCOPE, { acr_values: ACR.aal2 }),
      answersOf(pat, { totpCode: () => nextTotpCode(secret) }),
    );
    expect(flow.pages).toEqual(['login', 'second_factor', 'consent']);
    const idToken = await idTokenOf(flow);
    expect(idToken.acr).toBe(ACR.aal2);
    expect(idToken.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  test('acr_values asking for a phishing-resistant factor is not met by an app code or a recovery code', async () => {
    const pat = await patient();
    const secret = await enrolTotp(t, pat.id, pat.username);
    const { agent, stop } = await signIn(t, params(SCOPE, { acr_values: ACR.aal2PhishingResistant }), pat);
    const page = pageOf(stop);
    expect(page.prompt).toBe('unknown'); // neither a code form nor a passkey button: the person has no passkey
    expect(page.res.text).toContain('asks for a passkey or security key');
    const res = await postForm(agent, page.uid, 'second-factor', page.res, { method: 'totp', code: await nextTotpCode(secret) });
    expect(res.status).toBe(400);
  });

  test('a session signed in with a password is stepped up for an app that asks for AAL2: only the second factor is asked', async () => {
    const pat = await patient();
    const first = await authorizeThroughPages(t, params(SCOPE), answersOf(pat));
    const firstToken = await idTokenOf(first);
    expect(firstToken.acr).toBe(ACR.aal1);
    // Set up afterwards (on the account page): the session is from before.
    const secret = await enrolTotp(t, pat.id, pat.username);

    const { first: again, verifier } = await startAuthorizationIn(first.agent, params(SCOPE, { acr_values: ACR.aal2 }));
    const stepUp = pageOf(await browse(first.agent, again));
    expect(stepUp.prompt).toBe('second_factor');
    expect(stepUp.res.text).not.toContain('name="password"');
    const ok = await postForm(first.agent, stepUp.uid, 'second-factor', stepUp.res, { method: 'totp', code: await nextTotpCode(secret) });
    const done = await browse(first.agent, ok);
    const consentOrApp = done.kind === 'page' ? done : undefined;
    const final = consentOrApp
      ? await browse(
          first.agent,
          await postForm(first.agent, consentOrApp.uid, 'consent', consentOrApp.res, {
            decision: 'allow',
            scope: inputValues(consentOrApp.res.text, 'checkbox', 'scope'),
          }),
        )
      : done;
    expect(final.kind === 'app' ? (final.error ?? 'code') : final.res.text.slice(0, 400)).toBe('code');
    const code = final.kind === 'app' ? final.code : undefined;
    const res = await t.request.post('/token').type('form').send({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: CLIENT,
    });
    expect(res.body).toMatchObject({ token_type: 'Bearer' });
    const idToken = decodeJwt(res.body.id_token as string);
    expect(idToken.sub).toBe(pat.id);
    expect(idToken.acr).toBe(ACR.aal2);
    expect(idToken.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  test('max_age asks for the whole sign-in again, password and second factor, and auth_time is the new one', async () => {
    const pat = await patient();
    const secret = await enrolTotp(t, pat.id, pat.username);
    const first = await authorizeThroughPages(t, params(SCOPE), answersOf(pat, { totpCode: () => nextTotpCode(secret) }));
    expect(first.code).toBeDefined();
    await ageSessions(t, pat.id, 600);
    const { first: again } = await startAuthorizationIn(first.agent, params(SCOPE, { max_age: '300' }));
    const login = pageOf(await browse(first.agent, again));
    expect(login.prompt).toBe('login');
    const second = pageOf(
      await browse(
        first.agent,
        await postForm(first.agent, login.uid, 'login', login.res, { username: pat.username, password: pat.password }),
      ),
    );
    expect(second.prompt).toBe('second_factor');
  });

  test('prompt=none with a session below what the app asks for: login_required, never a silent grant', async () => {
    const pat = await patient();
    const first = await authorizeThroughPages(t, params(SCOPE), answersOf(pat));
    expect(first.code).toBeDefined();
    const { first: silent } = await startAuthorizationIn(first.agent, params(SCOPE, { acr_values: ACR.aal2, prompt: 'none' }));
    const stop = await browse(first.agent, silent);
    expect(stop.kind).toBe('app');
    expect(stop.kind === 'app' && stop.error).toBe('login_required');
  });

  test('a session from before the policy named the person is stepped up at its next authorization', async () => {
    const pat = await patient();
    const first = await authorizeThroughPages(t, params('openid fhirUser'), answersOf(pat));
    expect(first.pages).toEqual(['login', 'consent']);
    const secret = await enrolTotp(t, pat.id, pat.username);
    // The directory now makes them a practitioner, whom the policy names: the session is not enough any more.
    await createUserStore(t.config, t.redis, t.keyspace).update(pat.id, (u) => {
      u[SMART_USER_SCHEMA] = { ...u[SMART_USER_SCHEMA], fhirUser: 'Practitioner/now-a-doctor', staff: true };
      return u;
    });
    const { first: again } = await startAuthorizationIn(first.agent, params('openid fhirUser'));
    const stepUp = pageOf(await browse(first.agent, again));
    expect(stepUp.prompt).toBe('second_factor');
    const ok = await postForm(first.agent, stepUp.uid, 'second-factor', stepUp.res, { method: 'totp', code: await nextTotpCode(secret) });
    expect(ok.status).toBe(303);
  });
});
