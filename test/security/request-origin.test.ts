/*
 * Found by the fuzz suite: a Host or X-Forwarded-Proto that does not make a URL crashed the
 * oidc-provider routes that build URLs from the request (500 "oops! something went wrong").
 */
import { createTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_PROXY: 'true' });
});
afterAll(() => t.close());

describe('a request whose Host or X-Forwarded-* do not make a URL', () => {
  test.each([
    ['GET /logout, X-Forwarded-Proto ";"', '/logout', { 'X-Forwarded-Proto': ';' }],
    ['GET /logout, X-Forwarded-Proto "gopher"', '/logout', { 'X-Forwarded-Proto': 'gopher' }],
    ['GET /logout, X-Forwarded-Host "a b"', '/logout', { 'X-Forwarded-Host': 'a b' }],
    ['discovery, Host "a b"', '/.well-known/openid-configuration', { Host: 'a b' }],
  ])('%s is refused with 400 invalid_request (it was a 500 or URLs on a bogus scheme)', async (_name, path, headers) => {
    const res = await t.request.get(path).set(headers).set('Accept', 'application/json');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.stringMatching(/Host or X-Forwarded-Proto/) });
  });

  test('well-formed forwarded headers still work', async () => {
    const res = await t.request
      .get('/.well-known/openid-configuration')
      .set({ 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'authz.example.org' });
    expect(res.status).toBe(200);
  });
});
