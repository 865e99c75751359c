import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT, generateKeyPair } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import { registerEhrLauncher, registerResourceServer, registerSmartApp } from '../../support/fixtures.js';

const OPAQUE_BASE = 'http://localhost:8080/fhir';
const JWT_BASE = 'https://jwt.example.org/fhir';
const TOKEN_URL = 'http://localhost:3000/token';
const INTROSPECT_URL = 'http://localhost:3000/introspect';

let t: TestApp;
let second: TestApp;

/** Whether a refresh token could still be used (resource servers may not introspect an app's refresh tokens). */
async function refreshTokenLive(value: string): Promise<boolean> {
  const rt = await t.app.RefreshToken.find(value);
  return Boolean(rt && !rt.consumed && !rt.isExpired);
}
let backend: BackendKey;
let rsKey: BackendKey;

function configFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'introspect-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ fhirServers: [{ base: OPAQUE_BASE }, { base: JWT_BASE, accessTokenFormat: 'jwt' }] }));
  return file;
}

async function backendToken(resource: string, scope = 'system/*.rs'): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(backend, 'bulk', TOKEN_URL), { resource, scope });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

function introspectBasic(app: TestApp, token: string, id = 'rs-opaque', secret = 'rs-opaque-secret', extra: Record<string, string> = {}) {
  return app.request
    .post('/introspect')
    .set('Authorization', basic(id, secret))
    .type('form')
    .send({ token, ...extra });
}

async function introspectJwtAuth(app: TestApp, token: string) {
  return app.request
    .post('/introspect')
    .type('form')
    .send({
      token,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await signAssertion(rsKey, 'rs-jwt', TOKEN_URL),
    });
}

/** User tokens as the code exchange would mint them (the login flows arrive with the users issue). */
async function userTokens(app: TestApp, clientId: string) {
  const client = (await app.app.Client.find(clientId))!;
  const grant = new app.app.Grant({ accountId: 'user-1', clientId });
  grant.addOIDCScope('openid fhirUser launch offline_access');
  grant.addResourceScope(OPAQUE_BASE, 'patient/*.rs');
  const grantId = await grant.save();
  const at = new app.app.AccessToken({
    accountId: 'user-1',
    client,
    grantId,
    scope: 'patient/*.rs',
    aud: OPAQUE_BASE,
    gty: 'authorization_code',
  });
  const accessToken = await at.save();
  // What extraTokenClaims stores for a launch (the SMART launch issue fills it from the launch
  // context); written the way oidc-provider persists it.
  const key = app.keyspace.model('AccessToken', accessToken);
  const payload = JSON.parse((await app.redis.hget(key, 'payload'))!);
  payload.extra = { patient: 'pat-1', encounter: 'enc-9', fhirContext: [{ reference: 'Encounter/enc-9' }], fhirUser: 'Practitioner/dr-1' };
  await app.redis.hset(key, 'payload', JSON.stringify(payload));
  const rt = new app.app.RefreshToken({
    accountId: 'user-1',
    client,
    grantId,
    scope: 'openid offline_access patient/*.rs',
    resource: OPAQUE_BASE,
    gty: 'authorization_code',
  });
  const refreshToken = await rt.save();
  return { grantId, accessToken, refreshToken };
}

beforeAll(async () => {
  const AUTHZ_CONFIG = configFile();
  t = await createTestApp({ AUTHZ_CONFIG, AUTHZ_FHIR_SERVERS: '' });
  second = await createTestApp({ AUTHZ_CONFIG, AUTHZ_FHIR_SERVERS: '' }, { prefix: t.config.redis.prefix });
  backend = await backendKey('RS384');
  rsKey = await backendKey('ES384');
  await registerBackend(t, 'bulk', [backend]);
  await registerResourceServer(t, { id: 'rs-opaque', secret: 'rs-opaque-secret' }, { fhir_servers: [OPAQUE_BASE] });
  await t.registry.upsert({
    client_id: 'rs-jwt',
    smart_client_kind: 'resource_server',
    jwks: { keys: [rsKey.publicJwk] },
    fhir_servers: [JWT_BASE],
  });
  await registerEhrLauncher(t, { id: 'ehr', secret: 'ehr-secret' });
  await registerSmartApp(t, {
    id: 'app',
    redirectUri: 'https://app.example.org/cb',
    scopes: ['openid', 'fhirUser', 'launch', 'offline_access', 'patient/*.rs'],
  });
});
afterAll(async () => {
  await t.close();
  await second.close();
});

describe('introspection: authentication of the caller', () => {
  test('no authentication → 401 invalid_client', async () => {
    const res = await t.request
      .post('/introspect')
      .type('form')
      .send({ token: 'x'.repeat(43) });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(res.headers['www-authenticate']).toMatch(/^Basic/);
  });

  test('a wrong secret → 401', async () => {
    const res = await introspectBasic(t, await backendToken(OPAQUE_BASE), 'rs-opaque', 'wrong');
    expect(res.status).toBe(401);
  });

  test('a client that is not a resource server → 403 unauthorized_client', async () => {
    const res = await introspectBasic(t, await backendToken(OPAQUE_BASE), 'ehr', 'ehr-secret');
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('unauthorized_client');
  });

  test('a replayed private_key_jwt assertion is refused', async () => {
    const token = await backendToken(JWT_BASE);
    const assertion = await signAssertion(rsKey, 'rs-jwt', INTROSPECT_URL);
    const send = () =>
      t.request
        .post('/introspect')
        .type('form')
        .send({ token, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    expect((await send()).status).toBe(200);
    const again = await send();
    expect(again.status).toBe(401);
    expect(again.body.error_description).toMatch(/client assertion tokens must only be used once/);
  });

  test('repeated parameters are invalid_request', async () => {
    const res = await t.request
      .post('/introspect')
      .set('Authorization', basic('rs-opaque', 'rs-opaque-secret'))
      .type('form')
      .send('token=a&token=b');
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });
});

describe('introspection of each token kind', () => {
  test('an opaque client-credentials token, by client_secret_basic', async () => {
    const token = await backendToken(OPAQUE_BASE);
    const res = await introspectBasic(t, token);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      active: true,
      scope: 'system/*.rs',
      client_id: 'bulk',
      sub: 'bulk',
      iss: 'http://localhost:3000',
      aud: OPAQUE_BASE,
      token_type: 'Bearer',
      exp: expect.any(Number),
      iat: expect.any(Number),
      // No purpose or subject asserted: only the ceiling a resource server must enforce (hcs/).
      extensions: {
        smart_authz_hcs: {
          confidentiality: { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N', display: 'normal' },
          obligations: [],
        },
      },
    });
    expect(res.body.exp - res.body.iat).toBeLessThanOrEqual(300);
  });

  test('a JWT (RFC 9068) access token, by private_key_jwt; revocable', async () => {
    const token = await backendToken(JWT_BASE);
    expect(token.split('.')).toHaveLength(3);
    const claims = decodeJwt(token);
    expect(claims.aud).toBe(JWT_BASE);
    const res = await introspectJwtAuth(t, token);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      active: true,
      client_id: 'bulk',
      scope: 'system/*.rs',
      aud: JWT_BASE,
      iss: 'http://localhost:3000',
      token_type: 'Bearer',
    });

    const revoke = await t.request
      .post('/revoke')
      .type('form')
      .send({
        token,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await signAssertion(backend, 'bulk', TOKEN_URL),
      });
    expect(revoke.status).toBe(200);
    expect((await introspectJwtAuth(second, token)).body).toEqual({ active: false });
  });

  test('a user access token carries the launch context and fhirUser', async () => {
    const { accessToken } = await userTokens(t, 'app');
    const res = await introspectBasic(t, accessToken);
    expect(res.body).toMatchObject({
      active: true,
      sub: 'user-1',
      client_id: 'app',
      scope: 'patient/*.rs',
      patient: 'pat-1',
      encounter: 'enc-9',
      fhirContext: [{ reference: 'Encounter/enc-9' }],
      fhirUser: 'Practitioner/dr-1',
      token_type: 'Bearer',
    });
  });

  test("a refresh token: a resource server learns nothing about an app's (test/security/api-token-binding.test.ts has the owner's case)", async () => {
    const { refreshToken } = await userTokens(t, 'app');
    const res = await introspectBasic(t, refreshToken, undefined, undefined, { token_type_hint: 'refresh_token' });
    expect(res.body).toEqual({ active: false });
  });

  test('a resource server only sees tokens for the FHIR servers it serves', async () => {
    const jwtToken = await backendToken(JWT_BASE);
    expect((await introspectBasic(t, jwtToken)).body).toEqual({ active: false });
    const opaque = await backendToken(OPAQUE_BASE);
    expect((await introspectJwtAuth(t, opaque)).body).toEqual({ active: false });
  });

  test.each([
    ['unknown', 'A'.repeat(43)],
    ['malformed', 'not a token at all!'],
    ['empty-ish', '...'],
    ['a JWT from someone else', 'FOREIGN'],
  ])('%s tokens answer 200 {"active": false}', async (_name, value) => {
    let token = value;
    if (value === 'FOREIGN') {
      const { privateKey } = await generateKeyPair('RS256');
      token = await new SignJWT({ jti: 'x', client_id: 'bulk', scope: 'system/*.rs' })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
        .setIssuer('http://localhost:3000')
        .setAudience(OPAQUE_BASE)
        .setExpirationTime('5m')
        .sign(privateKey);
    }
    const res = await introspectBasic(t, token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ active: false });
  });

  test('an expired token is inactive', async () => {
    const token = await backendToken(OPAQUE_BASE);
    const key = t.keyspace.model('ClientCredentials', token);
    const payload = JSON.parse((await t.redis.hget(key, 'payload'))!);
    await t.redis.hset(key, 'payload', JSON.stringify({ ...payload, exp: Math.floor(Date.now() / 1000) - 1 }));
    expect((await introspectBasic(t, token)).body).toEqual({ active: false });
  });

  test('signed JWT response (RFC 9701) when asked for', async () => {
    const token = await backendToken(OPAQUE_BASE);
    const res = await introspectBasic(t, token).set('Accept', 'application/token-introspection+jwt');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/token-introspection\+jwt/);
    const jwks = (await t.request.get('/.well-known/jwks.json')).body;
    const { payload, protectedHeader } = await jwtVerify(res.text, createLocalJWKSet(jwks), {
      issuer: 'http://localhost:3000',
      audience: 'rs-opaque',
    });
    expect(protectedHeader.typ).toBe('token-introspection+jwt');
    expect((payload.token_introspection as { active: boolean; client_id: string }).client_id).toBe('bulk');
  });
});

describe('revocation (RFC 7009)', () => {
  const ehrAuth = basic('ehr', 'ehr-secret');

  test('revoking an access token makes it inactive at once on another instance', async () => {
    const login = await t.request
      .post('/token')
      .set('Authorization', ehrAuth)
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'launch', resource: OPAQUE_BASE });
    expect(login.status).toBe(200);
    const token = login.body.access_token as string;
    expect((await introspectBasic(second, token)).body.active).toBe(true);
    const res = await t.request
      .post('/revoke')
      .set('Authorization', ehrAuth)
      .type('form')
      .send({ token, token_type_hint: 'refresh_token' });
    expect(res.status).toBe(200);
    expect((await introspectBasic(second, token)).body).toEqual({ active: false });
  });

  test('revoking a refresh token ends the whole grant', async () => {
    const { accessToken, refreshToken } = await userTokens(t, 'app');
    const res = await t.request.post('/revoke').type('form').send({ token: refreshToken, client_id: 'app' });
    expect(res.status).toBe(200);
    expect(await refreshTokenLive(refreshToken)).toBe(false);
    expect((await introspectBasic(second, accessToken)).body).toEqual({ active: false });
  });

  test('revoking an access token leaves the grant and its refresh token', async () => {
    const { accessToken, refreshToken } = await userTokens(t, 'app');
    expect((await t.request.post('/revoke').type('form').send({ token: accessToken, client_id: 'app' })).status).toBe(200);
    expect((await introspectBasic(second, accessToken)).body).toEqual({ active: false });
    expect(await refreshTokenLive(refreshToken)).toBe(true);
  });

  test('unknown tokens revoke successfully; other clients cannot revoke your token', async () => {
    expect(
      (
        await t.request
          .post('/revoke')
          .set('Authorization', ehrAuth)
          .type('form')
          .send({ token: 'B'.repeat(43) })
      ).status,
    ).toBe(200);
    const token = await backendToken(OPAQUE_BASE);
    const res = await t.request.post('/revoke').set('Authorization', ehrAuth).type('form').send({ token });
    expect(res.status).toBe(400);
    expect((await introspectBasic(t, token)).body.active).toBe(true);
  });

  test('revocation needs client authentication unless the client is public', async () => {
    const res = await t.request
      .post('/revoke')
      .type('form')
      .send({ token: 'C'.repeat(43), client_id: 'ehr' });
    expect(res.status).toBe(401);
  });
});

describe('JWT access token markers', () => {
  test('revoking a grant removes the markers of its JWT access tokens', async () => {
    const { redisAdapterFactory } = await import('../../../src/platform/storage/redis-adapter.js');
    const adapters = redisAdapterFactory(t.redis, t.keyspace);
    const markers = adapters('JwtAccessToken');
    await markers.upsert('jti-in-grant', { jti: 'jti-in-grant', grantId: 'grant-x', kind: 'AccessToken', clientId: 'app' }, 300);
    await markers.upsert('jti-elsewhere', { jti: 'jti-elsewhere', grantId: 'grant-y', kind: 'AccessToken', clientId: 'app' }, 300);
    await adapters('AccessToken').revokeByGrantId('grant-x');
    expect(await markers.find('jti-in-grant')).toBeUndefined();
    expect(await markers.find('jti-elsewhere')).toBeDefined();
  });
});

describe('introspection with a bearer token carrying the introspect permission', () => {
  let gatewayKey: BackendKey;
  beforeAll(async () => {
    gatewayKey = await backendKey('ES384');
    await t.registry.upsert({
      client_id: 'gateway',
      smart_client_kind: 'backend_service',
      jwks: { keys: [gatewayKey.publicJwk] },
      smart_scopes: ['introspect', 'system/*.rs'],
      fhir_servers: [OPAQUE_BASE],
    });
  });

  async function gatewayToken(scope: string): Promise<string> {
    const res = await tokenRequest(t, await signAssertion(gatewayKey, 'gateway', TOKEN_URL), { scope });
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  }

  test('a token with the introspect scope may introspect tokens for its FHIR servers', async () => {
    const bearer = await gatewayToken('introspect');
    const token = await backendToken(OPAQUE_BASE);
    const res = await t.request.post('/introspect').set('Authorization', `Bearer ${bearer}`).type('form').send({ token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: 'bulk' });
    const foreign = await backendToken(JWT_BASE);
    expect(
      (await t.request.post('/introspect').set('Authorization', `Bearer ${bearer}`).type('form').send({ token: foreign })).body,
    ).toEqual({ active: false });
  });

  test('without the scope → 403; an unknown bearer → 401', async () => {
    const bearer = await gatewayToken('system/*.rs');
    const token = await backendToken(OPAQUE_BASE);
    const res = await t.request.post('/introspect').set('Authorization', `Bearer ${bearer}`).type('form').send({ token });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('insufficient_scope');
    const unknown = await t.request
      .post('/introspect')
      .set('Authorization', `Bearer ${'Z'.repeat(43)}`)
      .type('form')
      .send({ token });
    expect(unknown.status).toBe(401);
    expect(unknown.headers['www-authenticate']).toMatch(/^Bearer/);
  });
});
