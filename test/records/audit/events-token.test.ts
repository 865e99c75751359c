import { createTestApp, type TestApp } from '../../support/test-app.js';
import { authorizeAndExchange, launchStoreOf } from '../../support/smart-flow.js';
import { createPerson, introspect, PASSWORD, registerResourceServer, registerSmartApp, RS } from '../../support/fixtures.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import {
  agentByType,
  clientIds,
  detail,
  expectNoSecrets,
  expectValid,
  hashedToken,
  one,
  patientOf,
  recordedBy,
  subtypeCodes,
  tokenIdentifiers,
} from './events-support.js';

/*
 * Token endpoint, introspection and revocation events, each produced by a real request and read
 * back from the trail's Redis stream.
 */

const FHIR = 'http://localhost:8080/fhir';
const CB = 'https://app.example.org/cb';
const TOKEN_URL = 'http://localhost:3000/token';

let t: TestApp;
let key: BackendKey;
let drId: string;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: FHIR });
  key = await backendKey('ES384');
  await registerBackend(t, 'audit-backend', [key]);
  await registerSmartApp(t, {
    id: 'chart',
    redirectUri: CB,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs'],
  });
  await registerResourceServer(t, RS, { fhir_servers: [FHIR] });
  drId = (await createPerson(t, { fhirUser: 'Practitioner/dr-1', staff: true }, { userName: 'dr.audit' })).id;
});
afterAll(() => t.close());

/** An EHR launch of `chart` for `patient` by the doctor, through to the token response. */
async function ehrFlow(patient: string, scope = 'launch openid fhirUser patient/*.rs offline_access') {
  const launch = await launchStoreOf(t).create({ patient, aud: FHIR, clientId: 'chart', createdBy: 'ehr' });
  return authorizeAndExchange(t, { client_id: 'chart', redirect_uri: CB, scope, aud: FHIR, launch }, drId);
}

const refresh = (refreshToken: string) =>
  t.request.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'chart' });

describe('client_credentials', () => {
  test('issued: ITI-71 token-issued, the client as requestor with its address, the token by hash or jti only', async () => {
    const assertion = await signAssertion(key, 'audit-backend', TOKEN_URL);
    const { result: res, events } = await recordedBy(t, () => tokenRequest(t, assertion));
    expect(res.status).toBe(200);
    const e = one(events, 'token-issued');
    expectValid(e);
    expect(subtypeCodes(e)).toContain('ITI-71');
    expect(e.type.code).toBe('110114');
    expect(e.outcome).toBe('0');
    const [client] = agentByType(e, '110150');
    expect(client).toMatchObject({ who: { identifier: { value: 'audit-backend' } }, requestor: true, network: { type: '2' } });
    expect(client!.network!.address).toMatch(/127\.0\.0\.1|::1|::ffff:127\.0\.0\.1/);
    expect(detail(e, 'grant_type')).toBe('client_credentials');
    const access = res.body.access_token as string;
    const ids = tokenIdentifiers(e);
    expect(ids).toHaveLength(1);
    // Opaque: a hash of the value; JWT: its jti (which is not the token).
    if (access.split('.').length === 3) expect(ids[0]!.value).toMatch(/^urn:ietf:params:oauth:jti:/);
    else expect(ids[0]).toEqual(hashedToken(access));
    expect(patientOf(e)).toBeUndefined();
    expectNoSecrets(e, [access, assertion]);
  });

  test('refused: outcome 4 with the OAuth error and the reason, no assertion in it', async () => {
    const stranger = await backendKey('ES384');
    const assertion = await signAssertion(stranger, 'audit-backend', TOKEN_URL, { kid: key.kid });
    const { result: res, events } = await recordedBy(t, () => tokenRequest(t, assertion));
    expect(res.status).toBe(401);
    const e = one(events, 'token-refused');
    expectValid(e);
    expect(e.outcome).toBe('4');
    expect(e.outcomeDesc).toMatch(/^invalid_client: .+/);
    expect(clientIds(e)).toEqual(['audit-backend']);
    expectNoSecrets(e, [assertion]);
  });

  test('an unsupported grant type is refused and recorded with its grant_type', async () => {
    const { result: res, events } = await recordedBy(t, () =>
      t.request.post('/token').type('form').send({ grant_type: 'password', username: 'dr.audit', password: PASSWORD, client_id: 'chart' }),
    );
    expect(res.status).toBe(400);
    const e = one(events, 'token-refused');
    expectValid(e);
    expect(e.outcomeDesc).toMatch(/^unsupported_grant_type/);
    expect(detail(e, 'grant_type')).toBe('password');
    expectNoSecrets(e, [PASSWORD]);
  });
});

describe('authorization code, refresh, reuse, introspection, revocation', () => {
  let code: string;
  let verifier: string;
  let access: string;
  let refreshToken: string;
  let idToken: string;
  let events: Awaited<ReturnType<typeof recordedBy>>['events'];

  beforeAll(async () => {
    const launch = await launchStoreOf(t).create({ patient: 'pat-1', aud: FHIR, clientId: 'chart', createdBy: 'ehr' });
    const run = await recordedBy(t, () =>
      authorizeAndExchange(
        t,
        { client_id: 'chart', redirect_uri: CB, scope: 'launch openid fhirUser patient/*.rs offline_access', aud: FHIR, launch },
        drId,
      ),
    );
    events = run.events;
    const { flow, token } = run.result;
    expect(token.status).toBe(200);
    code = flow.code!;
    verifier = run.result.verifier;
    access = token.body.access_token;
    refreshToken = token.body.refresh_token;
    idToken = token.body.id_token;
  });

  test('authorization granted: AuthZ-Consent, the user as requestor, the patient of the launch', () => {
    const e = one(events, 'authorization-granted');
    expectValid(e);
    expect(e.type.code).toBe('110113');
    expect(subtypeCodes(e)).toContain('AuthZ-Consent');
    expect(e.outcome).toBe('0');
    expect(patientOf(e)).toBe('Patient/pat-1');
    const [user] = agentByType(e, 'IRCP');
    expect(user).toMatchObject({ requestor: true, who: { identifier: { value: drId } } });
    expect(clientIds(e)).toEqual(['chart']);
    expectNoSecrets(e, [code, verifier]);
  });

  test('token issued with a patient in context: disclosure shape (patient entity, user with fhirUser, both tokens hashed)', () => {
    const e = one(events, 'token-issued');
    expectValid(e);
    expect(patientOf(e)).toBe('Patient/pat-1');
    expect(detail(e, 'grant_type')).toBe('authorization_code');
    const [user] = agentByType(e, 'IRCP');
    expect(user!.who).toMatchObject({ reference: `${FHIR}/Practitioner/dr-1`, identifier: { system: t.config.issuer, value: drId } });
    const ids = tokenIdentifiers(e).map((i) => i.value);
    expect(ids).toEqual(expect.arrayContaining([hashedToken(refreshToken).value]));
    expect(ids.some((v) => v === hashedToken(access).value || v?.startsWith('urn:ietf:params:oauth:jti:'))).toBe(true);
    expectNoSecrets(e, [code, verifier, access, refreshToken, idToken]);
  });

  test('a second use of a code is refused (invalid_grant), with the reason', async () => {
    const other = await ehrFlow('pat-4');
    const used = other.flow.code!;
    const { events: ev } = await recordedBy(t, () =>
      t.request
        .post('/token')
        .type('form')
        .send({ grant_type: 'authorization_code', code: used, redirect_uri: CB, code_verifier: other.verifier, client_id: 'chart' }),
    );
    const e = one(ev, 'token-refused');
    expectValid(e);
    expect(e.outcome).toBe('4');
    expect(e.outcomeDesc).toMatch(/^invalid_grant: /);
    expectNoSecrets(e, [used, other.verifier]);
  });

  test('introspection: active for the patient-context token names the caller, the app and the patient', async () => {
    const fresh = await ehrFlow('pat-2');
    const token = fresh.token.body.access_token as string;
    const { result: res, events: ev } = await recordedBy(t, () => introspect(t, token));
    expect(res.body.active).toBe(true);
    const e = one(ev, 'token-introspected');
    expectValid(e);
    expect(e.outcomeDesc).toBe('active');
    expect(patientOf(e)).toBe('Patient/pat-2');
    const callers = agentByType(e, '110150');
    expect(callers.find((a) => a.requestor)?.who?.identifier?.value).toBe('rs');
    expect(callers.find((a) => !a.requestor)?.who?.identifier?.value).toBe('chart');
    expectNoSecrets(e, [token, fresh.token.body.refresh_token, RS.secret]);

    const { events: inactive } = await recordedBy(t, () => introspect(t, 'x'.repeat(43)));
    const i = one(inactive, 'token-introspected');
    expectValid(i);
    expect(i.outcomeDesc).toBe('inactive');
    expect(patientOf(i)).toBeUndefined();
    expect(tokenIdentifiers(i)).toEqual([hashedToken('x'.repeat(43))]);
  });

  test('refresh: token-refreshed; presenting the rotated refresh token again: refresh-reuse, outcome 8', async () => {
    const { result: res, events: ev } = await recordedBy(t, () => refresh(refreshToken));
    expect(res.status).toBe(200);
    const e = one(ev, 'token-refreshed');
    expectValid(e);
    expect(subtypeCodes(e)).toContain('ITI-71');
    expect(detail(e, 'grant_type')).toBe('refresh_token');
    expect(patientOf(e)).toBe('Patient/pat-1');
    expectNoSecrets(e, [refreshToken, res.body.refresh_token, res.body.access_token, res.body.id_token]);

    const { result: reuse, events: rev } = await recordedBy(t, () => refresh(refreshToken));
    expect(reuse.body.error).toBe('invalid_grant');
    const r = one(rev, 'refresh-reuse');
    expectValid(r);
    expect(r.outcome).toBe('8');
    expect(tokenIdentifiers(r)).toEqual(expect.arrayContaining([hashedToken(refreshToken)]));
    expect(clientIds(r)).toEqual(['chart']);
    expectNoSecrets(r, [refreshToken]);
  });

  test('revocation: the token by hash, with its grant; an unknown token is recorded as a no-op', async () => {
    const fresh = await ehrFlow('pat-3');
    const rt = fresh.token.body.refresh_token as string;
    const { result: res, events: ev } = await recordedBy(t, () =>
      t.request.post('/revoke').type('form').send({ token: rt, token_type_hint: 'refresh_token', client_id: 'chart' }),
    );
    expect(res.status).toBe(200);
    const e = one(ev, 'token-revoked');
    expectValid(e);
    expect(e.action).toBe('D');
    expect(e.outcome).toBe('0');
    expect(e.outcomeDesc).toBe('revoked with its grant');
    expect(tokenIdentifiers(e)[0]).toEqual(hashedToken(rt));
    expectNoSecrets(e, [rt]);

    const { events: again } = await recordedBy(t, () => t.request.post('/revoke').type('form').send({ token: rt, client_id: 'chart' }));
    expect(one(again, 'token-revoked').outcomeDesc).toMatch(/unknown token/);
  });
});

describe('no audit, no answer', () => {
  let broken: TestApp;
  let brokenKey: BackendKey;
  beforeAll(async () => {
    broken = await createTestApp({ AUTHZ_FHIR_SERVERS: FHIR });
    brokenKey = await backendKey('ES384');
    await registerBackend(broken, 'audit-backend', [brokenKey]);
    await registerResourceServer(broken, RS, { fhir_servers: [FHIR] });
  });
  afterAll(() => broken.close());

  test('when the event cannot be appended, the token is not handed out and introspection does not answer', async () => {
    const ok = await tokenRequest(broken, await signAssertion(brokenKey, 'audit-backend', TOKEN_URL));
    expect(ok.status).toBe(200);
    // The chain head becomes a string: every append script now fails inside Redis (WRONGTYPE).
    await broken.redis.del(broken.keyspace.auditHead('main'));
    await broken.redis.set(broken.keyspace.auditHead('main'), 'not a hash');
    const refused = await tokenRequest(broken, await signAssertion(brokenKey, 'audit-backend', TOKEN_URL));
    expect(refused.status).toBeGreaterThanOrEqual(500);
    expect(refused.body.access_token).toBeUndefined();
    expect(refused.text).not.toMatch(/"access_token"/);
    const answer = await introspect(broken, ok.body.access_token);
    expect(answer.status).toBeGreaterThanOrEqual(500);
    expect(answer.text).not.toMatch(/"active"/);
  });
});
