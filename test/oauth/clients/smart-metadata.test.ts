import Provider from 'oidc-provider';
import { applyKindDefaults, SMART_CLIENT_KINDS } from '../../../src/oauth/clients/client-kinds.js';
import { usesClientSecret } from '../../../src/oauth/clients/client-kinds.js';
import { hashClientSecret } from '../../../src/oauth/clients/secrets.js';
import {
  createHarness,
  DEV_POLICY,
  ecPublicJwk,
  FHIR_BASE,
  minimalClients,
  OTHER_FHIR_BASE,
  providerConfig,
  rejection,
  rsaKeyPair,
  type Harness,
} from './support.js';

let h: Harness;
let production: Provider;
const rsa = rsaKeyPair('rsa-1');
const jwks = { keys: [rsa.publicJwk] };

beforeAll(async () => {
  h = await createHarness();
  production = new Provider('https://authz.example.org', providerConfig(h.redis, h.keyspace, { ...DEV_POLICY, production: true }));
});

afterAll(async () => {
  await h.close();
});

const clients = minimalClients(jwks);

function client(kind: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return applyKindDefaults({ ...clients[kind], ...overrides });
}

/** Instantiating a Client shows what the validator normalised (fhir_servers, smart_scopes). */
function instantiate(provider: Provider, metadata: Record<string, unknown>): Record<string, unknown> {
  const ClientModel = provider.Client as unknown as new (m: Record<string, unknown>) => Record<string, unknown>;
  return new ClientModel(metadata);
}

describe('kind defaults', () => {
  // Secrets are the registry's business (it generates them); validation only needs one present.
  test.each(SMART_CLIENT_KINDS.map((k) => [k]))('%s with minimal input is accepted', async (kind) => {
    const metadata = client(kind);
    if (usesClientSecret(metadata.token_endpoint_auth_method)) metadata.client_secret = hashClientSecret('s'.repeat(43));
    expect(await rejection(h.provider, metadata)).toBeUndefined();
  });

  test('fill OAuth metadata from the kind, keeping what the caller gave', () => {
    expect(applyKindDefaults({ smart_client_kind: 'backend_service' })).toMatchObject({
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'private_key_jwt',
      redirect_uris: [],
    });
    expect(applyKindDefaults({ smart_client_kind: 'public_app' })).toMatchObject({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    expect(applyKindDefaults({ smart_client_kind: 'resource_server' }).token_endpoint_auth_method).toBe('client_secret_basic');
    expect(applyKindDefaults({ smart_client_kind: 'resource_server', jwks }).token_endpoint_auth_method).toBe('private_key_jwt');
    expect(
      applyKindDefaults({ smart_client_kind: 'ehr_launcher', jwks_uri: 'https://x.example.org/jwks' }).token_endpoint_auth_method,
    ).toBe('private_key_jwt');
    expect(applyKindDefaults({ smart_client_kind: 'public_app', grant_types: ['authorization_code'] }).grant_types).toEqual([
      'authorization_code',
    ]);
    expect(applyKindDefaults({ smart_client_kind: 'nonsense' })).toEqual({ smart_client_kind: 'nonsense' });
  });

  test('fhir_servers defaults to every configured server and is normalised', () => {
    expect(instantiate(h.provider, client('backend_service')).fhir_servers).toEqual([FHIR_BASE, OTHER_FHIR_BASE]);
    expect(instantiate(h.provider, client('backend_service', { fhir_servers: [`${OTHER_FHIR_BASE}/`] })).fhir_servers).toEqual([
      OTHER_FHIR_BASE,
    ]);
  });

  test('an asymmetric client with only an EC P-384 key is accepted', async () => {
    expect(await rejection(h.provider, client('confidential_asymmetric', { jwks: { keys: [ecPublicJwk('ec-1')] } }))).toBeUndefined();
  });
});

describe('rejected metadata names the field and the problem', () => {
  const cases: [string, () => Record<string, unknown>, RegExp][] = [
    [
      'missing kind',
      () => ({ client_id: 'x', redirect_uris: ['https://a.example.org/cb'], smart_scopes: ['openid'] }),
      /^smart_client_kind is required: one of public_app, /,
    ],
    [
      'unknown kind',
      () => client('public_app', { smart_client_kind: 'mobile_app' }),
      /^smart_client_kind "mobile_app" is not known: use one of public_app/,
    ],
    [
      'kind/auth-method mismatch',
      () => client('public_app', { token_endpoint_auth_method: 'client_secret_basic', client_secret: 'x'.repeat(40) }),
      /^token_endpoint_auth_method must be "none" for public_app clients \(got "client_secret_basic"\)$/,
    ],
    [
      'backend service with an authorization-code grant',
      () => client('backend_service', { grant_types: ['authorization_code'] }),
      /^grant_types for backend_service clients must be exactly \["client_credentials"\]/,
    ],
    [
      'backend service without keys',
      () => ({ ...client('backend_service'), jwks_uri: undefined }),
      /^jwks or jwks_uri is required for backend_service clients using private_key_jwt$/,
    ],
    [
      'resource server with grants',
      () => client('resource_server', { grant_types: ['client_credentials'] }),
      /^grant_types for resource_server clients must be empty/,
    ],
    [
      'RSA 1024-bit key',
      () => client('confidential_asymmetric', { jwks: { keys: [rsaKeyPair('small', 1024).publicJwk] } }),
      /^jwks\.keys\[0\] RSA modulus is 1024 bits; at least 2048 are required$/,
    ],
    [
      'oct key',
      () => client('confidential_asymmetric', { jwks: { keys: [{ kty: 'oct', kid: 'h', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' }] } }),
      /^jwks\.keys\[0\] is a symmetric \(oct\) key/,
    ],
    [
      'OKP key',
      () => client('confidential_asymmetric', { jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', kid: 'o', x: 'abc' }] } }),
      /^jwks\.keys\[0\] is an OKP key/,
    ],
    [
      'alg HS256 on a key',
      () => client('confidential_asymmetric', { jwks: { keys: [{ ...rsa.publicJwk, alg: 'HS256' }] } }),
      /^jwks\.keys\[0\]\.alg must be one of RS384, ES384$/,
    ],
    [
      'alg RS256 on a key',
      () => client('confidential_asymmetric', { jwks: { keys: [{ ...rsa.publicJwk, alg: 'RS256' }] } }),
      /^jwks\.keys\[0\]\.alg must be one of RS384, ES384$/,
    ],
    [
      'token_endpoint_auth_signing_alg RS256',
      () => client('backend_service', { token_endpoint_auth_signing_alg: 'RS256' }),
      /^token_endpoint_auth_signing_alg must be one of RS384, ES384 \(got "RS256"\)$/,
    ],
    [
      'alg that does not fit the key',
      () => client('confidential_asymmetric', { jwks: { keys: [{ ...rsa.publicJwk, alg: 'ES384' }] } }),
      /^jwks\.keys\[0\]\.alg ES384 does not fit an RSA key$/,
    ],
    [
      'EC P-256 key no allowed alg can use',
      () => client('confidential_asymmetric', { jwks: { keys: [ecPublicJwk('p256', 'P-256')] } }),
      /^jwks\.keys\[0\] is an EC P-256 key but none of the allowed algorithms \(RS384, ES384\) uses it$/,
    ],
    [
      'use enc',
      () => client('confidential_asymmetric', { jwks: { keys: [{ ...rsa.publicJwk, use: 'enc' }] } }),
      /^jwks\.keys\[0\]\.use must be "sig" if given$/,
    ],
    [
      'key without kid',
      () => client('confidential_asymmetric', { jwks: { keys: [{ ...rsa.publicJwk, kid: undefined }] } }),
      /^jwks\.keys\[0\]\.kid is required/,
    ],
    [
      'duplicate kid',
      () => client('confidential_asymmetric', { jwks: { keys: [rsa.publicJwk, { ...ecPublicJwk('rsa-1') }] } }),
      /^jwks\.keys\[1\]\.kid "rsa-1" is used by another key/,
    ],
    ['empty key set', () => client('confidential_asymmetric', { jwks: { keys: [] } }), /^jwks\.keys must contain at least one key$/],
    ['jwks and jwks_uri both', () => client('backend_service', { jwks }), /^jwks and jwks_uri must not both be given/],
    ['keys on a public app', () => client('public_app', { jwks }), /^jwks\/jwks_uri are only used with private_key_jwt/],
    [
      'http jwks_uri on a non-loopback host',
      () => client('backend_service', { jwks_uri: 'http://bulk.example.org/jwks.json' }),
      /^jwks_uri must use https \(http only for localhost or 127\.0\.0\.1 outside production\)$/,
    ],
    [
      'unknown FHIR server',
      () => client('backend_service', { fhir_servers: ['https://elsewhere.example.org/fhir'] }),
      /^fhir_servers\[0\] "https:\/\/elsewhere\.example\.org\/fhir" is not a FHIR server of this authorization server/,
    ],
    ['empty fhir_servers', () => client('backend_service', { fhir_servers: [] }), /^fhir_servers must list at least one FHIR base URL/],
    [
      'out-of-order permissions',
      () => client('public_app', { smart_scopes: ['patient/Observation.sr'] }),
      /^smart_scopes\[0\] "patient\/Observation\.sr" has permissions "sr"/,
    ],
    [
      'lower-case resource type',
      () => client('public_app', { smart_scopes: ['openid', 'patient/observation.rs'] }),
      /^smart_scopes\[1\] "patient\/observation\.rs" is neither one of openid/,
    ],
    [
      'query without a value',
      () => client('public_app', { smart_scopes: ['patient/Observation.rs?category'] }),
      /^smart_scopes\[0\] "patient\/Observation\.rs\?category" has query part "category"; each must be name=value$/,
    ],
    [
      'backend with a patient/ scope',
      () => client('backend_service', { smart_scopes: ['system/*.rs', 'patient/*.rs'] }),
      /^smart_scopes\[1\] "patient\/\*\.rs" is not allowed: backend_service clients may only have system\/ scopes$/,
    ],
    [
      'backend with openid',
      () => client('backend_service', { smart_scopes: ['openid'] }),
      /backend_service clients may only have system\/ scopes$/,
    ],
    [
      'public app with a system/ scope',
      () => client('public_app', { smart_scopes: ['system/*.rs'] }),
      /public_app clients may not have system\/ scopes$/,
    ],
    [
      'missing smart_scopes',
      () => ({ ...client('confidential_symmetric', { client_secret: 'x'.repeat(40) }), smart_scopes: undefined }),
      /^smart_scopes is required for confidential_symmetric clients/,
    ],
    [
      'empty smart_scopes',
      () => client('public_app', { smart_scopes: [] }),
      /^smart_scopes must list at least one scope for public_app clients$/,
    ],
    [
      'scopes on a resource server',
      () => client('resource_server', { smart_scopes: ['system/*.rs'] }),
      /^smart_scopes must be empty for resource_server clients/,
    ],
    [
      'launch_url on a backend service',
      () => client('backend_service', { launch_url: 'https://bulk.example.org/launch' }),
      /^launch_url is only for apps launched from the EHR, not backend_service clients$/,
    ],
    [
      'http launch_url on a public host',
      () => client('public_app', { launch_url: 'http://app.example.org/launch' }),
      /^launch_url must use https/,
    ],
    [
      'bad purpose of use',
      () => client('public_app', { purposes_of_use: ['TREAT', 'treatment'] }),
      /^purposes_of_use\[1\] "treatment" must be a v3-PurposeOfUse code like TREAT/,
    ],
    ['http jku', () => client('backend_service', { jku_allowlist: ['http://localhost/jwks'] }), /^jku_allowlist\[0\] must use https$/],
    [
      'redirect URI with a fragment',
      () => client('public_app', { redirect_uris: ['https://app.example.org/cb#x'] }),
      /^redirect_uris\[0\] must not contain a fragment$/,
    ],
  ];

  test.each(cases)('%s', async (_name, metadata, expected) => {
    expect(await rejection(h.provider, metadata())).toMatch(expected);
  });

  test('a private key is refused without echoing its material', async () => {
    const description = await rejection(h.provider, client('confidential_asymmetric', { jwks: { keys: [rsa.privateJwk] } }));
    expect(description).toBe('jwks.keys[0] contains private key material ("d"); register the public key only');
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) {
      expect(description).not.toContain(String(rsa.privateJwk[member]));
    }
  });
});

describe('in production', () => {
  test('an http jwks_uri is refused, even on loopback', async () => {
    expect(await rejection(production, client('backend_service', { jwks_uri: 'http://localhost:8000/jwks.json' }))).toBe(
      'jwks_uri must use https',
    );
    expect(await rejection(h.provider, client('backend_service', { jwks_uri: 'http://localhost:8000/jwks.json' }))).toBeUndefined();
  });

  test('redirect URIs must be https except loopback or private-use schemes of native public apps', async () => {
    expect(
      await rejection(
        production,
        client('confidential_symmetric', { client_secret: 'x'.repeat(40), redirect_uris: ['http://localhost:8000/cb'] }),
      ),
    ).toBe('redirect_uris[0] must use https in production');
    expect(await rejection(production, client('public_app', { redirect_uris: ['http://app.example.org/cb'] }))).toMatch(
      /^redirect_uris\[0\] must use https in production/,
    );
    const native = { application_type: 'native' };
    expect(await rejection(production, client('public_app', { ...native, redirect_uris: ['http://127.0.0.1:5000/cb'] }))).toBeUndefined();
    expect(await rejection(production, client('public_app', { ...native, redirect_uris: ['org.example.app:/cb'] }))).toBeUndefined();
    expect(await rejection(production, client('public_app', { ...native, redirect_uris: ['http://app.example.org/cb'] }))).toMatch(
      /^redirect_uris\[0\] must use https/,
    );
  });

  test('launch_url on loopback http is refused', async () => {
    expect(await rejection(production, client('public_app', { launch_url: 'http://localhost:9000/launch' }))).toBe(
      'launch_url must use https',
    );
    expect(await rejection(h.provider, client('public_app', { launch_url: 'http://localhost:9000/launch' }))).toBeUndefined();
  });
});
