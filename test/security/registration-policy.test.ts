import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { cliLines as cli } from '../support/cli.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { SMART_REGISTRATION_POLICY } from '../../src/oauth/clients/registration-tokens.js';

/**
 * Issue 14, item 1: an initial access token from `smart-authz registration token` registered
 * administrators (scim, introspect, the whole audit trail, every consent, system/ writes) again and
 * again for 24 h. Now a token carries its own policy (kinds, a scope ceiling, a use count), and
 * administrative scopes are never obtainable through RFC 7591 nor raisable through RFC 7592.
 * Tokens here come from the CLI itself; the app under test shares its Redis prefix, and `t2` is a
 * second app instance on the same data (two server nodes).
 */

let t: TestApp;
let t2: TestApp;
const env = {
  REDIS_URL: process.env.REDIS_URL!,
  AUTHZ_REDIS_PREFIX: `reg-${randomUUID().slice(0, 8)}:`,
  AUTHZ_LOG_LEVEL: 'silent',
  AUTHZ_FHIR_SERVERS: 'http://localhost:8080/fhir',
};
const saved = { ...process.env };

beforeAll(async () => {
  Object.assign(process.env, env);
  t = await createTestApp({}, { prefix: env.AUTHZ_REDIS_PREFIX });
  t2 = await createTestApp({}, { prefix: env.AUTHZ_REDIS_PREFIX });
});
afterAll(async () => {
  process.env = saved;
  await t.close();
  await t2.close();
});

/** Mints a token the way an operator does; returns it and what the CLI printed. */
async function mint(...flags: string[]): Promise<{ token: string; printed: string }> {
  const lines = await cli('registration', 'token', ...flags);
  return { token: lines[0]!, printed: lines.join('\n') };
}

async function publicJwks() {
  const { publicKey } = await generateKeyPair('ES384', { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { keys: [{ ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES384', use: 'sig' }] };
}

const register = (token: string, body: object, app: TestApp = t) =>
  app.request.post('/register').set('Authorization', `Bearer ${token}`).send(body);

const app = (scopes: string[] = ['openid', 'fhirUser', 'launch', 'patient/*.rs']) => ({
  client_name: 'Growth chart',
  smart_client_kind: 'confidential_symmetric',
  redirect_uris: ['https://app.example.org/callback'],
  smart_scopes: scopes,
});

const ADMIN_SCOPES = ['scim', 'introspect', 'system/AuditEvent.rs', 'system/Consent.cruds', 'system/*.cruds'];

describe('the attack: registering an administrator with an initial access token', () => {
  test('a token from the CLI registers no backend_service with administrative scopes, and the refusal names the rule', async () => {
    const { token } = await mint();
    const jwks = await publicJwks();
    const all = await register(token, { client_name: 'attacker', smart_client_kind: 'backend_service', smart_scopes: ADMIN_SCOPES, jwks });
    expect(all.status).toBe(400);
    expect(all.body).toEqual({
      error: 'invalid_client_metadata',
      error_description: expect.stringMatching(/^scope 'scim' is administrative \(.+\) and cannot be registered dynamically/),
    });
    for (const scope of ADMIN_SCOPES) {
      const one = await register(token, { smart_client_kind: 'backend_service', smart_scopes: [scope], jwks });
      expect(one.status).toBe(400);
      expect(one.body.error).toBe('invalid_client_metadata');
      expect(one.body.error_description).toContain(`scope '${scope}' is administrative`);
    }
    expect((await t.registry.list()).filter((c) => c.smart_client_kind === 'backend_service')).toEqual([]);
  });

  test('v1 spellings and query-constrained writes are administrative too', async () => {
    const { token } = await mint('--kinds', 'backend_service', '--scopes', 'system/*.rs');
    const jwks = await publicJwks();
    for (const scope of [
      'system/*.write',
      'system/Patient.*',
      'system/Observation.c',
      'system/Patient.u?identifier=x',
      'system/AuditEvent.read',
      'system/Consent.s',
    ]) {
      const res = await register(token, { smart_client_kind: 'backend_service', smart_scopes: [scope], jwks });
      expect(res.status).toBe(400);
      expect(res.body.error_description).toContain(`scope '${scope}' is administrative`);
    }
  });

  test('the default token allows app kinds only; a backend service needs a token that names it, and still gets no admin scope', async () => {
    const jwks = await publicJwks();
    const { token } = await mint('--uses', '5');
    const backend = await register(token, { smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs'], jwks });
    expect(backend.status).toBe(400);
    expect(backend.body.error_description).toBe(
      "smart_client_kind 'backend_service' is not allowed by this initial access token (it allows public_app, confidential_symmetric, confidential_asymmetric)",
    );
    for (const kind of ['resource_server', 'ehr_launcher']) {
      const res = await register(token, { smart_client_kind: kind, ...(kind === 'ehr_launcher' ? { smart_scopes: ['launch'] } : {}) });
      expect(res.status).toBe(400);
      expect(res.body.error_description).toContain(`smart_client_kind '${kind}' is not allowed`);
    }

    const { token: bulk } = await mint('--kinds', 'backend_service', '--scopes', 'system/*.rs', '--uses', '2');
    const admin = await register(bulk, { smart_client_kind: 'backend_service', smart_scopes: ['system/*.rs', 'scim'], jwks });
    expect(admin.status).toBe(400);
    expect(admin.body.error_description).toContain("scope 'scim' is administrative");
    const ok = await register(bulk, { smart_client_kind: 'backend_service', smart_scopes: ['system/Observation.rs'], jwks });
    expect(ok.status).toBe(201);
    expect(ok.body.smart_scopes).toEqual(['system/Observation.rs']);
  });

  test('scopes outside the token ceiling are refused, naming the ceiling', async () => {
    const { token } = await mint('--kinds', 'public_app', '--scopes', 'openid launch patient/Observation.rs');
    const res = await register(token, {
      smart_client_kind: 'public_app',
      redirect_uris: ['https://app.example.org/cb'],
      smart_scopes: ['openid', 'patient/*.rs'],
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_client_metadata',
      error_description:
        "scope 'patient/*.rs' is not allowed by this initial access token (it allows scopes within: openid launch patient/Observation.rs)",
    });
  });

  test('even a token record that lists administrative scopes cannot register them', async () => {
    // A record written by hand (or by older code) is not trusted either: the rule holds whatever the policy says.
    const IAT = t.app.InitialAccessToken as unknown as new (p: object) => { save(): Promise<string>; jti: string };
    const iat = new IAT({ expiresIn: 600, policies: [SMART_REGISTRATION_POLICY] });
    const token = await iat.save();
    const key = `${env.AUTHZ_REDIS_PREFIX}registration-token:{${createHash('sha256').update(iat.jti).digest('base64url')}}`;
    await t.redis.hset(key, { kinds: 'backend_service', scopes: ADMIN_SCOPES.join(' '), uses: '5' });
    const res = await register(token, {
      smart_client_kind: 'backend_service',
      smart_scopes: ['system/AuditEvent.rs'],
      jwks: await publicJwks(),
    });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toContain("scope 'system/AuditEvent.rs' is administrative");
  });

  test('a token minted without the registration policy registers nothing', async () => {
    const IAT = t.app.InitialAccessToken as unknown as new (p: object) => { save(): Promise<string> };
    const bare = await new IAT({ expiresIn: 600 }).save();
    const res = await register(bare, app());
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toMatch(/not bound to a registration policy/);
    // A token with the policy name but no policy record (minted by older code) is refused as unusable.
    const orphan = await new IAT({ expiresIn: 600, policies: [SMART_REGISTRATION_POLICY] }).save();
    const refused = await register(orphan, app());
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');
  });
});

describe('use count and expiry', () => {
  test('a one-use token registers once; the second use is 401 invalid_token; a refused request costs no use', async () => {
    const { token } = await mint();
    const refused = await register(token, app(['openid', 'scim']));
    expect(refused.status).toBe(400);
    const first = await register(token, app());
    expect(first.status).toBe(201);
    const second = await register(token, app());
    expect(second.status).toBe(401);
    expect(second.body.error).toBe('invalid_token');
    expect(second.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
  });

  test('concurrent registrations with a one-use token across two instances: exactly one succeeds', async () => {
    const { token } = await mint();
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => register(token, app(), i % 2 ? t2 : t)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(11);
    for (const r of results.filter((x) => x.status === 401)) expect(r.body.error).toBe('invalid_token');
  });

  test('a three-use token: of ten concurrent registrations exactly three succeed', async () => {
    const { token } = await mint('--uses', '3');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => register(token, app(), i % 2 ? t2 : t)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    expect(results.filter((r) => r.status === 401)).toHaveLength(7);
  });

  test('an expired token is 401 invalid_token', async () => {
    const { token } = await mint('--expires-in', '1');
    await new Promise((r) => setTimeout(r, 1300));
    const res = await register(token, app());
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
  });
});

describe('RFC 7592 update cannot raise what the registering token allowed', () => {
  test('kind, scopes beyond the ceiling and admin scopes are refused; the ceiling in the body is ignored; narrowing works', async () => {
    const { token } = await mint('--kinds', 'public_app', '--scopes', 'openid launch patient/*.rs');
    const created = await register(token, {
      smart_client_kind: 'public_app',
      redirect_uris: ['https://app.example.org/cb'],
      smart_scopes: ['openid', 'patient/*.rs'],
    });
    expect(created.status).toBe(201);
    expect(created.body.smart_registration_ceiling).toBeUndefined();
    const {
      registration_access_token: firstRat,
      registration_client_uri: uri,
      client_id_issued_at: _i,
      client_secret_expires_at: _e,
      ...metadata
    } = created.body as Record<string, unknown>;
    const path = new URL(uri as string).pathname;
    let rat = firstRat as string;
    const put = async (body: object) => {
      const res = await t.request
        .put(path)
        .set('Authorization', `Bearer ${rat}`)
        .send({ ...metadata, ...body });
      if (res.status === 200) rat = res.body.registration_access_token as string;
      return res;
    };

    const wider = await put({ smart_scopes: ['openid', 'patient/*.cruds'] });
    expect(wider.status).toBe(400);
    expect(wider.body).toEqual({
      error: 'invalid_client_metadata',
      error_description:
        "scope 'patient/*.cruds' is not allowed by the initial access token this client was registered with (it allows scopes within: openid launch patient/*.rs)",
    });
    const admin = await put({ smart_scopes: ['openid', 'scim'] });
    expect(admin.status).toBe(400);
    expect(admin.body.error_description).toContain("scope 'scim' is administrative");
    const kind = await put({ smart_client_kind: 'confidential_symmetric', token_endpoint_auth_method: 'client_secret_basic' });
    expect(kind.status).toBe(400);
    expect(kind.body.error_description).toContain("smart_client_kind 'confidential_symmetric' is not allowed");
    const forged = await put({
      smart_registration_ceiling: { kinds: ['public_app'], scopes: ['patient/*.cruds'] },
      smart_scopes: ['patient/*.cruds'],
    });
    expect(forged.status).toBe(400);
    expect(forged.body.error_description).toContain("scope 'patient/*.cruds' is not allowed");

    const narrower = await put({ client_name: 'Renamed', smart_scopes: ['openid', 'patient/Observation.rs'] });
    expect(narrower.status).toBe(200);
    expect(narrower.body.smart_scopes).toEqual(['openid', 'patient/Observation.rs']);
    expect(narrower.body.smart_registration_ceiling).toBeUndefined();
    // Narrowing does not lower the ceiling: going back within it is allowed, and only within it.
    expect((await put({ smart_scopes: ['openid', 'patient/*.rs'] })).status).toBe(200);
    expect((await put({ smart_scopes: ['openid', 'patient/*.rs', 'system/*.rs'] })).status).toBe(400);
    const read = await t.request.get(path).set('Authorization', `Bearer ${rat}`);
    expect(read.status).toBe(200);
    expect(read.body.smart_registration_ceiling).toBeUndefined();
    expect((await t.registry.get(created.body.client_id as string))?.smart_scopes).toEqual(['openid', 'patient/*.rs']);
  });

  test('a client with no recorded ceiling keeps at most its own kind and non-administrative scopes', async () => {
    // E.g. registered before ceilings were recorded: it holds scim, which an update must drop.
    const jwks = await publicJwks();
    await t.registry.upsert({
      client_id: 'legacy-dyn',
      smart_client_kind: 'backend_service',
      smart_scopes: ['system/Observation.rs', 'scim'],
      jwks,
    });
    const RAT = t.app.RegistrationAccessToken as unknown as new (p: object) => { save(): Promise<string> };
    let rat = await new RAT({ clientId: 'legacy-dyn', policies: [SMART_REGISTRATION_POLICY] }).save();
    const stored = (await t.registry.get('legacy-dyn'))!;
    const { client_id_issued_at: _i, ...metadata } = stored;
    const put = (body: object) =>
      t.request
        .put('/register/legacy-dyn')
        .set('Authorization', `Bearer ${rat}`)
        .send({ ...metadata, ...body });
    const keep = await put({});
    expect(keep.status).toBe(400);
    expect(keep.body.error_description).toContain("scope 'scim' is administrative");
    const raise = await put({ smart_scopes: ['system/*.rs'] });
    expect(raise.status).toBe(400);
    expect(raise.body.error_description).toContain(
      "scope 'system/*.rs' is not allowed by the initial access token this client was registered with",
    );
    const drop = await put({ smart_scopes: ['system/Observation.rs'] });
    expect(drop.status).toBe(200);
    rat = drop.body.registration_access_token as string;
    expect((await t.registry.get('legacy-dyn'))?.smart_scopes).toEqual(['system/Observation.rs']);
  });
});

describe('operator-only metadata: emergency purposes of use and jku_allowlist', () => {
  test('an emergency purpose of use (ETREAT, BTG, ERTREAT) is refused, naming the rule, and costs no use', async () => {
    const { token } = await mint();
    for (const code of ['ETREAT', 'BTG', 'ERTREAT']) {
      const res = await register(token, { ...app(), purposes_of_use: ['TREAT', code] });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'invalid_client_metadata',
        error_description: `purposes_of_use[1] '${code}' is an emergency (break-the-glass) purpose of use and cannot be registered dynamically; only an operator can grant it (smart-authz clients --purpose or the clients file)`,
      });
    }
    const defaulted = await register(token, { ...app(), default_purposes_of_use: ['BTG'] });
    expect(defaulted.status).toBe(400);
    expect(defaulted.body.error).toBe('invalid_client_metadata');
    // Everyday purposes, and a test account (it only narrows), register with the same token.
    const ok = await register(token, {
      ...app(),
      client_name: `ok-${randomUUID().slice(0, 6)}`,
      purposes_of_use: ['TREAT', 'HPAYMT'],
      test_account: true,
    });
    expect(ok.status).toBe(201);
    expect(await t.registry.get(ok.body.client_id as string)).toMatchObject({ purposes_of_use: ['TREAT', 'HPAYMT'], test_account: true });
  });

  test('a backend service cannot give itself break-the-glass either, whatever kinds its token allows', async () => {
    const { token } = await mint('--kinds', 'backend_service', '--scopes', 'system/*.rs');
    const res = await register(token, {
      smart_client_kind: 'backend_service',
      smart_scopes: ['system/*.rs'],
      jwks: await publicJwks(),
      purposes_of_use: ['TREAT', 'ETREAT'],
      default_purposes_of_use: ['TREAT'],
    });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toContain("purposes_of_use[1] 'ETREAT' is an emergency (break-the-glass) purpose of use");
    expect(
      (await t.registry.list()).filter((c) => Array.isArray(c.purposes_of_use) && (c.purposes_of_use as string[]).includes('ETREAT')),
    ).toEqual([]);
  });

  test('jku_allowlist is refused: a registrant cannot point key fetches anywhere', async () => {
    const { token } = await mint('--kinds', 'confidential_asymmetric');
    const res = await register(token, {
      smart_client_kind: 'confidential_asymmetric',
      redirect_uris: ['https://app.example.org/callback'],
      smart_scopes: ['openid', 'patient/*.rs'],
      jwks_uri: 'https://app.example.org/jwks.json',
      jku_allowlist: ['https://keys.attacker.example/jwks.json'],
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_client_metadata',
      error_description: expect.stringMatching(/^jku_allowlist cannot be registered dynamically: .*only an operator can allow/),
    });
  });

  test('RFC 7592 updates cannot add them; test_account can be set', async () => {
    const { token } = await mint();
    const created = await register(token, app());
    expect(created.status).toBe(201);
    const {
      registration_access_token: firstRat,
      registration_client_uri: uri,
      client_id_issued_at: _i,
      client_secret_expires_at: _e,
      ...metadata
    } = created.body as Record<string, unknown>;
    const path = new URL(uri as string).pathname;
    let rat = firstRat as string;
    const put = async (body: object) => {
      const res = await t.request
        .put(path)
        .set('Authorization', `Bearer ${rat}`)
        .send({ ...metadata, ...body });
      if (res.status === 200) rat = res.body.registration_access_token as string;
      return res;
    };
    const btg = await put({ purposes_of_use: ['BTG'] });
    expect(btg.status).toBe(400);
    expect(btg.body.error_description).toContain("purposes_of_use[0] 'BTG' is an emergency (break-the-glass) purpose of use");
    const jku = await put({ jku_allowlist: ['https://keys.example.org/jwks.json'] });
    expect(jku.status).toBe(400);
    expect(jku.body.error_description).toMatch(/^jku_allowlist cannot be registered dynamically/);
    const stored = await t.registry.get(created.body.client_id as string);
    expect(stored?.purposes_of_use).toBeUndefined();
    expect(stored?.jku_allowlist).toBeUndefined();
    const test = await put({ test_account: true, purposes_of_use: ['TREAT'] });
    expect(test.status).toBe(200);
    expect(await t.registry.get(created.body.client_id as string)).toMatchObject({ test_account: true, purposes_of_use: ['TREAT'] });
  });
});

describe('what still works', () => {
  test('a permitted app registration gets its client, secret and registration access token', async () => {
    const { token } = await mint();
    const res = await register(
      token,
      app([
        'openid',
        'fhirUser',
        'launch',
        'launch/patient',
        'offline_access',
        'patient/Observation.rs?category=laboratory',
        'user/*.read',
      ]),
    );
    expect(res.status).toBe(201);
    expect(res.body.client_secret).toEqual(expect.any(String));
    expect(res.body.registration_access_token).toEqual(expect.any(String));
    expect(res.body.smart_registration_ceiling).toBeUndefined();
    const stored = await t.registry.get(res.body.client_id as string);
    expect(stored?.smart_client_kind).toBe('confidential_symmetric');
  });

  test('the CLI prints the policy it granted and refuses ceilings with administrative scopes or unknown kinds', async () => {
    const { printed } = await mint(
      '--kinds',
      'public_app,confidential_symmetric',
      '--scopes',
      'patient/*.rs launch openid',
      '--uses',
      '3',
      '--expires-in',
      '3600',
    );
    expect(printed).toContain('kinds:      public_app, confidential_symmetric');
    expect(printed).toContain('scopes:     patient/*.rs launch openid');
    expect(printed).toContain('uses:       3 registrations');
    expect(printed).toMatch(/expires: +\d{4}-\d\d-\d\dT.+ \(in 3600 s\)/);
    await expect(mint('--kinds', 'backend_service', '--scopes', 'system/*.rs scim')).rejects.toThrow(/scope 'scim' is administrative/);
    await expect(mint('--kinds', 'backend_service', '--scopes', 'system/Consent.rs')).rejects.toThrow(/administrative/);
    await expect(mint('--kinds', 'robot')).rejects.toThrow(/client kind 'robot' is not known/);
    await expect(mint('--kinds', 'backend_service')).rejects.toThrow(/needs system\/ read scopes/);
    await expect(mint('--uses', '0')).rejects.toThrow(/--uses must be a positive number/);
  });
});
