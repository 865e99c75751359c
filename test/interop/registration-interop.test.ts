import type { webcrypto } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { importJWK } from 'jose';
import * as oidc from 'openid-client';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, type BackendKey } from '../support/backend-client.js';
import { authorizeThroughPages, type PageAnswers } from '../support/smart-flow.js';
import { createPerson } from '../support/fixtures.js';
import { DEFAULT_REGISTRATION_CEILING, type RegistrationCeiling } from '../../src/oauth/clients/registration-policy.js';
import { RegistrationTokens } from '../../src/oauth/clients/registration-tokens.js';

/**
 * Issue 15, item 7: an OpenID dynamic-registration client knows RFC 7591's `scope` member and the
 * standard auth-method and grant-type metadata, not `smart_client_kind` nor `smart_scopes`. Such a
 * registration now works, still within the initial access token's policy: `scope` is the client's
 * SMART scopes (and comes back as `scope`), the kind is inferred from the standard metadata, and
 * an inferred kind or a scope the token does not allow is refused as if it had been named.
 * openid-client v6's `dynamicClientRegistration` registers against a listening server, then uses
 * what it registered.
 */

const ISSUER = 'http://localhost:3000';
const FHIR = 'http://localhost:8080/fhir';
const REDIRECT = 'https://app.example.org/cb';

let t: TestApp;
let tokens: RegistrationTokens;
let pat: PageAnswers;

/** Mints an initial access token the way `smart-authz registration token` does. */
async function mint(ceiling: Partial<RegistrationCeiling> = {}, uses = 1): Promise<string> {
  const issued = await tokens.issue(t.app, { ...DEFAULT_REGISTRATION_CEILING, ...ceiling, uses, expiresIn: 600 });
  return issued.token;
}

const register = (token: string, body: object) => t.request.post('/register').set('Authorization', `Bearer ${token}`).send(body);

const BACKEND_TOKEN = { kinds: ['backend_service' as const], scopes: ['system/*.rs'] };

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_ISSUER: ISSUER, AUTHZ_FHIR_SERVERS: FHIR, AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  tokens = new RegistrationTokens(t.redis, t.keyspace);
  pat = await createPerson(t, { fhirUser: 'Patient/pat-1' }, { userName: 'pat' });
});
afterAll(() => t.close());

describe('openid-client v6 dynamicClientRegistration against a listening server', () => {
  let server: Server;
  let toTestServer: typeof fetch;
  const options = (initialAccessToken: string): oidc.DynamicClientRegistrationRequestOptions => ({
    initialAccessToken,
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: toTestServer,
  });

  beforeAll(async () => {
    server = t.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    // The issuer is http://localhost:3000; requests go to this test's listening port instead.
    toTestServer = (input, init) => fetch(String(input).replace(ISSUER, `http://127.0.0.1:${port}`), init);
  });
  afterAll(() => new Promise((r) => server.close(r)));

  test('a public app registers with scope and no smart_client_kind, then gets a token for those scopes', async () => {
    const scope = 'openid fhirUser launch/patient patient/Observation.rs';
    const config = await oidc.dynamicClientRegistration(
      new URL(ISSUER),
      { client_name: 'OpenID app', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', scope },
      oidc.None(),
      options(await mint()),
    );
    const registered = config.clientMetadata();
    expect(registered).toMatchObject({
      smart_client_kind: 'public_app',
      token_endpoint_auth_method: 'none',
      scope,
      smart_scopes: scope.split(' '),
    });
    expect(registered.client_secret).toBeUndefined();
    expect((await t.registry.get(registered.client_id))?.smart_scopes).toEqual(scope.split(' '));

    // The registered client is usable as registered: the pages, then openid-client's own code exchange.
    const flow = await authorizeThroughPages(
      t,
      { client_id: registered.client_id, redirect_uri: REDIRECT, scope, aud: FHIR, state: 'st-reg' },
      pat,
    );
    expect(flow.stop.kind).toBe('app');
    const callback = (flow.stop as { location: URL }).location;
    config[oidc.customFetch] = toTestServer;
    const tokenSet = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: flow.verifier, expectedState: 'st-reg' });
    expect(tokenSet.scope!.split(' ').sort()).toEqual(scope.split(' ').sort());
    expect(tokenSet.patient).toBe('pat-1');
    expect(tokenSet.claims()?.fhirUser).toBe(`${FHIR}/Patient/pat-1`);
  });

  test('a backend service registers with private_key_jwt, client_credentials and scope, then gets a token with library defaults', async () => {
    const key: BackendKey = await backendKey('ES384');
    const config = await oidc.dynamicClientRegistration(
      new URL(ISSUER),
      {
        client_name: 'Bulk export',
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['client_credentials'],
        jwks: { keys: [key.publicJwk] },
        scope: 'system/Observation.rs',
      } as Partial<oidc.ClientMetadata>,
      oidc.PrivateKeyJwt({ key: (await importJWK(key.privateJwk, 'ES384')) as webcrypto.CryptoKey, kid: key.kid }),
      options(await mint(BACKEND_TOKEN)),
    );
    expect(config.clientMetadata()).toMatchObject({
      smart_client_kind: 'backend_service',
      scope: 'system/Observation.rs',
      redirect_uris: [],
    });
    config[oidc.customFetch] = toTestServer;
    const tokenSet = await oidc.clientCredentialsGrant(config, { scope: 'system/Observation.rs' });
    expect(tokenSet.scope).toBe('system/Observation.rs');
  });

  test('a refusal reaches openid-client as an RFC 7591 error that says which fields to send', async () => {
    const attempt = oidc.dynamicClientRegistration(
      new URL(ISSUER),
      {
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['authorization_code', 'client_credentials'],
        scope: 'openid',
      },
      oidc.None(),
      options(await mint()),
    );
    await expect(attempt).rejects.toMatchObject({
      status: 400,
      error: 'invalid_client_metadata',
      error_description: expect.stringContaining('send smart_client_kind, or token_endpoint_auth_method'),
    });
  });
});

describe('the kind is inferred from the standard metadata', () => {
  const jwks = async () => ({ keys: [(await backendKey('ES384')).publicJwk] });

  test.each([
    ['none + authorization_code', 'public_app', { token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }],
    [
      'client_secret_basic + authorization_code, refresh_token',
      'confidential_symmetric',
      { token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] },
    ],
    [
      'client_secret_post (grant types left to the RFC 7591 default)',
      'confidential_symmetric',
      { token_endpoint_auth_method: 'client_secret_post' },
    ],
    ['nothing at all (RFC 7591 defaults: client_secret_basic, authorization_code)', 'confidential_symmetric', {}],
    [
      'private_key_jwt + authorization_code',
      'confidential_asymmetric',
      { token_endpoint_auth_method: 'private_key_jwt', grant_types: ['authorization_code'], jwks: 'jwks' },
    ],
  ])('%s → %s', async (_what, kind, metadata) => {
    const body: Record<string, unknown> = { redirect_uris: [REDIRECT], scope: 'openid launch patient/*.rs', ...metadata };
    if (body.jwks === 'jwks') body.jwks = await jwks();
    const res = await register(await mint(), body);
    expect(res.status).toBe(201);
    expect(res.body.smart_client_kind).toBe(kind);
    expect(res.body.scope).toBe('openid launch patient/*.rs');
    expect(res.body.smart_scopes).toEqual(['openid', 'launch', 'patient/*.rs']);
    expect(typeof res.body.client_secret === 'string').toBe(kind === 'confidential_symmetric');
    expect((await t.registry.get(res.body.client_id))?.smart_client_kind).toBe(kind);
  });

  test('private_key_jwt + client_credentials only → backend_service (with a token that allows it)', async () => {
    const res = await register(await mint(BACKEND_TOKEN), {
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      jwks: await jwks(),
      scope: 'system/*.rs',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      smart_client_kind: 'backend_service',
      scope: 'system/*.rs',
      grant_types: ['client_credentials'],
      response_types: [],
    });
  });

  test.each([
    [
      'private_key_jwt with both flows',
      { token_endpoint_auth_method: 'private_key_jwt', grant_types: ['authorization_code', 'client_credentials'] },
    ],
    ['a client secret with client_credentials', { token_endpoint_auth_method: 'client_secret_basic', grant_types: ['client_credentials'] }],
    ['no grant types (a resource server must say so)', { token_endpoint_auth_method: 'client_secret_basic', grant_types: [] }],
    ['an implicit flow', { token_endpoint_auth_method: 'none', grant_types: ['implicit'] }],
    ['an auth method that is not a string', { token_endpoint_auth_method: 7 }],
  ])('ambiguous: %s → 400 invalid_client_metadata naming the fields to send', async (_what, metadata) => {
    const token = await mint();
    const res = await register(token, { redirect_uris: [REDIRECT], scope: 'openid', ...metadata });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toMatch(
      /^smart_client_kind is missing and token_endpoint_auth_method .+ and grant_types .+ name no single SMART client kind: send smart_client_kind, or/,
    );
    expect(res.body.error_description).toContain(
      '(this initial access token allows public_app, confidential_symmetric, confidential_asymmetric)',
    );
    // A refusal costs the token nothing.
    expect((await register(token, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', scope: 'openid' })).status).toBe(201);
  });
});

describe('within the registration policy of the initial access token', () => {
  test('an inferred kind the token does not allow is refused like a named one, and says what it was inferred from', async () => {
    const token = await mint();
    const res = await register(token, {
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      jwks: { keys: [(await backendKey('ES384')).publicJwk] },
      scope: 'system/*.rs',
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_client_metadata',
      error_description:
        'smart_client_kind \'backend_service\' (inferred from token_endpoint_auth_method "private_key_jwt" and grant_types ["client_credentials"]; smart_client_kind was not sent) is not allowed by this initial access token (it allows public_app, confidential_symmetric, confidential_asymmetric)',
    });
    const publicOnly = await mint({ kinds: ['public_app'] });
    const symmetric = await register(publicOnly, { redirect_uris: [REDIRECT], scope: 'openid' });
    expect(symmetric.status).toBe(400);
    expect(symmetric.body.error_description).toMatch(
      /^smart_client_kind 'confidential_symmetric' \(inferred from token_endpoint_auth_method "client_secret_basic" and grant_types \["authorization_code"\]; /,
    );
  });

  test.each(['scim', 'introspect', 'system/AuditEvent.rs', 'system/Consent.rs', 'system/*.cruds'])(
    'administrative scope %s in scope is refused',
    async (admin) => {
      const res = await register(await mint(BACKEND_TOKEN), {
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['client_credentials'],
        jwks: { keys: [(await backendKey('ES384')).publicJwk] },
        scope: `system/*.rs ${admin}`,
      });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_client_metadata');
      expect(res.body.error_description).toContain(`scope '${admin}' is administrative`);
    },
  );

  test('a scope in scope beyond the ceiling is refused, naming the ceiling', async () => {
    const res = await register(await mint({ kinds: ['public_app'], scopes: ['openid', 'launch', 'patient/Observation.rs'] }), {
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      scope: 'openid patient/*.rs',
    });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toBe(
      "scope 'patient/*.rs' is not allowed by this initial access token (it allows scopes within: openid launch patient/Observation.rs)",
    );
  });
});

describe('scope and smart_scopes', () => {
  const base = { smart_client_kind: 'public_app', redirect_uris: [REDIRECT] };

  test('both naming the same scopes (in any order) are accepted', async () => {
    const res = await register(await mint(), { ...base, scope: 'patient/*.rs openid', smart_scopes: ['openid', 'patient/*.rs'] });
    expect(res.status).toBe(201);
    expect(res.body.smart_scopes).toEqual(['openid', 'patient/*.rs']);
    expect(res.body.scope).toBe('openid patient/*.rs');
  });

  test('both naming different scopes are refused, naming the difference', async () => {
    const res = await register(await mint(), { ...base, scope: 'openid patient/*.rs', smart_scopes: ['openid', 'patient/Observation.rs'] });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_client_metadata',
      error_description:
        "scope and smart_scopes name different scopes (only in scope: patient/*.rs; only in smart_scopes: patient/Observation.rs); send the client's scopes in one of them, or the same scopes in both",
    });
  });

  test.each([
    ['not a string', ['openid'], 'scope must be a string of space-separated scope values (RFC 7591 §2)'],
    ['a malformed value', 'openid patient/Observation.zz', "scope value 'patient/Observation.zz' "],
  ])('scope %s is refused', async (_what, scope, message) => {
    const res = await register(await mint(), { ...base, scope });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toContain(message);
  });

  test('RFC 7592: the record reads back with scope; an update that changes only scope (echoing smart_scopes) narrows the client', async () => {
    const created = await register(await mint(), {
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      scope: 'openid launch patient/*.rs',
    });
    expect(created.status).toBe(201);
    const path = new URL(created.body.registration_client_uri as string).pathname;
    const read = await t.request.get(path).set('Authorization', `Bearer ${created.body.registration_access_token}`);
    expect(read.status).toBe(200);
    expect(read.body.scope).toBe('openid launch patient/*.rs');
    const {
      registration_access_token: rat,
      registration_client_uri: _u,
      client_id_issued_at: _i,
      client_secret_expires_at: _e,
      ...record
    } = read.body as Record<string, unknown>;
    const updated = await t.request
      .put(path)
      .set('Authorization', `Bearer ${rat}`)
      .send({ ...record, scope: 'openid patient/Observation.rs' });
    expect(updated.status).toBe(200);
    expect(updated.body.scope).toBe('openid patient/Observation.rs');
    expect(updated.body.smart_scopes).toEqual(['openid', 'patient/Observation.rs']);
    expect((await t.registry.get(created.body.client_id))?.smart_scopes).toEqual(['openid', 'patient/Observation.rs']);
    // Widening through scope beyond the token's ceiling is refused like any other way.
    const wider = await t.request
      .put(path)
      .set('Authorization', `Bearer ${updated.body.registration_access_token}`)
      .send({ ...record, smart_scopes: ['openid', 'patient/Observation.rs'], scope: 'openid patient/*.cruds scim' });
    expect(wider.status).toBe(400);
    expect(wider.body.error_description).toContain("scope 'scim' is administrative");
  });
});
