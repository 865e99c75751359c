import { consentServiceOf } from '../../support/smart-flow.js';
import { randomUUID } from 'node:crypto';
import type { ConsentDecision } from '../../../src/records/consent/consent-resource.js';
import type { ConsentService } from '../../../src/records/consent/consent-service.js';
import { GrantContextStore } from '../../../src/oauth/tokens/grant-context.js';
import { CORE_USER_SCHEMA } from '../../../src/records/directory/model.js';
import { createUserStore } from '../../../src/records/directory/user-store.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import { registerResourceServer, registerSmartApp } from '../../support/fixtures.js';
import { consentProblems } from '../../records/consent/consent-shape.js';

const FHIR_BASE = 'http://localhost:8080/fhir';
const TOKEN_URL = 'http://localhost:3000/token';
const ISSUER = 'http://localhost:3000';
/** This server's own API audience: tokens for the Consent API are issued for it. */
const API = `${ISSUER}/fhir`;

let t: TestApp;
let consents: ConsentService;
let adminKey: BackendKey;
let adminToken: string;
let readerToken: string;
let bulkToken: string;
/** A real user: a refresh needs the grant's account to exist. */
let accountId: string;

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function backendToken(clientId: string, scope: string, resource = API): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(adminKey, clientId, TOKEN_URL), { scope, resource });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

/** Tokens of one grant, as the code exchange mints them, with the launch context in `extra`. */
async function grantWithTokens(patient: string, scope = 'patient/*.rs', resource = FHIR_BASE) {
  const client = (await t.app.Client.find('app'))!;
  const grant = new t.app.Grant({ accountId: accountId, clientId: 'app' });
  grant.addOIDCScope('openid fhirUser launch/patient offline_access');
  grant.addResourceScope(resource, scope);
  const grantId = await grant.save();
  const at = new t.app.AccessToken({ accountId: accountId, client, grantId, scope, aud: resource, gty: 'authorization_code' });
  const accessToken = await at.save();
  const key = t.keyspace.model('AccessToken', accessToken);
  const payload = JSON.parse((await t.redis.hget(key, 'payload'))!);
  payload.extra = { patient };
  await t.redis.hset(key, 'payload', JSON.stringify(payload));
  const rt = new t.app.RefreshToken({
    accountId: accountId,
    client,
    grantId,
    scope: `openid offline_access ${scope}`,
    resource,
    gty: 'authorization_code',
  });
  const refreshToken = await rt.save();
  return { grantId, accessToken, refreshToken };
}

async function permit(patient: string, overrides: Partial<ConsentDecision> = {}) {
  return consents.recordDecision({
    kind: 'permit',
    patientId: patient,
    performer: { reference: `Patient/${patient}` },
    clientId: 'app',
    clientName: 'The App',
    scopes: ['openid', 'launch/patient', 'offline_access', 'patient/*.rs'],
    periodSeconds: 3600,
    ...overrides,
  });
}

const introspect = (token: string, hint?: string) =>
  t.request
    .post('/introspect')
    .set('Authorization', basic('rs', 'rs-secret'))
    .type('form')
    .send({ token, ...(hint ? { token_type_hint: hint } : {}) });

/** Whether a refresh token could still be used (resource servers may not introspect an app's refresh tokens). */
async function refreshTokenLive(value: string): Promise<boolean> {
  const rt = await t.app.RefreshToken.find(value);
  return Boolean(rt && !rt.consumed && !rt.isExpired);
}

const refresh = (refreshToken: string) =>
  t.request.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'app' });

const api = (token?: string) => {
  const auth = (req: ReturnType<TestApp['request']['get']>) => (token ? req.set('Authorization', `Bearer ${token}`) : req);
  return {
    get: (path: string) => auth(t.request.get(path)),
    put: (path: string, body: unknown, type = 'application/fhir+json') =>
      auth(t.request.put(path)).set('Content-Type', type).send(JSON.stringify(body)),
    patch: (path: string, body: unknown, type = 'application/json-patch+json') =>
      auth(t.request.patch(path)).set('Content-Type', type).send(JSON.stringify(body)),
    delete: (path: string) => auth(t.request.delete(path)),
  };
};

/** A patient-facing app's token for `patient`, with the given Consent permissions. */
async function patientToken(patient: string, perms: string): Promise<string> {
  return (await grantWithTokens(patient, `patient/Consent.${perms}`, API)).accessToken;
}

beforeAll(async () => {
  t = await createTestApp();
  adminKey = await backendKey('RS384');
  await registerBackend(t, 'consent-admin', [adminKey], { smart_scopes: ['system/Consent.cruds'] });
  await registerBackend(t, 'consent-reader', [adminKey], { smart_scopes: ['system/Consent.rs'] });
  await registerBackend(t, 'bulk', [adminKey], { smart_scopes: ['system/*.cruds'] });
  await registerResourceServer(t, { id: 'rs', secret: 'rs-secret' }, { fhir_servers: [FHIR_BASE] });
  await registerSmartApp(t, {
    id: 'app',
    redirectUri: 'https://app.example.org/cb',
    scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.cruds'],
  });
  accountId = (await createUserStore(t.config, t.redis, t.keyspace).create({ schemas: [CORE_USER_SCHEMA], userName: 'consenting-user' }))
    .id;
  consents = consentServiceOf(t);
  adminToken = await backendToken('consent-admin', 'system/Consent.cruds');
  readerToken = await backendToken('consent-reader', 'system/Consent.rs');
  bulkToken = await backendToken('bulk', 'system/*.cruds', FHIR_BASE);
});
afterAll(async () => {
  await t.close();
});

describe('authorization', () => {
  let id: string;
  beforeAll(async () => {
    id = (await permit('pa-1')).id;
  });

  test('no token → 401 OperationOutcome with WWW-Authenticate', async () => {
    const res = await api().get(`/fhir/Consent/${id}`);
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="consent"');
    expect(JSON.parse(res.text)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
  });

  test('an unknown token or a refresh token → 401', async () => {
    const unknown = await api('x'.repeat(43)).get(`/fhir/Consent/${id}`);
    expect(unknown.status).toBe(401);
    expect(unknown.headers['www-authenticate']).toBe(
      'Bearer realm="consent", error="invalid_token", error_description="the access token is not valid (unknown, expired or revoked)"',
    );
    const { refreshToken } = await grantWithTokens('pa-1', 'patient/Consent.rs', API);
    expect((await api(refreshToken).get(`/fhir/Consent/${id}`)).status).toBe(401);
  });

  test("another patient's token → 403, also when searching for that patient", async () => {
    const other = await patientToken('pa-2', 'rs');
    const res = await api(other).get(`/fhir/Consent/${id}`);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.text).issue[0].code).toBe('forbidden');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="consent", error="insufficient_scope"');
    expect((await api(other).get('/fhir/Consent?patient=pa-1')).status).toBe(403);
  });

  test("the patient's own token reads; its search is limited to that patient", async () => {
    const own = await patientToken('pa-1', 'rs');
    const res = await api(own).get(`/fhir/Consent/${id}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    expect(res.headers.etag).toBe('W/"1"');
    const body = JSON.parse(res.text);
    expect(body.id).toBe(id);
    expect(consentProblems(body)).toEqual([]);
    await permit('pa-2');
    const search = JSON.parse((await api(own).get('/fhir/Consent')).text);
    expect(search.total).toBeGreaterThanOrEqual(1);
    expect(
      search.entry.every((e: { resource: { patient: { reference: string } } }) => e.resource.patient.reference === 'Patient/pa-1'),
    ).toBe(true);
  });

  test('an administrator token reads any Consent; a read-only one may not withdraw', async () => {
    expect((await api(adminToken).get(`/fhir/Consent/${id}`)).status).toBe(200);
    expect((await api(readerToken).get(`/fhir/Consent/${id}`)).status).toBe(200);
    expect((await api(readerToken).delete(`/fhir/Consent/${id}`)).status).toBe(403);
    expect((await api(await patientToken('pa-1', 'rs')).delete(`/fhir/Consent/${id}`)).status).toBe(403);
  });

  test('a data scope (system/*.cruds, patient/*.rs) is no Consent permission', async () => {
    // A bulk client's token is for the FHIR server, so it does not even reach the scope check here.
    expect((await api(bulkToken).get(`/fhir/Consent/${id}`)).status).toBe(401);
    // One with this API's audience but only a wildcard data scope (the token endpoint does not
    // issue such a token; minted directly to test the API's own rule).
    const { accessToken } = await grantWithTokens('pa-1', 'patient/*.rs', API);
    expect((await api(accessToken).get(`/fhir/Consent/${id}`)).status).toBe(403);
  });

  test('an unknown id → 404 OperationOutcome; creating through the API → 405', async () => {
    const res = await api(adminToken).get(`/fhir/Consent/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.text).issue[0].code).toBe('not-found');
    expect((await t.request.post('/fhir/Consent').set('Authorization', `Bearer ${adminToken}`).send({})).status).toBe(405);
  });
});

describe('search', () => {
  const patient = `ps-${randomUUID().slice(0, 8)}`;
  beforeAll(async () => {
    await permit(patient, { clientId: 'app', clientName: 'A' });
    await permit(patient, { clientId: 'other-app' });
    await consents.recordDecision({
      kind: 'deny',
      patientId: patient,
      performer: { reference: `Patient/${patient}` },
      clientId: 'app',
      scopes: ['patient/*.rs'],
      periodSeconds: 3600,
    });
  });

  test('a searchset Bundle with total, absolute self/next links and full URLs', async () => {
    const res = await api(adminToken).get(`/fhir/Consent?patient=${patient}&_count=2`);
    expect(res.status).toBe(200);
    const bundle = JSON.parse(res.text);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset', total: 3 });
    expect(bundle.entry).toHaveLength(2);
    expect(bundle.entry[0].fullUrl).toBe(`${ISSUER}/fhir/Consent/${bundle.entry[0].resource.id}`);
    expect(bundle.entry[0].search).toEqual({ mode: 'match' });
    const next = bundle.link.find((l: { relation: string }) => l.relation === 'next').url as string;
    expect(bundle.link[0]).toEqual({ relation: 'self', url: `${ISSUER}/fhir/Consent?patient=${patient}&_count=2&_offset=0` });
    expect(next).toBe(`${ISSUER}/fhir/Consent?patient=${patient}&_count=2&_offset=2`);
    const page2 = JSON.parse((await api(adminToken).get(next.slice(ISSUER.length))).text);
    expect(page2.entry).toHaveLength(1);
    expect(page2.link.some((l: { relation: string }) => l.relation === 'next')).toBe(false);
    const all = [...bundle.entry, ...page2.entry].map((e: { resource: { id: string } }) => e.resource.id);
    expect(new Set(all).size).toBe(3);
  });

  test('by status, actor and date', async () => {
    const get = async (q: string) => JSON.parse((await api(adminToken).get(`/fhir/Consent?patient=${patient}&${q}`)).text);
    expect((await get('status=rejected')).total).toBe(1);
    expect((await get('status=active,rejected')).total).toBe(3);
    expect((await get('actor=Device/other-app')).total).toBe(1);
    expect((await get('actor=app')).total).toBe(2);
    const today = new Date().toISOString().slice(0, 10);
    expect((await get(`date=${today}`)).total).toBe(3);
    expect((await get(`date=ge${today}&date=le${today}`)).total).toBe(3);
    expect((await get('date=lt2020-01-01')).total).toBe(0);
    expect((await get(`date=gt${today}`)).total).toBe(0);
    const countOnly = await get('_count=0');
    expect(countOnly.total).toBe(3);
    expect(countOnly.entry).toEqual([]);
  });

  test('bad parameters → 400 OperationOutcome', async () => {
    // _count above the maximum is capped, not refused (test/interop/small-fixes.test.ts).
    for (const q of ['status=nope', 'date=yesterday', 'date=sa2026-01-01', '_count=x', 'name=x', 'patient=a&patient=b']) {
      const res = await api(adminToken).get(`/fhir/Consent?${q}`);
      expect([q, res.status]).toEqual([q, 400]);
      expect(JSON.parse(res.text).resourceType).toBe('OperationOutcome');
    }
  });
});

describe('withdrawal revokes every grant tied to the Consent', () => {
  async function tiedGrant(patient: string) {
    const consent = await permit(patient);
    const tokens = await grantWithTokens(patient);
    await consents.linkGrant(consent.id, tokens.grantId);
    const second = await grantWithTokens(patient);
    await consents.linkGrant(consent.id, second.grantId);
    expect((await introspect(tokens.accessToken)).body.active).toBe(true);
    expect(await refreshTokenLive(tokens.refreshToken)).toBe(true);
    return { consent, tokens, second };
  }

  async function expectRevoked(tokens: { accessToken: string; refreshToken: string }) {
    expect((await introspect(tokens.accessToken)).body).toEqual({ active: false });
    expect(await refreshTokenLive(tokens.refreshToken)).toBe(false);
    const res = await refresh(tokens.refreshToken);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  }

  test('a refresh works while the Consent is active', async () => {
    const { tokens } = await tiedGrant(`pw-${randomUUID().slice(0, 8)}`);
    const res = await refresh(tokens.refreshToken);
    expect(res.body).toMatchObject({ access_token: expect.any(String) });
    expect(res.status).toBe(200);
  });

  test('PUT with status inactive (by the patient)', async () => {
    const patient = `pw-${randomUUID().slice(0, 8)}`;
    const { consent, tokens, second } = await tiedGrant(patient);
    const current = JSON.parse((await api(adminToken).get(`/fhir/Consent/${consent.id}`)).text);
    const res = await api(await patientToken(patient, 'ru')).put(`/fhir/Consent/${consent.id}`, { ...current, status: 'inactive' });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text);
    expect(body).toMatchObject({ id: consent.id, status: 'inactive', meta: { versionId: '2' } });
    expect(res.headers.etag).toBe('W/"2"');
    await expectRevoked(tokens);
    await expectRevoked(second);
    const provenance = await consents.store.provenance(consent.id);
    expect(provenance.at(-1)).toMatchObject({
      activity: { coding: [{ code: 'UPDATE' }] },
      agent: [{ who: { reference: `Patient/${patient}` } }],
    });
  });

  test('PATCH replacing /status (by an administrator)', async () => {
    const { consent, tokens } = await tiedGrant(`pw-${randomUUID().slice(0, 8)}`);
    const res = await api(adminToken).patch(`/fhir/Consent/${consent.id}`, [
      { op: 'test', path: '/status', value: 'active' },
      { op: 'replace', path: '/status', value: 'inactive' },
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).status).toBe('inactive');
    await expectRevoked(tokens);
    const provenance = await consents.store.provenance(consent.id);
    expect(provenance.at(-1)!.agent[0]!.who).toMatchObject({ reference: 'Device/consent-admin' });
  });

  test('DELETE → 204', async () => {
    const patient = `pw-${randomUUID().slice(0, 8)}`;
    const { consent, tokens } = await tiedGrant(patient);
    const res = await api(await patientToken(patient, 'd')).delete(`/fhir/Consent/${consent.id}`);
    expect(res.status).toBe(204);
    await expectRevoked(tokens);
    expect((await consents.store.get(consent.id))!.status).toBe('inactive');
    // Repeating is harmless.
    expect((await api(adminToken).delete(`/fhir/Consent/${consent.id}`)).status).toBe(204);
  });

  test('withdrawal through the service (as a consent page would) ends the grant and its launch context', async () => {
    const { consent, tokens } = await tiedGrant(`pw-${randomUUID().slice(0, 8)}`);
    const contexts = new GrantContextStore(t.redis, t.keyspace);
    await contexts.save(tokens.grantId, { patient: 'x' }, 600);
    await consents.withdraw(consent.id, { reference: 'Device/consent-admin' });
    await expectRevoked(tokens);
    expect(await contexts.get(tokens.grantId)).toBeUndefined();
    expect(await t.app.Grant.find(tokens.grantId)).toBeUndefined();
    await expect(consents.assertActiveForGrant(tokens.grantId, 'patient/*.rs')).rejects.toMatchObject({
      problem: 'inactive',
      error: 'invalid_grant',
    });
  });
});

describe('what withdrawal does not accept', () => {
  let id: string;
  let current: Record<string, unknown>;
  beforeAll(async () => {
    id = (await permit(`pn-${randomUUID().slice(0, 8)}`)).id;
    current = JSON.parse((await api(adminToken).get(`/fhir/Consent/${id}`)).text);
  });

  test.each([
    ['another status', 422, { status: 'rejected' }],
    ['another change together with the status', 422, { status: 'inactive', dateTime: '2020-01-01T00:00:00Z' }],
    ['another id', 400, { status: 'inactive', id: 'other' }],
    ['another resource type', 400, { status: 'inactive', resourceType: 'Patient' }],
  ])('PUT with %s → %d', async (_name, status, change) => {
    const res = await api(adminToken).put(`/fhir/Consent/${id}`, { ...current, ...change });
    expect(res.status).toBe(status);
    expect(JSON.parse(res.text).resourceType).toBe('OperationOutcome');
    expect((await consents.store.get(id))!.status).toBe('active');
  });

  test.each([
    ['a replace of another path', 422, [{ op: 'replace', path: '/dateTime', value: '2020-01-01T00:00:00Z' }]],
    ['an add', 422, [{ op: 'add', path: '/status', value: 'inactive' }]],
    [
      'a failing test',
      422,
      [
        { op: 'test', path: '/status', value: 'inactive' },
        { op: 'replace', path: '/status', value: 'inactive' },
      ],
    ],
    ['no array', 400, { op: 'replace' }],
  ])('PATCH with %s → %d', async (_name, status, body) => {
    const res = await api(adminToken).patch(`/fhir/Consent/${id}`, body);
    expect(res.status).toBe(status);
    expect((await consents.store.get(id))!.status).toBe('active');
  });

  test('wrong media types → 415; a stale If-Match → 412', async () => {
    expect(
      (await api(adminToken).patch(`/fhir/Consent/${id}`, [{ op: 'replace', path: '/status', value: 'inactive' }], 'application/json'))
        .status,
    ).toBe(415);
    expect((await api(adminToken).put(`/fhir/Consent/${id}`, { ...current, status: 'inactive' }, 'text/plain')).status).toBe(415);
    const stale = await api(adminToken).delete(`/fhir/Consent/${id}`).set('If-Match', 'W/"7"');
    expect(stale.status).toBe(412);
    expect((await consents.store.get(id))!.status).toBe('active');
  });

  test('a refusal cannot be withdrawn (422)', async () => {
    const refused = await consents.recordDecision({
      kind: 'deny',
      patientId: 'pn-x',
      performer: { reference: 'Patient/pn-x' },
      clientId: 'app',
      scopes: ['patient/*.rs'],
      periodSeconds: 60,
    });
    const res = await api(adminToken).delete(`/fhir/Consent/${refused.id}`);
    expect(res.status).toBe(422);
    expect(JSON.parse(res.text).issue[0].code).toBe('business-rule');
  });
});
