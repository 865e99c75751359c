import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, base64url } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';

let t: TestApp;
let rsa: BackendKey;
let ec: BackendKey;
const TOKEN_URL = 'http://localhost:3000/token';

beforeAll(async () => {
  t = await createTestApp();
  rsa = await backendKey('RS384');
  ec = await backendKey('ES384');
  await registerBackend(t, 'bulk-rsa', [rsa]);
  await registerBackend(t, 'bulk-ec', [ec]);
});
afterAll(() => t.close());

describe('SMART Backend Services: client_credentials with private_key_jwt', () => {
  test.each([
    ['RS384', 'bulk-rsa', () => rsa],
    ['ES384', 'bulk-ec', () => ec],
  ])('a good %s assertion with an inline JWKS gets a short-lived system token without refresh token', async (_alg, clientId, key) => {
    const res = await tokenRequest(t, await signAssertion(key(), clientId, TOKEN_URL));
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toContain('no-store');
    expect(res.body.token_type).toBe('Bearer');
    expect(res.body.expires_in).toBeLessThanOrEqual(300);
    expect(res.body.scope).toBe('system/*.rs');
    expect(res.body.refresh_token).toBeUndefined();
    expect(typeof res.body.access_token).toBe('string');
  });

  test('exp exactly now + 300 s is accepted', async () => {
    const now = Math.floor(Date.now() / 1000);
    const res = await tokenRequest(t, await signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { exp: now + 300 }));
    expect(res.status).toBe(200);
  });

  const refusals: Array<[string, () => Promise<string>, RegExp]> = [
    [
      'a disallowed algorithm (RS256)',
      async () => signAssertion({ ...rsa, alg: 'RS256' }, 'bulk-rsa', TOKEN_URL, { alg: 'RS256' }),
      /signing algorithm is not allowed/,
    ],
    [
      'alg none',
      async () => {
        const enc = (o: object) => base64url.encode(JSON.stringify(o));
        const now = Math.floor(Date.now() / 1000);
        return `${enc({ alg: 'none', kid: rsa.kid })}.${enc({ iss: 'bulk-rsa', sub: 'bulk-rsa', aud: TOKEN_URL, exp: now + 60, jti: 'x1' })}.`;
      },
      /signing algorithm is not allowed/,
    ],
    [
      'HS256 signed with the public key',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ iss: 'bulk-rsa', sub: 'bulk-rsa', aud: TOKEN_URL, exp: now + 60, jti: 'hs1' })
          .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
          .sign(new TextEncoder().encode(JSON.stringify(rsa.publicJwk)));
      },
      /signing algorithm is not allowed/,
    ],
    [
      'a bad signature',
      async () => {
        const good = await signAssertion(rsa, 'bulk-rsa', TOKEN_URL);
        const [h, p, s] = good.split('.');
        return `${h}.${p}.${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
      },
      /signature is invalid|signature/,
    ],
    [
      'an expired assertion',
      async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { exp: Math.floor(Date.now() / 1000) - 120 }),
      /expired|exp/,
    ],
    [
      'exp too far ahead',
      async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { exp: Math.floor(Date.now() / 1000) + 400 }),
      /exp must be at most 5 minutes in the future/,
    ],
    ['missing exp', async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { exp: null }), /expiration must be specified/],
    ['missing jti', async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { jti: null }), /jti/],
    ['wrong aud', async () => signAssertion(rsa, 'bulk-rsa', 'https://elsewhere.example.org/token'), /aud/],
    [
      'aud = the introspection endpoint at the token endpoint',
      async () => signAssertion(rsa, 'bulk-rsa', 'http://localhost:3000/introspect'),
      /aud/,
    ],
    ['iss different from sub', async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { sub: 'someone-else' }), /sub must equal iss/],
    ['an unknown kid', async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { kid: 'not-a-registered-kid' }), /no key|kid/],
    ['a missing kid', async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { kid: null }), /kid/],
    [
      'a key not in the client set',
      async () => signAssertion(await backendKey('RS384'), 'bulk-rsa', TOKEN_URL, { kid: rsa.kid }),
      /signature/,
    ],
    [
      'jku not allow-listed',
      async () => signAssertion(rsa, 'bulk-rsa', TOKEN_URL, { header: { jku: 'https://attacker.example/jwks' } }),
      /jku/,
    ],
  ];

  test.each(refusals)('refuses %s with 401 invalid_client naming the rule', async (_name, make, pattern) => {
    const res = await tokenRequest(t, await make());
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(res.body.error_description).toMatch(pattern);
    expect(JSON.stringify(res.body)).not.toMatch(/"d"|"n":|BEGIN/);
  });

  test('an unknown client is refused', async () => {
    const res = await tokenRequest(t, await signAssertion(rsa, 'nobody', TOKEN_URL));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  test('a replayed jti is refused, also when two requests race', async () => {
    const assertion = await signAssertion(ec, 'bulk-ec', TOKEN_URL);
    expect((await tokenRequest(t, assertion)).status).toBe(200);
    const again = await tokenRequest(t, assertion);
    expect(again.status).toBe(401);
    expect(again.body.error_description).toMatch(/client assertion tokens must only be used once/);

    const racing = await signAssertion(ec, 'bulk-ec', TOKEN_URL);
    const results = await Promise.all(Array.from({ length: 8 }, () => tokenRequest(t, racing)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
  });

  test('a replayed jti is refused by a second instance sharing Redis', async () => {
    const other = await createTestApp({}, { prefix: t.config.redis.prefix });
    try {
      const assertion = await signAssertion(rsa, 'bulk-rsa', TOKEN_URL);
      const [a, b] = await Promise.all([tokenRequest(t, assertion), tokenRequest(other, assertion)]);
      expect([a.status, b.status].sort()).toEqual([200, 401]);
    } finally {
      await other.close();
    }
  });

  test('a jku equal to a registered allow-listed URL is accepted', async () => {
    const key = await backendKey('ES384');
    await registerBackend(t, 'bulk-jku', [key], { jku_allowlist: ['https://bulk.example.org/.well-known/jwks.json'] });
    const res = await tokenRequest(
      t,
      await signAssertion(key, 'bulk-jku', TOKEN_URL, { header: { jku: 'https://bulk.example.org/.well-known/jwks.json' } }),
    );
    expect(res.status).toBe(200);
  });
});

describe('backend scope downscoping', () => {
  let key: BackendKey;
  beforeAll(async () => {
    key = await backendKey('ES384');
    await registerBackend(t, 'bulk-narrow', [key], { smart_scopes: ['system/Observation.rs', 'system/Patient.r'] });
  });

  test.each([
    ['system/Observation.rs', 'system/Observation.rs'],
    ['system/Observation.cruds', 'system/Observation.rs'],
    ['system/*.read', 'system/Observation.read system/Patient.r'],
    ['system/Observation.read system/Encounter.read', 'system/Observation.read'],
    ['system/Observation.rs?category=laboratory', 'system/Observation.rs?category=laboratory'],
    ['patient/Observation.rs system/Patient.rs', 'system/Patient.r'],
  ])('asking %s grants %s', async (requested, granted) => {
    const res = await tokenRequest(t, await signAssertion(key, 'bulk-narrow', TOKEN_URL), { scope: requested });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe(granted);
  });

  test.each([['system/Encounter.rs'], ['patient/*.rs'], ['openid'], ['']])('asking only %j is invalid_scope', async (requested) => {
    const res = await tokenRequest(t, await signAssertion(key, 'bulk-narrow', TOKEN_URL), { scope: requested });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
  });
});

describe('backend services with a jwks_uri', () => {
  let server: Server;
  let jwksUrl: string;
  let served: BackendKey[];
  let hits = 0;

  beforeAll(async () => {
    served = [await backendKey('RS384'), await backendKey('ES384')];
    server = createServer((_req, res) => {
      hits += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' });
      res.end(JSON.stringify({ keys: served.map((k) => k.publicJwk) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    jwksUrl = `http://127.0.0.1:${port}/jwks.json`;
    await t.registry.upsert({
      client_id: 'bulk-uri',
      smart_client_kind: 'backend_service',
      jwks_uri: jwksUrl,
      smart_scopes: ['system/*.rs'],
    });
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test.each([0, 1])('key %i (RS384, ES384) from the jwks_uri authenticates', async (i) => {
    const res = await tokenRequest(t, await signAssertion(served[i]!, 'bulk-uri', TOKEN_URL));
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/*.rs');
  });

  test('the key set is fetched once and then served from cache', async () => {
    const before = hits;
    for (let i = 0; i < 3; i += 1) expect((await tokenRequest(t, await signAssertion(served[0]!, 'bulk-uri', TOKEN_URL))).status).toBe(200);
    expect(hits - before).toBe(0);
  });

  test('a kid that is not in the served set is refused', async () => {
    const res = await tokenRequest(t, await signAssertion(await backendKey('ES384'), 'bulk-uri', TOKEN_URL));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });
});
