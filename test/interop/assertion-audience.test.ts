import type { webcrypto } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { importJWK } from 'jose';
import * as oidc from 'openid-client';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { assertionProblem } from '../../src/oauth/backend/assertion-rules.js';

/**
 * private_key_jwt `aud`: SMART names the token endpoint URL, RFC 7523bis (and openid-client v6 by
 * default) the issuer identifier. Both are accepted at every endpoint that takes client
 * assertions, and each endpoint also accepts its own URL; nothing else is.
 */

const FHIR = 'http://localhost:8080/fhir';
const ISSUER = 'http://localhost:3000';
const TOKEN_URL = `${ISSUER}/token`;
const INTROSPECT_URL = `${ISSUER}/introspect`;
const REVOKE_URL = `${ISSUER}/revoke`;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let t: TestApp;
let backend: BackendKey;
let rsKey: BackendKey;

function introspect(token: string, assertion: string) {
  return t.request.post('/introspect').type('form').send({ token, client_assertion_type: JWT_BEARER, client_assertion: assertion });
}

function revoke(token: string, assertion: string) {
  return t.request.post('/revoke').type('form').send({ token, client_assertion_type: JWT_BEARER, client_assertion: assertion });
}

async function systemToken(): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(backend, 'bulk', TOKEN_URL));
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_ISSUER: ISSUER, AUTHZ_FHIR_SERVERS: FHIR });
  backend = await backendKey('ES384');
  rsKey = await backendKey('RS384');
  await registerBackend(t, 'bulk', [backend]);
  await t.registry.upsert({
    client_id: 'rs-jwt',
    smart_client_kind: 'resource_server',
    jwks: { keys: [rsKey.publicJwk] },
    fhir_servers: [FHIR],
  });
});
afterAll(() => t.close());

describe('token endpoint', () => {
  test.each([
    ['the issuer (openid-client’s default)', ISSUER],
    ['the token endpoint URL (SMART)', TOKEN_URL],
    ['a list holding the issuer', [ISSUER, 'https://other.example.org']],
  ])('aud = %s is accepted', async (_what, aud) => {
    const res = await tokenRequest(t, await signAssertion(backend, 'bulk', TOKEN_URL, { aud }));
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/*.rs');
  });

  test.each([
    ['the issuer with a trailing slash', `${ISSUER}/`],
    ['the introspection endpoint', INTROSPECT_URL],
    ['another server’s token endpoint', 'https://elsewhere.example.org/token'],
  ])('aud = %s is refused, and the error names what is accepted', async (_what, aud) => {
    const res = await tokenRequest(t, await signAssertion(backend, 'bulk', TOKEN_URL, { aud }));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(res.body.error_description).toMatch(/aud.*issuer.*token endpoint/);
  });
});

describe('introspection and revocation', () => {
  test.each([
    ['the issuer', ISSUER],
    ['the token endpoint URL', TOKEN_URL],
    ['the introspection endpoint URL', INTROSPECT_URL],
  ])('a resource server introspects with aud = %s', async (_what, aud) => {
    const res = await introspect(await systemToken(), await signAssertion(rsKey, 'rs-jwt', TOKEN_URL, { aud }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: 'bulk' });
  });

  test('introspection refuses the revocation endpoint as aud', async () => {
    const res = await introspect(await systemToken(), await signAssertion(rsKey, 'rs-jwt', TOKEN_URL, { aud: REVOKE_URL }));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  test.each([
    ['the issuer', ISSUER],
    ['the revocation endpoint URL', REVOKE_URL],
  ])('a client revokes its token with aud = %s', async (_what, aud) => {
    const token = await systemToken();
    const res = await revoke(token, await signAssertion(backend, 'bulk', TOKEN_URL, { aud }));
    expect(res.status).toBe(200);
    const after = await introspect(token, await signAssertion(rsKey, 'rs-jwt', TOKEN_URL));
    expect(after.body).toEqual({ active: false });
  });
});

test('openid-client v6 with its defaults (aud = the issuer) gets a backend token', async () => {
  const server: Server = t.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const port = (server.address() as AddressInfo).port;
    // The issuer is http://localhost:3000; requests go to this test's listening port instead.
    const toTestServer: typeof fetch = (input, init) => fetch(String(input).replace(ISSUER, `http://127.0.0.1:${port}`), init);
    const key = (await importJWK(backend.privateJwk, 'ES384')) as webcrypto.CryptoKey;
    const config = await oidc.discovery(
      new URL(ISSUER),
      'bulk',
      { token_endpoint_auth_signing_alg: 'ES384' },
      oidc.PrivateKeyJwt({ key, kid: backend.kid }),
      {
        execute: [oidc.allowInsecureRequests],
        [oidc.customFetch]: toTestServer,
      },
    );
    config[oidc.customFetch] = toTestServer;
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'system/*.rs' });
    expect(tokens.scope).toBe('system/*.rs');
    expect(tokens.access_token).toEqual(expect.any(String));
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('the rule’s own message lists exactly the accepted audiences', () => {
  const problem = assertionProblem({
    claims: { iss: 'c', sub: 'c', aud: 'https://x.example.org', exp: 1060, jti: 'j' },
    header: { kid: 'k' },
    client: { clientId: 'c' },
    audiences: [TOKEN_URL, ISSUER],
    now: 1000,
    clockTolerance: 15,
  });
  expect(problem).toBe(`aud must be the token endpoint URL or the issuer (one of: ${TOKEN_URL}, ${ISSUER})`);
});
