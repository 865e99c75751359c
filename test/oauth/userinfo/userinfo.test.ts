import { randomUUID } from 'node:crypto';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { authorizeThroughPages, exchangeCode } from '../../support/smart-flow.js';
import { createPerson, paramsFor, registerSmartApp } from '../../support/fixtures.js';
import { directoryOf } from '../../smart/interaction/login/support.js';
import { backendKey, registerBackend, signAssertion, tokenRequest } from '../../support/backend-client.js';

/**
 * OpenID Connect UserInfo with SMART access tokens, which are always bound to a FHIR server:
 * claims per granted scope, and refusals as RFC 6750 Bearer challenges.
 */

const FHIR = 'http://localhost:8080/fhir';
const REDIRECT = 'https://ui-app.example.org/cb';
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  await registerSmartApp(t, {
    id: 'ui-app',
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'profile', 'online_access', 'user/*.rs'],
  });
});

afterAll(async () => {
  await t.close();
});

const params = paramsFor({ client_id: 'ui-app', redirect_uri: REDIRECT, aud: FHIR });

async function userToken(scope: string): Promise<{ token: string; sub: string }> {
  const user = await createPerson(
    t,
    { fhirUser: 'Practitioner/uma', staff: true },
    { userName: `ui-${randomUUID().slice(0, 8)}`, name: { givenName: 'Uma', familyName: 'Info' } },
  );
  const flow = await authorizeThroughPages(t, params(scope), user);
  const res = await exchangeCode(t, flow, params(''));
  expect(res.status).toBe(200);
  return { token: res.body.access_token as string, sub: user.id };
}

test('claims follow the granted scopes; GET and POST; no-store; any origin may read', async () => {
  const { token, sub } = await userToken('openid fhirUser profile user/*.rs');
  const res = await t.request.get('/userinfo').set('Authorization', `Bearer ${token}`);
  expect(res.status).toBe(200);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['access-control-allow-origin']).toBe('*');
  expect(res.body).toEqual({
    sub,
    fhirUser: `${FHIR}/Practitioner/uma`,
    name: 'Uma Info',
    given_name: 'Uma',
    family_name: 'Info',
    preferred_username: expect.any(String),
    updated_at: expect.any(Number),
  });
  expect((await t.request.post('/userinfo').set('Authorization', `Bearer ${token}`)).body).toEqual(res.body);

  const narrow = await userToken('openid user/*.rs');
  expect((await t.request.get('/userinfo').set('Authorization', `Bearer ${narrow.token}`)).body).toEqual({ sub: narrow.sub });
});

test('refusals: no token, unknown token, a token without openid, a backend token, a disabled user', async () => {
  const none = await t.request.get('/userinfo');
  expect(none.status).toBe(401);
  expect(none.headers['www-authenticate']).toBe('Bearer realm="userinfo"');

  const unknown = await t.request.get('/userinfo').set('Authorization', 'Bearer not-a-token-at-all-0123456789');
  expect(unknown.status).toBe(401);
  expect(unknown.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);

  const noOpenid = await userToken('fhirUser user/*.rs');
  const forbidden = await t.request.get('/userinfo').set('Authorization', `Bearer ${noOpenid.token}`);
  expect(forbidden.status).toBe(403);
  expect(forbidden.body.error).toBe('insufficient_scope');

  const key = await backendKey('ES384');
  await registerBackend(t, 'ui-backend', [key]);
  const backend = await tokenRequest(t, await signAssertion(key, 'ui-backend', 'http://localhost:3000/token'));
  expect((await t.request.get('/userinfo').set('Authorization', `Bearer ${backend.body.access_token}`)).status).toBe(401);

  const { token, sub } = await userToken('openid user/*.rs');
  await directoryOf(t).users.setActive(sub, false);
  expect((await t.request.get('/userinfo').set('Authorization', `Bearer ${token}`)).status).toBe(401);
});
