import Provider from 'oidc-provider';
import supertest from 'supertest';
import { wrapClientAdapter } from '../../../src/oauth/clients/client-adapter.js';
import { hashClientSecret, isHashedClientSecret, verifyClientSecret } from '../../../src/oauth/clients/secrets.js';
import { smartRegistrationPolicy } from '../../../src/oauth/clients/registration-http.js';
import { DEFAULT_REGISTRATION_CEILING } from '../../../src/oauth/clients/registration-policy.js';
import { RegistrationTokens, SMART_REGISTRATION_POLICY } from '../../../src/oauth/clients/registration-tokens.js';
import { createHarness, FHIR_BASE, JsonRedisAdapter, providerConfig, type Harness } from './support.js';

/**
 * RFC 7591 registration through a real provider: the same SMART validator applies, and the
 * plaintext secret handed back to the registrant never reaches Redis.
 */

let h: Harness;
let provider: Provider;
let request: ReturnType<typeof supertest>;
let tokens: RegistrationTokens;

beforeAll(async () => {
  h = await createHarness();
  tokens = new RegistrationTokens(h.redis, h.keyspace);
  const policy = smartRegistrationPolicy({ tokens });
  provider = new Provider(
    'http://localhost:3000',
    providerConfig(h.redis, h.keyspace, undefined, {
      features: {
        registration: {
          enabled: true,
          initialAccessToken: true,
          policies: { [SMART_REGISTRATION_POLICY]: (ctx, properties) => policy(ctx, properties as Record<string, unknown>) },
        },
        registrationManagement: { enabled: true },
      },
    }),
  );
  // What the application does: stored secrets are hashes.
  provider.Client.prototype.compareClientSecret = function (this: { clientSecret?: string }, actual: string) {
    return Promise.resolve(verifyClientSecret(this.clientSecret, actual));
  };
  request = supertest(provider.callback());
});

afterAll(async () => {
  await h.close();
});

/** What `smart-authz registration token` mints by default: one app registration. */
async function initialAccessToken(): Promise<string> {
  return (await tokens.issue(provider, { ...DEFAULT_REGISTRATION_CEILING, uses: 1, expiresIn: 600 })).token;
}

const symmetric = {
  smart_client_kind: 'confidential_symmetric',
  redirect_uris: ['https://app.example.org/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  smart_scopes: ['openid', 'fhirUser', 'patient/*.rs'],
  fhir_servers: [`${FHIR_BASE}/`],
};

test('the secret is returned once in plaintext and stored hashed; it authenticates the client', async () => {
  const res = await request
    .post('/reg')
    .set('Authorization', `Bearer ${await initialAccessToken()}`)
    .send(symmetric);
  expect(res.status).toBe(201);
  const { client_id: clientId, client_secret: secret } = res.body as { client_id: string; client_secret: string };
  expect(secret).toMatch(/^[A-Za-z0-9_-]{20,}$/);
  expect(res.body.fhir_servers).toEqual([FHIR_BASE]);

  const raw = (await h.redis.get(h.keyspace.model('Client', clientId)))!;
  expect(raw).not.toContain(secret);
  const stored = (JSON.parse(raw) as { client_secret: string }).client_secret;
  expect(stored).toBe(hashClientSecret(secret));

  const introspect = (password: string) =>
    request.post('/token/introspection').auth(clientId, password).type('form').send({ token: 'not-a-token' });
  const ok = await introspect(secret);
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual({ active: false });
  expect((await introspect(stored)).status).toBe(401);
  expect((await introspect(`${secret}x`)).status).toBe(401);
});

test('registration is refused with the validator message', async () => {
  const res = await request
    .post('/reg')
    .set('Authorization', `Bearer ${await initialAccessToken()}`)
    .send({ ...symmetric, smart_scopes: ['patient/Observation.dus'] });
  expect(res.status).toBe(400);
  expect(res.body).toEqual({
    error: 'invalid_client_metadata',
    error_description:
      'smart_scopes[0] "patient/Observation.dus" has permissions "dus"; use read, write or * (v1) or an in-order subset of cruds such as rs (v2)',
  });
});

test('the wrapped adapter hashes plaintext secrets on a copy and passes hashes through', async () => {
  const base = new JsonRedisAdapter('Client', h.redis, h.keyspace);
  const adapter = wrapClientAdapter(base);
  const payload = { client_id: 'wrapped', client_secret: 'plain-value' };
  await adapter.upsert('wrapped', payload);
  expect(payload.client_secret).toBe('plain-value');
  expect((await adapter.find('wrapped'))?.client_secret).toBe(hashClientSecret('plain-value'));

  const hashed = hashClientSecret('other');
  await adapter.upsert('wrapped', { client_id: 'wrapped', client_secret: hashed });
  const found = await base.find('wrapped');
  expect(found?.client_secret).toBe(hashed);
  expect(isHashedClientSecret(found?.client_secret)).toBe(true);

  await adapter.destroy('wrapped');
  expect(await base.find('wrapped')).toBeUndefined();
});
