import { ClientRegistryError } from '../../../src/oauth/clients/registry.js';
import { hashClientSecret, isHashedClientSecret, verifyClientSecret } from '../../../src/oauth/clients/secrets.js';
import { createHarness, FHIR_BASE, minimalClients, OTHER_FHIR_BASE, rsaKeyPair, type Harness } from './support.js';

let h: Harness;
const rsa = rsaKeyPair('k1');
const defs = minimalClients({ keys: [rsa.publicJwk] });

beforeEach(async () => {
  h = await createHarness();
});

afterEach(async () => {
  await h.close();
});

async function raw(id: string): Promise<string | null> {
  return h.redis.get(h.keyspace.model('Client', id));
}

async function storedSecret(id: string): Promise<unknown> {
  return (JSON.parse((await raw(id)) ?? '{}') as { client_secret?: unknown }).client_secret;
}

async function registryError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ClientRegistryError);
    return (err as Error).message;
  }
  throw new Error('expected a ClientRegistryError');
}

describe('upsert', () => {
  test('accepts each kind from a minimal definition and generates secrets only where needed', async () => {
    const secrets: Record<string, boolean> = {};
    for (const def of Object.values(defs)) {
      const result = await h.registry.upsert(def);
      expect(result.status).toBe('created');
      expect(result.client).not.toHaveProperty('client_secret');
      secrets[String(def.smart_client_kind)] = result.clientSecret !== undefined;
    }
    expect(secrets).toEqual({
      public_app: false,
      confidential_symmetric: true,
      confidential_asymmetric: false,
      backend_service: false,
      resource_server: true,
      ehr_launcher: true,
    });
    expect((await h.registry.list()).map((c) => c.client_id)).toEqual(['asym', 'bulk', 'ehr', 'pub', 'rs', 'sym']);
  });

  test('stores only the hash of a generated secret', async () => {
    const { clientSecret } = await h.registry.upsert(defs.confidential_symmetric!);
    expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const value = await raw('sym');
    expect(value).not.toContain(clientSecret);
    const stored = await storedSecret('sym');
    expect(isHashedClientSecret(stored)).toBe(true);
    expect(verifyClientSecret(stored, clientSecret)).toBe(true);
  });

  test('hashes a plaintext secret from the definition', async () => {
    await h.registry.upsert({ ...defs.confidential_symmetric, client_secret: 'a-plaintext-secret-of-some-length' });
    expect(await raw('sym')).not.toContain('a-plaintext-secret-of-some-length');
    expect(await storedSecret('sym')).toBe(hashClientSecret('a-plaintext-secret-of-some-length'));
  });

  test('is idempotent: the same definition again changes nothing and keeps the secret', async () => {
    const first = await h.registry.upsert(defs.confidential_symmetric!);
    const before = await raw('sym');
    const again = await h.registry.upsert(defs.confidential_symmetric!);
    expect(again.status).toBe('unchanged');
    expect(again.clientSecret).toBeUndefined();
    expect(await raw('sym')).toBe(before);
    expect(verifyClientSecret(await storedSecret('sym'), first.clientSecret)).toBe(true);

    const reordered = Object.fromEntries(Object.entries(defs.confidential_symmetric!).reverse());
    expect((await h.registry.upsert(reordered)).status).toBe('unchanged');
  });

  test('a plaintext secret given twice is unchanged the second time', async () => {
    const def = { ...defs.confidential_symmetric, client_secret: 'same-secret-every-time-1234567890' };
    expect((await h.registry.upsert(def)).status).toBe('created');
    expect((await h.registry.upsert(def)).status).toBe('unchanged');
  });

  test('a changed definition is updated without rotating the secret', async () => {
    const { clientSecret } = await h.registry.upsert(defs.confidential_symmetric!);
    const issuedAt = JSON.parse((await raw('sym'))!).client_id_issued_at;
    const result = await h.registry.upsert({ ...defs.confidential_symmetric, client_name: 'Renamed' });
    expect(result.status).toBe('updated');
    expect(result.clientSecret).toBeUndefined();
    expect(result.client.client_name).toBe('Renamed');
    expect(verifyClientSecret(await storedSecret('sym'), clientSecret)).toBe(true);
    expect(JSON.parse((await raw('sym'))!).client_id_issued_at).toBe(issuedAt);
  });

  test('without generateSecret a new secret-based client needs a secret in its definition', async () => {
    expect(await registryError(h.registry.upsert(defs.confidential_symmetric!, { generateSecret: false }))).toBe(
      'client "sym": client_secret is required for token_endpoint_auth_method client_secret_basic (give it in plaintext or as a sha256$ hash)',
    );
    expect(await raw('sym')).toBeNull();
  });

  test('rejects invalid metadata with the client id and the validator message, storing nothing', async () => {
    expect(await registryError(h.registry.upsert({ ...defs.backend_service, smart_scopes: ['patient/*.rs'] }))).toBe(
      'client "bulk": smart_scopes[0] "patient/*.rs" is not allowed: backend_service clients may only have system/ scopes',
    );
    expect(await registryError(h.registry.upsert({ ...defs.public_app, token_endpoint_auth_method: 'private_key_jwt' }))).toMatch(
      /^client "pub": token_endpoint_auth_method must be "none" for public_app clients/,
    );
    expect(await raw('bulk')).toBeNull();
    expect(await h.registry.list()).toEqual([]);
  });

  test('refuses a private key without echoing it', async () => {
    const message = await registryError(h.registry.upsert({ ...defs.confidential_asymmetric, jwks: { keys: [rsa.privateJwk] } }));
    expect(message).toBe('client "asym": jwks.keys[0] contains private key material ("d"); register the public key only');
    expect(message).not.toContain(String(rsa.privateJwk.d));
  });

  test('refuses unknown properties instead of dropping them', async () => {
    expect(await registryError(h.registry.upsert({ ...defs.backend_service, fhir_server: [FHIR_BASE] }))).toBe(
      'client "bulk": unknown property "fhir_server"',
    );
  });

  test('requires a plain client_id', async () => {
    expect(await registryError(h.registry.upsert({ smart_client_kind: 'public_app' }))).toBe(
      'client_id is required and must be a non-empty string',
    );
    expect(await registryError(h.registry.upsert({ ...defs.public_app, client_id: 'a}b' }))).toBe(
      'client_id "a}b" must be 1 to 128 letters, digits, or . _ ~ : -',
    );
  });

  test('an unchanged client missing from the index is added to it', async () => {
    await h.registry.upsert(defs.public_app!);
    await h.redis.del(h.keyspace.clientIndex());
    expect((await h.registry.upsert(defs.public_app!)).status).toBe('unchanged');
    expect(await h.redis.smembers(h.keyspace.clientIndex())).toEqual(['pub']);
  });

  test('stores clients oidc-provider can load, with normalised SMART metadata', async () => {
    await h.registry.upsert({ ...defs.backend_service, fhir_servers: [`${OTHER_FHIR_BASE}/`] });
    const client = (await h.provider.Client.find('bulk')) as unknown as Record<string, unknown>;
    expect(client.smart_client_kind).toBe('backend_service');
    expect(client.fhir_servers).toEqual([OTHER_FHIR_BASE]);
    expect(client.grantTypes).toEqual(['client_credentials']);
  });

  test('create refuses an existing id', async () => {
    await h.registry.create(defs.public_app!);
    expect(await registryError(h.registry.create(defs.public_app!))).toBe('client "pub" already exists');
  });
});

describe('list and remove', () => {
  test('list reads the client index; remove deletes the client and its index entry', async () => {
    await h.registry.upsert(defs.public_app!);
    await h.registry.upsert(defs.backend_service!);
    expect(await h.redis.smembers(h.keyspace.clientIndex())).toEqual(expect.arrayContaining(['pub', 'bulk']));
    expect(await h.registry.remove('pub')).toBe(true);
    expect(await raw('pub')).toBeNull();
    expect(await h.redis.smembers(h.keyspace.clientIndex())).toEqual(['bulk']);
    expect((await h.registry.list()).map((c) => c.client_id)).toEqual(['bulk']);
    expect(await h.registry.remove('pub')).toBe(false);
    expect(await h.registry.get('pub')).toBeUndefined();
  });

  test('list skips ids whose client is gone', async () => {
    await h.registry.upsert(defs.public_app!);
    await h.redis.sadd(h.keyspace.clientIndex(), 'ghost');
    expect((await h.registry.list()).map((c) => c.client_id)).toEqual(['pub']);
  });
});

describe('rotateSecret', () => {
  test('replaces the secret: the old one stops verifying, the new one verifies', async () => {
    const { clientSecret: old } = await h.registry.upsert(defs.ehr_launcher!);
    const fresh = await h.registry.rotateSecret('ehr');
    expect(fresh).not.toBe(old);
    const stored = await storedSecret('ehr');
    expect(verifyClientSecret(stored, fresh)).toBe(true);
    expect(verifyClientSecret(stored, old)).toBe(false);
    expect(await raw('ehr')).not.toContain(fresh);
  });

  test('refuses clients that use no secret, and unknown clients', async () => {
    await h.registry.upsert(defs.backend_service!);
    expect(await registryError(h.registry.rotateSecret('bulk'))).toBe(
      'client "bulk": token_endpoint_auth_method is private_key_jwt, which uses no client secret',
    );
    expect(await registryError(h.registry.rotateSecret('nobody'))).toBe('client "nobody" does not exist');
  });
});

describe('setJwks', () => {
  test('switches between a JWKS and a jwks_uri', async () => {
    await h.registry.upsert(defs.backend_service!);
    const next = rsaKeyPair('k2').publicJwk;
    const withKeys = await h.registry.setJwks('bulk', { keys: [next] });
    expect(withKeys.client.jwks).toEqual({ keys: [next] });
    expect(withKeys.client).not.toHaveProperty('jwks_uri');
    const withUri = await h.registry.setJwks('bulk', { jwks_uri: 'https://bulk.example.org/keys-v2.json' });
    expect(withUri.client.jwks_uri).toBe('https://bulk.example.org/keys-v2.json');
    expect(withUri.client).not.toHaveProperty('jwks');
  });

  test('refuses bad keys and leaves the stored ones in place', async () => {
    await h.registry.upsert(defs.confidential_asymmetric!);
    const before = await raw('asym');
    expect(await registryError(h.registry.setJwks('asym', { keys: [rsaKeyPair('weak', 1024).publicJwk] }))).toBe(
      'client "asym": jwks.keys[0] RSA modulus is 1024 bits; at least 2048 are required',
    );
    expect(await raw('asym')).toBe(before);
  });

  test('refuses clients that do not use private_key_jwt', async () => {
    await h.registry.upsert(defs.public_app!);
    expect(await registryError(h.registry.setJwks('pub', { keys: [rsa.publicJwk] }))).toBe(
      'client "pub": token_endpoint_auth_method is none; keys are only used with private_key_jwt',
    );
  });
});

describe('update', () => {
  test('merges a patch; null removes a property', async () => {
    await h.registry.upsert({ ...defs.public_app, client_name: 'App', launch_url: 'https://app.example.org/launch' });
    const result = await h.registry.update('pub', { client_name: 'New name', launch_url: null });
    expect(result.status).toBe('updated');
    expect(result.client.client_name).toBe('New name');
    expect(result.client).not.toHaveProperty('launch_url');
    expect(result.client.redirect_uris).toEqual(['https://app.example.org/callback']);
  });

  test('a kind change recomputes the kind-derived OAuth metadata and issues a secret when one is now needed', async () => {
    await h.registry.upsert({ ...defs.confidential_asymmetric });
    const result = await h.registry.update('asym', { smart_client_kind: 'confidential_symmetric', jwks: null });
    expect(result.client.token_endpoint_auth_method).toBe('client_secret_basic');
    expect(result.clientSecret).toBeDefined();
    expect(verifyClientSecret(await storedSecret('asym'), result.clientSecret)).toBe(true);
  });

  test('switching away from secret authentication drops the stored secret', async () => {
    await h.registry.upsert(defs.resource_server!);
    const result = await h.registry.update('rs', { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [rsa.publicJwk] } });
    expect(result.client.token_endpoint_auth_method).toBe('private_key_jwt');
    expect(await storedSecret('rs')).toBeUndefined();
  });

  test('refuses unknown clients and id changes', async () => {
    expect(await registryError(h.registry.update('nobody', {}))).toBe('client "nobody" does not exist');
    await h.registry.upsert(defs.public_app!);
    expect(await registryError(h.registry.update('pub', { client_id: 'other' }))).toBe('client "pub": client_id cannot be changed');
  });
});
