import { createTestApp, type TestApp } from '../../support/test-app.js';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({
    AUTHZ_ISSUER: 'http://localhost:3000',
    AUTHZ_FHIR_SERVERS: 'http://localhost:3000/fhir/r4,east=https://east.example.org/fhir/',
  });
});
afterAll(() => t.close());

describe('SMART discovery', () => {
  const paths = ['/.well-known/smart-configuration', '/east/.well-known/smart-configuration', '/fhir/r4/.well-known/smart-configuration'];

  test.each(paths)('%s is JSON whatever the Accept header', async (path) => {
    for (const accept of [undefined, 'text/html', 'application/fhir+json', '*/*']) {
      const req = t.request.get(path);
      if (accept) req.set('Accept', accept);
      const res = await req;
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
    }
  });

  test('advertises absolute endpoints, S256 only and the implemented capabilities', async () => {
    const res = await t.request.get('/.well-known/smart-configuration');
    const doc = res.body as Record<string, unknown>;
    expect(doc.code_challenge_methods_supported).toEqual(['S256']);
    for (const [name, value] of Object.entries(doc)) {
      if (name.endsWith('_endpoint') || name === 'jwks_uri') expect(String(value)).toMatch(/^http:\/\/localhost:3000\//);
    }
    expect(doc.token_endpoint).toBe('http://localhost:3000/token');
    expect(doc.introspection_endpoint).toBe('http://localhost:3000/introspect');
    expect(doc.revocation_endpoint).toBe('http://localhost:3000/revoke');
    expect(doc.jwks_uri).toBe('http://localhost:3000/.well-known/jwks.json');
    expect(doc.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'client_credentials']);
    expect(doc.response_types_supported).toEqual(['code']);
    expect(doc.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'client_secret_post', 'private_key_jwt']);
    expect(doc.token_endpoint_auth_signing_alg_values_supported).toEqual(['RS384', 'ES384']);
    expect(Array.isArray(doc.capabilities)).toBe(true);
    expect((doc.capabilities as unknown[]).every((c) => typeof c === 'string')).toBe(true);
    // Each one is backed by the tests of its feature (test/launch, test/smart-interactions).
    expect(doc.capabilities).toEqual([
      'launch-ehr',
      'launch-standalone',
      'authorize-post',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'sso-openid-connect',
      'context-banner',
      'context-style',
      'context-ehr-patient',
      'context-ehr-encounter',
      'context-standalone-patient',
      'context-standalone-encounter',
      'permission-offline',
      'permission-online',
      'permission-patient',
      'permission-user',
      'permission-v1',
      'permission-v2',
    ]);
    expect(doc.capabilities).not.toContain('smart-app-state');
    expect(doc.management_endpoint).toBe('http://localhost:3000/manage');
    expect(doc.scopes_supported).toEqual(
      expect.arrayContaining([
        'openid',
        'fhirUser',
        'launch',
        'launch/patient',
        'offline_access',
        'online_access',
        'patient/*.rs',
        'user/*.rs',
        'system/*.rs',
        'patient/*.read',
      ]),
    );
    // sso-openid-connect needs the issuer and its keys
    expect(doc.issuer).toBe('http://localhost:3000');
  });

  test('tenant documents name their tenant', async () => {
    const res = await t.request.get('/east/.well-known/smart-configuration');
    expect(res.body.tenant).toBe('east');
  });

  test('CORS is open to any origin, including preflight', async () => {
    const res = await t.request.get('/.well-known/smart-configuration').set('Origin', 'https://app.example.net');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const pre = await t.request
      .options('/.well-known/smart-configuration')
      .set('Origin', 'https://app.example.net')
      .set('Access-Control-Request-Method', 'GET');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
  });

  test('OpenID configuration matches live configuration', async () => {
    const res = await t.request.get('/.well-known/openid-configuration').set('Origin', 'https://app.example.net');
    expect(res.status).toBe(200);
    expect(res.body.issuer).toBe('http://localhost:3000');
    expect(res.body.code_challenge_methods_supported).toEqual(['S256']);
    expect(res.body.response_types_supported).toEqual(['code']);
    expect(res.body.registration_endpoint).toMatch(/\/register$/);
    expect(res.body.introspection_endpoint).toMatch(/\/introspect$/);
    expect(res.body.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS384', 'ES384']));
    expect(res.headers['access-control-allow-origin']).toBeDefined();
  });

  test('JWKS publishes an RSA and an EC P-384 key with unique kids and no private parts', async () => {
    const res = await t.request.get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    const keys = res.body.keys as Array<Record<string, string>>;
    expect(keys.map((k) => k.kty).sort()).toEqual(['EC', 'RSA']);
    expect(keys.find((k) => k.kty === 'EC')!.crv).toBe('P-384');
    expect(new Set(keys.map((k) => k.kid)).size).toBe(keys.length);
    for (const k of keys) for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(k[p]).toBeUndefined();
  });
});
