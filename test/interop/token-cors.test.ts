import { createTestApp, type TestApp } from '../support/test-app.js';
import { authorizeThroughPages, type AuthorizeParams, type PageFlow } from '../support/smart-flow.js';
import { createPerson, PASSWORD, registerSmartApp } from '../support/fixtures.js';
import { PublicClientOrigins } from '../../src/oauth/provider/browser-cors.js';

/**
 * SMART "CORS": a browser app (public client) reaches the token endpoint from its registered
 * origin; the preflight (which names no client) and the request agree on who may.
 */

const FHIR = 'http://localhost:8080/fhir';
const APP_ORIGIN = 'https://web.example.org';
const APP = { client_id: 'web-app', redirect_uri: `${APP_ORIGIN}/cb` };

let t: TestApp;

function preflight(path: string, origin: string) {
  return t.request
    .options(path)
    .set('Origin', origin)
    .set('Access-Control-Request-Method', 'POST')
    .set('Access-Control-Request-Headers', 'content-type, dpop');
}

function params(): AuthorizeParams {
  return { ...APP, scope: 'launch/patient patient/*.rs', aud: FHIR, state: 's' };
}

function exchangeFrom(origin: string | undefined, flow: PageFlow) {
  const req = t.request.post('/token').type('form');
  if (origin) req.set('Origin', origin);
  return req.send({
    grant_type: 'authorization_code',
    code: flow.code,
    redirect_uri: APP.redirect_uri,
    code_verifier: flow.verifier,
    client_id: APP.client_id,
  });
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: FHIR, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  await registerSmartApp(t, { id: APP.client_id, redirectUri: APP.redirect_uri, scopes: ['launch/patient', 'patient/*.rs'] });
  await registerSmartApp(t, {
    id: 'server-app',
    secret: 'server-app-secret-value',
    redirectUri: 'https://server.example.org/cb',
    scopes: ['patient/*.rs'],
  });
  await createPerson(t, { fhirUser: 'Patient/pat-1' }, { userName: 'pat' });
});
afterAll(() => t.close());

describe('preflight', () => {
  test.each(['/token', '/revoke'])('%s: a public app’s redirect origin may send; the answer echoes it', async (path) => {
    const res = await preflight(path, APP_ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(res.headers['access-control-allow-methods']).toMatch(/POST/);
    expect(res.headers['access-control-allow-headers']).toBe('content-type, dpop');
  });

  test.each([
    ['an origin no client has', 'https://evil.example.net'],
    ['only a confidential client’s origin', 'https://server.example.org'],
    ['the opaque origin', 'null'],
    ['a public app’s origin on another port', 'https://web.example.org:8443'],
  ])('%s is refused: no Access-Control headers', async (_what, origin) => {
    for (const path of ['/token', '/revoke']) {
      const res = await preflight(path, origin);
      expect(res.status).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers['access-control-allow-methods']).toBeUndefined();
      expect(res.headers.vary).toMatch(/Origin/);
    }
  });

  test('an app registered after the first preflight is seen on its next preflight', async () => {
    expect((await preflight('/token', 'https://late.example.org')).headers['access-control-allow-origin']).toBeUndefined();
    await registerSmartApp(t, { id: 'late-app', redirectUri: 'https://late.example.org/cb', scopes: ['patient/*.rs'] });
    // The refused origin is re-checked against the registry after a few seconds at most.
    await new Promise((r) => setTimeout(r, 5100));
    expect((await preflight('/token', 'https://late.example.org')).headers['access-control-allow-origin']).toBe('https://late.example.org');
  }, 15_000);
});

describe('the token request', () => {
  test('from the app’s origin: tokens, readable by the app', async () => {
    const flow = await authorizeThroughPages(t, params(), { username: 'pat', password: PASSWORD });
    const res = await exchangeFrom(APP_ORIGIN, flow);
    expect(res.status).toBe(200);
    expect(res.body.access_token).toEqual(expect.any(String));
    expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
  });

  test('an error for the app at its origin is readable too', async () => {
    const res = await t.request
      .post('/token')
      .type('form')
      .set('Origin', APP_ORIGIN)
      .send({
        grant_type: 'authorization_code',
        code: 'not-a-code',
        redirect_uri: APP.redirect_uri,
        code_verifier: 'v'.repeat(43),
        client_id: APP.client_id,
      });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
  });

  test('from another origin: refused before anything is done, unreadable by that page; the code still works for the app', async () => {
    const flow = await authorizeThroughPages(t, params(), { username: 'pat', password: PASSWORD });
    const refused = await exchangeFrom('https://evil.example.net', flow);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();

    const ok = await exchangeFrom(APP_ORIGIN, flow);
    expect(ok.status).toBe(200);
  });

  test('a confidential client is not a browser app: refused with an Origin, served without one', async () => {
    const auth = `Basic ${Buffer.from('server-app:server-app-secret-value').toString('base64')}`;
    const body = { grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: 'https://server.example.org/cb' };
    const browser = await t.request
      .post('/token')
      .type('form')
      .set('Authorization', auth)
      .set('Origin', 'https://server.example.org')
      .send(body);
    expect(browser.status).toBe(400);
    expect(browser.body.error).toBe('invalid_request');
    expect(browser.headers['access-control-allow-origin']).toBeUndefined();
    const server = await t.request.post('/token').type('form').set('Authorization', auth).send(body);
    expect(server.body.error).toBe('invalid_grant');
  });
});

describe('PublicClientOrigins', () => {
  test('reads the registry once for many concurrent unknown origins, and again only after the refresh interval', async () => {
    let now = 0;
    let reads = 0;
    const origins = new PublicClientOrigins(
      async () => {
        reads += 1;
        await new Promise((r) => setTimeout(r, 10));
        return [
          { token_endpoint_auth_method: 'none', redirect_uris: ['https://a.example.org/cb', 'com.example.app:/cb'] },
          { token_endpoint_auth_method: 'client_secret_basic', redirect_uris: ['https://b.example.org/cb'] },
        ];
      },
      { missRefreshMs: 1000, now: () => now },
    );
    const answers = await Promise.all(
      ['https://a.example.org', 'https://b.example.org', 'https://x.example.org', 'https://a.example.org'].map((o) => origins.has(o)),
    );
    expect(answers).toEqual([true, false, false, true]);
    expect(reads).toBe(1);
    now = 500;
    expect(await origins.has('https://x.example.org')).toBe(false);
    expect(await origins.has('https://a.example.org')).toBe(true);
    expect(reads).toBe(1);
    now = 1500;
    expect(await origins.has('https://x.example.org')).toBe(false);
    expect(reads).toBe(2);
  });
});
