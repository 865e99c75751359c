import { randomUUID } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/test-app.js';
import {
  authorizeThroughPages,
  browse,
  checkedValues,
  consentServiceOf,
  consentsOf,
  exchange,
  exchangeCode,
  postForm,
  startAuthorizationIn,
  type AuthorizeParams,
  type PageAnswers,
} from '../support/smart-flow.js';
import { createPerson, paramsFor, registerSmartApp, type Person } from '../support/fixtures.js';
import { startFakeFhir, type FakeFhir } from '../smart/interaction/fake-fhir.js';

/**
 * (g)(10) Limited Access (Inferno g10_smart_limited_app): right after the Standalone Patient App
 * launch, Inferno launches again with the same client, patient and scopes, and the tester unticks
 * resource types. Remembered consent must not skip that page, and a client's own prompt=consent
 * always shows it (OpenID Connect Core 3.1.2.1). See docs/interop.md "Limited access".
 */

const REDIRECT = 'https://inferno.example.org/suites/custom/smart/redirect';
const APP = 'inferno-standalone';
const SCOPES =
  'launch/patient openid fhirUser offline_access patient/Patient.rs patient/AllergyIntolerance.rs patient/Condition.rs patient/Observation.rs patient/Immunization.rs patient/Procedure.rs';
const LIMITED = ['patient/AllergyIntolerance.rs', 'patient/Immunization.rs', 'patient/Procedure.rs'];

let fake: FakeFhir;

const params = paramsFor(() => ({ client_id: APP, redirect_uri: REDIRECT, aud: fake.base, state: 'limited' }));

function sorted(scope: string): string[] {
  return scope.split(' ').sort();
}

async function appWith(env: Record<string, string> = {}): Promise<TestApp> {
  const t = await createTestApp({ AUTHZ_FHIR_SERVERS: fake.base, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000', ...env });
  await registerSmartApp(t, {
    id: APP,
    name: 'Inferno',
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs'],
  });
  return t;
}

async function newPatient(t: TestApp): Promise<Person & { patientId: string }> {
  const patientId = `l-${randomUUID().slice(0, 8)}`;
  return { ...(await createPerson(t, { fhirUser: `Patient/${patientId}` }, { userName: patientId })), patientId };
}

/** A second authorization in the same browser (SSO session): the page, or straight back to the app. */
async function again(
  t: TestApp,
  agent: Parameters<typeof startAuthorizationIn>[0],
  p: AuthorizeParams,
  answers: PageAnswers & { untick?: string[] },
) {
  const { first, verifier } = await startAuthorizationIn(agent, p);
  const stop = await browse(agent, first);
  if (stop.kind === 'app') return { page: false, stop, verifier, code: stop.code, error: stop.error };
  if (stop.kind !== 'page' || stop.prompt !== 'consent') throw new Error(`unexpected ${stop.kind}`);
  const untick = new Set(answers.untick ?? []);
  const html = stop.res.text;
  const back = await browse(
    agent,
    await postForm(agent, stop.uid, 'consent', stop.res, {
      decision: 'allow',
      scope: checkedValues(html, 'scope').filter((s) => !untick.has(s)),
    }),
  );
  if (back.kind !== 'app') throw new Error('not back at the app');
  return { page: true, html, stop: back, verifier, code: back.code, error: back.error };
}

beforeAll(async () => {
  fake = await startFakeFhir();
});
afterAll(() => fake.close());

describe('with the shipped default (AUTHZ_CONSENT_REMEMBER=silent)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await appWith();
  });
  afterAll(() => t.close());

  test('Inferno’s Limited Access after the Standalone Patient App: the page is shown, every choice can be unticked, the token has only what stayed ticked', async () => {
    const who = await newPatient(t);
    const standalone = await authorizeThroughPages(t, params(SCOPES), who);
    const all = await exchangeCode(t, standalone, params(''));
    expect(sorted(all.body.scope)).toEqual(sorted(SCOPES));

    // Same client, same patient, same scopes, same browser session, no prompt parameter.
    const limited = await again(t, standalone.agent, params(SCOPES, { state: 'limited-2' }), { ...who, untick: LIMITED });
    expect(limited.page).toBe(true);
    // Everything is offered again (nothing listed as "already allowed" and fixed).
    expect(limited.html).not.toContain('allowed-heading');
    expect(checkedValues(limited.html!, 'scope')).toEqual([
      'offline_access',
      'patient/Patient.rs',
      'patient/AllergyIntolerance.rs',
      'patient/Condition.rs',
      'patient/Observation.rs',
      'patient/Immunization.rs',
      'patient/Procedure.rs',
    ]);
    if (!limited.code) throw new Error('no code');
    const token = await exchange(t, limited.code, limited.verifier, params(''));
    const expected = sorted(SCOPES).filter((s) => !LIMITED.includes(s));
    expect(sorted(token.body.scope)).toEqual(expected);

    // The re-consent is a new Consent; it, not the first, is the one remembered from now on.
    const consents = await consentsOf(t, who.patientId);
    expect(consents).toHaveLength(2);
    const narrowed = consents.find((c) => !c.scopes.includes('patient/Procedure.rs'));
    expect(narrowed!.scopes.sort()).toEqual(expected);
    const remembered = await consentServiceOf(t).coveringConsent({
      performerRef: `Patient/${who.patientId}`,
      clientId: APP,
      patientId: who.patientId,
      scopes: ['patient/Patient.rs'],
    });
    expect(remembered?.resource.id).toBe(narrowed!.resource.id);
    // The first launch's tokens still stand on the first Consent until they end or it is withdrawn.
    expect(consents.every((c) => c.status === 'active')).toBe(true);

    // A silent re-authorization (prompt=none) may use remembered consent: it gets the narrowed grant.
    const silent = await again(t, standalone.agent, params(SCOPES, { prompt: 'none', state: 'silent' }), who);
    expect(silent.page).toBe(false);
    if (!silent.code) throw new Error(`no silent code: ${silent.error}`);
    const silentToken = await exchange(t, silent.code, silent.verifier, params(''));
    expect(sorted(silentToken.body.scope)).toEqual(expected.filter((s) => s !== 'offline_access'));
  });
});

describe('prompt=consent from the client', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Even where remembered consent would skip every page, the client's own prompt=consent is asked.
    t = await appWith({ AUTHZ_CONSENT_REMEMBER: 'always' });
  });
  afterAll(() => t.close());

  test('a remembered Consent skips the page, but not when the client sends prompt=consent', async () => {
    const who = await newPatient(t);
    const scopes = 'launch/patient openid patient/Patient.rs patient/Condition.rs';
    const first = await authorizeThroughPages(t, params(scopes), who);
    expect(first.pages).toEqual(['login', 'consent']);
    const skipped = await again(t, first.agent, params(scopes, { state: 'remembered' }), who);
    expect(skipped.page).toBe(false);
    expect(skipped.code).toBeDefined();

    const asked = await again(t, first.agent, params(scopes, { prompt: 'consent', state: 'asked' }), {
      ...who,
      untick: ['patient/Condition.rs'],
    });
    expect(asked.page).toBe(true);
    if (!asked.code) throw new Error('no code');
    const token = await exchange(t, asked.code, asked.verifier, params(''));
    expect(sorted(token.body.scope)).toEqual(['launch/patient', 'openid', 'patient/Patient.rs']);
  });

  test('the prompt=consent this server adds for offline_access is not the client’s: a covered request still skips the page', async () => {
    const who = await newPatient(t);
    const scopes = 'launch/patient offline_access patient/Patient.rs';
    const first = await authorizeThroughPages(t, params(scopes), who);
    expect(first.pages).toEqual(['login', 'consent']);
    const skipped = await again(t, first.agent, params(scopes, { state: 'offline' }), who);
    expect(skipped.page).toBe(false);
    // A client claiming the server's marker for its own prompt=consent is still asked.
    const forged = await again(t, first.agent, params(scopes, { prompt: 'consent', state: 'forged', smart_added_prompt: 'consent' }), who);
    expect(forged.page).toBe(true);
  });
});

describe('AUTHZ_CONSENT_REMEMBER=never', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await appWith({ AUTHZ_CONSENT_REMEMBER: 'never' });
  });
  afterAll(() => t.close());

  test('every launch asks, and prompt=none gets consent_required', async () => {
    const who = await newPatient(t);
    const scopes = 'launch/patient patient/Patient.rs';
    const first = await authorizeThroughPages(t, params(scopes), who);
    const silent = await again(t, first.agent, params(scopes, { prompt: 'none', state: 'silent' }), who);
    expect(silent.page).toBe(false);
    expect(silent.error).toBe('consent_required');
    expect((await again(t, first.agent, params(scopes, { state: 'again' }), who)).page).toBe(true);
  });
});

test('AUTHZ_CONSENT_REMEMBER takes only silent, always or never', async () => {
  await expect(appWith({ AUTHZ_CONSENT_REMEMBER: 'sometimes' })).rejects.toThrow(/consents\.remember/);
});
