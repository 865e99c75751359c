import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, signAssertion, type BackendKey } from '../../support/backend-client.js';
import { basicAuth, followAuthorization, startAuthorization } from '../../support/smart-flow.js';
import { createPerson, registerSmartApp } from '../../support/fixtures.js';

/** Every client kind an app may be registered as can exchange a code and refresh (discovery promises it). */

const FHIR = 'http://localhost:8080/fhir';
const CB = 'https://app.example.org/cb';
const TOKEN_URL = 'http://localhost:3000/token';
const SCOPES = ['openid', 'offline_access', 'user/*.rs'];

let t: TestApp;
let userId: string;
let rsKey: BackendKey;
let esKey: BackendKey;

beforeAll(async () => {
  t = await createTestApp();
  rsKey = await backendKey('RS384');
  esKey = await backendKey('ES384');
  const app = { redirectUri: CB, scopes: SCOPES };
  await registerSmartApp(t, { id: 'sym-basic', secret: 'basic-secret-0123456789', ...app });
  await registerSmartApp(t, {
    id: 'sym-post',
    secret: 'post-secret-0123456789',
    metadata: { token_endpoint_auth_method: 'client_secret_post' },
    ...app,
  });
  await registerSmartApp(t, { id: 'asym', jwks: { keys: [rsKey.publicJwk, esKey.publicJwk] }, ...app });
  userId = (await createPerson(t, { fhirUser: 'Practitioner/dr-auth', staff: true }, { userName: 'dr.auth' })).id;
});
afterAll(() => t.close());

async function codeFor(clientId: string): Promise<{ code: string; verifier: string }> {
  const { agent, first, verifier } = await startAuthorization(t, {
    client_id: clientId,
    redirect_uri: CB,
    scope: SCOPES.join(' '),
    aud: FHIR,
  });
  const flow = await followAuthorization(t, agent, first, userId);
  if (!flow.code) throw new Error(`no code: ${flow.error}`);
  return { code: flow.code, verifier };
}

test('client_secret_basic', async () => {
  const { code, verifier } = await codeFor('sym-basic');
  const res = await t.request
    .post('/token')
    .set('Authorization', basicAuth('sym-basic', 'basic-secret-0123456789'))
    .type('form')
    .send({ grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: verifier });
  expect(res.status).toBe(200);
  const next = await t.request
    .post('/token')
    .set('Authorization', basicAuth('sym-basic', 'basic-secret-0123456789'))
    .type('form')
    .send({ grant_type: 'refresh_token', refresh_token: res.body.refresh_token });
  expect(next.status).toBe(200);
});

test('client_secret_basic with a wrong secret is 401 with WWW-Authenticate', async () => {
  const { code, verifier } = await codeFor('sym-basic');
  const res = await t.request
    .post('/token')
    .set('Authorization', basicAuth('sym-basic', 'wrong'))
    .type('form')
    .send({ grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: verifier });
  expect(res.status).toBe(401);
  expect(res.body.error).toBe('invalid_client');
  expect(res.headers['www-authenticate']).toMatch(/^Basic/);
});

test('client_secret_post', async () => {
  const { code, verifier } = await codeFor('sym-post');
  const res = await t.request.post('/token').type('form').send({
    grant_type: 'authorization_code',
    code,
    redirect_uri: CB,
    code_verifier: verifier,
    client_id: 'sym-post',
    client_secret: 'post-secret-0123456789',
  });
  expect(res.status).toBe(200);
  expect(typeof res.body.refresh_token).toBe('string');
});

test.each(['RS384', 'ES384'] as const)('private_key_jwt %s, for the code and the refresh', async (alg) => {
  const key = alg === 'RS384' ? rsKey : esKey;
  const { code, verifier } = await codeFor('asym');
  const assertion = async () => ({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await signAssertion(key, 'asym', TOKEN_URL),
  });
  const res = await t.request
    .post('/token')
    .type('form')
    .send({ grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: verifier, ...(await assertion()) });
  expect(res.status).toBe(200);
  const next = await t.request
    .post('/token')
    .type('form')
    .send({ grant_type: 'refresh_token', refresh_token: res.body.refresh_token, ...(await assertion()) });
  expect(next.status).toBe(200);
});

test('PKCE: a wrong or missing verifier fails the exchange', async () => {
  const { code } = await codeFor('sym-basic');
  const wrong = await t.request
    .post('/token')
    .set('Authorization', basicAuth('sym-basic', 'basic-secret-0123456789'))
    .type('form')
    .send({ grant_type: 'authorization_code', code, redirect_uri: CB, code_verifier: 'x'.repeat(43) });
  expect(wrong.status).toBe(400);
  expect(wrong.body.error).toBe('invalid_grant');
  const { code: code2 } = await codeFor('sym-basic');
  const missing = await t.request
    .post('/token')
    .set('Authorization', basicAuth('sym-basic', 'basic-secret-0123456789'))
    .type('form')
    .send({ grant_type: 'authorization_code', code: code2, redirect_uri: CB });
  expect(missing.status).toBe(400);
  expect(missing.body.error).toBe('invalid_grant');
});
