import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { modelAdapter } from '../../src/app/services.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { registerResourceServer, registerSmartApp } from '../support/fixtures.js';

/**
 * Tokens are bound to where and how they were issued:
 *  - the Consent and AuditEvent APIs take only tokens for this server's own API audience
 *    (`<issuer>/fhir`), not a FHIR server's, and not once the token's sign-in session has ended;
 *  - a resource server introspecting a refresh token learns nothing (`active: false`) unless the
 *    token is its own;
 *  - a client assertion "issued" beyond the clock tolerance in the future is refused.
 */

const FHIR_BASE = 'http://localhost:8080/fhir';
const API = 'http://localhost:3000/fhir';
const TOKEN_URL = 'http://localhost:3000/token';
const tag = randomUUID().slice(0, 6);
const ADMIN = `admin-${tag}`;
const APP = `app-${tag}`;
const RS = `rs-${tag}`;
const ADMIN_SCOPES = 'system/AuditEvent.rs system/Consent.rs';

let t: TestApp;
let key: BackendKey;

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const get = (path: string, token: string) => t.request.get(path).set('Authorization', `Bearer ${token}`);
const introspect = (token: string, as = RS) =>
  t.request
    .post('/introspect')
    .set('Authorization', basic(as, `${as}-secret`))
    .type('form')
    .send({ token });

async function adminToken(resource: string): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(key, ADMIN, TOKEN_URL), { scope: ADMIN_SCOPES, resource });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

/** A user's access token as the code exchange mints it, bound to the browser session `sessionUid`. */
async function sessionBoundToken(sessionUid: string, aud: string, scope: string): Promise<string> {
  const client = (await t.app.Client.find(APP))!;
  const grant = new t.app.Grant({ accountId: 'pat-user', clientId: APP });
  grant.addResourceScope(aud, scope);
  const grantId = await grant.save();
  const at = new t.app.AccessToken({
    accountId: 'pat-user',
    client,
    grantId,
    scope,
    aud,
    gty: 'authorization_code',
    sessionUid,
    expiresWithSession: true,
  });
  const value = await at.save();
  const k = t.keyspace.model('AccessToken', value);
  const payload = JSON.parse((await t.redis.hget(k, 'payload'))!);
  payload.extra = { patient: 'pat-1' };
  await t.redis.hset(k, 'payload', JSON.stringify(payload));
  return value;
}

async function refreshToken(clientId: string): Promise<string> {
  const client = (await t.app.Client.find(clientId))!;
  const grant = new t.app.Grant({ accountId: 'pat-user', clientId });
  grant.addResourceScope(FHIR_BASE, 'patient/*.rs');
  const grantId = await grant.save();
  return new t.app.RefreshToken({
    accountId: 'pat-user',
    client,
    grantId,
    scope: 'offline_access patient/*.rs',
    resource: FHIR_BASE,
    gty: 'authorization_code',
  }).save();
}

beforeAll(async () => {
  t = await createTestApp();
  key = await backendKey('ES384');
  await registerBackend(t, ADMIN, [key], { smart_scopes: ['system/AuditEvent.rs', 'system/Consent.rs'] });
  await registerSmartApp(t, {
    id: APP,
    redirectUri: 'https://app.example.org/cb',
    scopes: ['launch/patient', 'offline_access', 'patient/*.rs', 'patient/Consent.rs'],
  });
  await registerResourceServer(t, { id: RS, secret: `${RS}-secret` }, { fhir_servers: [FHIR_BASE] });
});
afterAll(async () => {
  await t.close();
});

describe('the Consent and AuditEvent APIs take only tokens for their own audience', () => {
  test("a token issued for a FHIR server is refused with 401 invalid_token, though it carries the APIs' scopes", async () => {
    const fhirToken = await adminToken(FHIR_BASE);
    for (const path of ['/fhir/Consent', '/fhir/AuditEvent']) {
      const res = await get(path, fhirToken);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="(consent|audit)", error="invalid_token"/);
      expect(JSON.parse(res.text)).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [{ code: 'login', diagnostics: expect.stringContaining(`resource=${API}`) }],
      });
    }
  });

  test('the same client with resource=<issuer>/fhir gets a token the APIs accept, with only their scopes', async () => {
    const res = await tokenRequest(t, await signAssertion(key, ADMIN, TOKEN_URL), { scope: ADMIN_SCOPES, resource: API });
    expect(res.status).toBe(200);
    expect(res.body.scope.split(' ').sort()).toEqual(ADMIN_SCOPES.split(' ').sort());
    for (const path of ['/fhir/Consent', '/fhir/AuditEvent']) expect((await get(path, res.body.access_token as string)).status).toBe(200);
  });

  test('a backend asking only for these APIs’ scopes gets the API audience by default', async () => {
    const res = await tokenRequest(t, await signAssertion(key, ADMIN, TOKEN_URL), { scope: 'system/AuditEvent.rs' });
    expect(res.status).toBe(200);
    expect((await get('/fhir/AuditEvent', res.body.access_token as string)).status).toBe(200);
  });

  test('the API audience never carries data scopes: asking it for system/*.rs alone is invalid_scope', async () => {
    await registerBackend(t, `bulk-${tag}`, [key], { smart_scopes: ['system/*.rs'] });
    const res = await tokenRequest(t, await signAssertion(key, `bulk-${tag}`, TOKEN_URL), { scope: 'system/*.rs', resource: API });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
    // RFC 6749 §5.2 members only (no non-standard `scope` member).
    expect(Object.keys(res.body).sort()).toEqual(['error', 'error_description']);
  });

  test('a token whose sign-in session has ended is refused', async () => {
    const sessions = modelAdapter(t.redis, t.keyspace)('Session');
    const id = randomUUID();
    const uid = randomUUID();
    await sessions.upsert(id, { jti: id, uid, accountId: 'pat-user', kind: 'Session' }, 600);
    const token = await sessionBoundToken(uid, API, 'patient/Consent.rs');
    expect((await get('/fhir/Consent', token)).status).toBe(200);
    await sessions.destroy(id);
    const res = await get('/fhir/Consent', token);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    expect(JSON.parse(res.text).issue[0].diagnostics).toMatch(/session .*has ended/);
  });
});

describe('introspection of refresh tokens', () => {
  test("a resource server gets { active: false } for an app's refresh token", async () => {
    const res = await introspect(await refreshToken(APP));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ active: false });
  });

  test('the client the refresh token was issued to still learns about it', async () => {
    const res = await introspect(await refreshToken(RS));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      active: true,
      token_type: 'refresh_token',
      client_id: RS,
      sub: 'pat-user',
      scope: 'offline_access patient/*.rs',
    });
  });
});

describe('client assertions', () => {
  test('iat an hour in the future → 401 invalid_client naming the rule', async () => {
    const now = Math.floor(Date.now() / 1000);
    const res = await tokenRequest(t, await signAssertion(key, ADMIN, TOKEN_URL, { extra: { iat: now + 3600 } }), {
      scope: 'system/AuditEvent.rs',
      resource: API,
    });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(res.body.error_description).toMatch(/iat is in the future/);
  });

  test('iat within the clock tolerance is still accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    const res = await tokenRequest(t, await signAssertion(key, ADMIN, TOKEN_URL, { extra: { iat: now + 5 } }), {
      scope: 'system/AuditEvent.rs',
      resource: API,
    });
    expect(res.status).toBe(200);
  });
});
