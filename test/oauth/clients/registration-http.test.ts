import { generateKeyPair, exportJWK, calculateJwkThumbprint } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { RegistrationTokens } from '../../../src/oauth/clients/registration-tokens.js';
import { SMART_CLIENT_KINDS } from '../../../src/oauth/clients/client-kinds.js';

let t: TestApp;
let iat: string;

async function publicJwk(alg: 'ES384' | 'RS384') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const priv = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(pub);
  return { pub: { ...pub, kid, alg }, priv: { ...priv, kid, alg } };
}

beforeAll(async () => {
  t = await createTestApp();
  // These tests are about kinds and metadata validation, so the token allows every kind (the
  // registration policy itself is tested in test/security/registration-policy.test.ts).
  const policy = { kinds: [...SMART_CLIENT_KINDS], scopes: ['system/*.rs', 'launch', 'openid', 'patient/*.rs'], uses: 50, expiresIn: 600 };
  iat = (await new RegistrationTokens(t.redis, t.keyspace).issue(t.app, policy)).token;
});
afterAll(() => t.close());

describe('RFC 7591 dynamic registration and RFC 7592 management', () => {
  test('requires an initial access token', async () => {
    const res = await t.request.post('/register').send({ smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs'] });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
  });

  test('registers a backend service from SMART metadata; kind defaults fill the OAuth metadata', async () => {
    const { pub } = await publicJwk('ES384');
    const res = await t.request
      .post('/register')
      .set('Authorization', `Bearer ${iat}`)
      .send({ client_name: 'Bulk export', smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs'], jwks: { keys: [pub] } });
    expect(res.status).toBe(201);
    expect(res.body.grant_types).toEqual(['client_credentials']);
    expect(res.body.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(res.body.smart_client_kind).toBe('backend_service');
    expect(res.body.fhir_servers).toEqual(['http://localhost:8080/fhir']);
    expect(res.body.registration_access_token).toEqual(expect.any(String));
    expect(res.body.client_secret).toBeUndefined();
    const stored = await t.registry.get(res.body.client_id);
    expect(stored?.smart_client_kind).toBe('backend_service');
    expect((await t.registry.list()).map((c) => c.client_id)).toContain(res.body.client_id);
  });

  test.each([
    [{ smart_client_kind: 'robot' }, /smart_client_kind/],
    [{ smart_client_kind: 'backend_service', smart_scopes: ['patient/*.rs'], jwks_uri: 'https://backend.example.org/jwks' }, /system\//],
    [
      { smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs'], jwks_uri: 'https://example.org/jwks', jwks: { keys: [] } },
      /jwks/,
    ],
    [{ smart_client_kind: 'resource_server', fhir_servers: ['https://other.example.org/fhir'] }, /fhir_servers/],
  ])('rejects %j with invalid_client_metadata and a precise description', async (body, pattern) => {
    const res = await t.request.post('/register').set('Authorization', `Bearer ${iat}`).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toMatch(pattern);
  });

  test('refuses private key material without echoing it', async () => {
    const { priv } = await publicJwk('ES384');
    const res = await t.request
      .post('/register')
      .set('Authorization', `Bearer ${iat}`)
      .send({ smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs'], jwks: { keys: [priv] } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(JSON.stringify(res.body)).not.toContain(priv.d as string);
  });

  test('a confidential client gets its secret once, it is stored hashed, and it authenticates', async () => {
    const res = await t.request
      .post('/register')
      .set('Authorization', `Bearer ${iat}`)
      .send({ client_name: 'EHR', smart_client_kind: 'ehr_launcher', smart_scopes: ['launch'] });
    expect(res.status).toBe(201);
    const { client_id: id, client_secret: secret, registration_access_token: rat, registration_client_uri: uri } = res.body;
    expect(secret).toEqual(expect.any(String));
    const raw = JSON.stringify(await t.redis.hgetall(t.keyspace.model('Client', id)));
    expect(raw).not.toContain(secret);
    expect(raw).toContain('sha256$');

    const token = await t.request.post('/token').auth(id, secret).type('form').send({ grant_type: 'client_credentials', scope: 'launch' });
    expect(token.status).toBe(200);
    const wrong = await t.request
      .post('/token')
      .auth(id, `${secret}x`)
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'launch' });
    expect(wrong.status).toBe(401);

    // RFC 7592 read never hands out the stored hash.
    const path = new URL(uri).pathname;
    const read = await t.request.get(path).set('Authorization', `Bearer ${rat}`);
    expect(read.status).toBe(200);
    expect(read.body.client_id).toBe(id);
    expect(JSON.stringify(read.body)).not.toContain('sha256$');

    const del = await t.request.delete(path).set('Authorization', `Bearer ${rat}`);
    expect(del.status).toBe(204);
    expect(await t.registry.get(id)).toBeUndefined();
  });

  test('RFC 7592 update validates the same way', async () => {
    const res = await t.request.post('/register').set('Authorization', `Bearer ${iat}`).send({ smart_client_kind: 'resource_server' });
    expect(res.status).toBe(201);
    const path = new URL(res.body.registration_client_uri).pathname;
    const {
      registration_access_token: rat,
      registration_client_uri: _u,
      client_secret_expires_at: _e,
      client_id_issued_at: _i,
      ...metadata
    } = res.body;
    const bad = await t.request
      .put(path)
      .set('Authorization', `Bearer ${rat}`)
      .send({ ...metadata, fhir_servers: ['https://elsewhere.example/fhir'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_client_metadata');
    const good = await t.request
      .put(path)
      .set('Authorization', `Bearer ${rat}`)
      .send({ ...metadata, client_name: 'Renamed FHIR server' });
    expect(good.status).toBe(200);
    expect(good.body.client_name).toBe('Renamed FHIR server');
  });
});
