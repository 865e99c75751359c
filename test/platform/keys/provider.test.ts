import { jest } from '@jest/globals';
import Provider from 'oidc-provider';
import request from 'supertest';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import type { KeyStore } from '../../../src/platform/keys/keystore.js';
import type { ProviderJwks } from '../../../src/platform/keys/provider-jwks.js';
import { startKeyWatcher } from '../../../src/platform/keys/watcher.js';
import { freshKeyspace, Instances, PRIVATE_MEMBERS } from './support.js';

const ISSUER = 'http://localhost:3000';
const FHIR = 'https://fhir.example.org/r4';
const SECRET = 'client-secret-'.padEnd(40, 'x');

const instances = new Instances();
afterAll(() => instances.closeAll());

// oidc-provider warns about its development-only in-memory adapter; irrelevant here.
beforeAll(() => void jest.spyOn(console, 'warn').mockImplementation(() => {}));
afterAll(() => jest.restoreAllMocks());

function buildProvider(jwks: ProviderJwks): Provider {
  return new Provider(ISSUER, {
    jwks,
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES384'] },
    ttl: { IdToken: 600, ClientCredentials: 300 },
    clients: [
      { client_id: 'rs-app', client_secret: SECRET, redirect_uris: ['https://app.example.org/cb'] },
      { client_id: 'ec-app', client_secret: SECRET, redirect_uris: ['https://app.example.org/cb'], id_token_signed_response_alg: 'ES384' },
      { client_id: 'backend', client_secret: SECRET, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
    ],
    features: {
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => FHIR,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'system/Patient.rs', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS384' } } }),
      },
    },
  });
}

async function idToken(provider: Provider, clientId: string): Promise<string> {
  const client = await provider.Client.find(clientId);
  const token = new provider.IdToken({ sub: 'alice' }, { client: client! });
  // Claims are masked by scope; the route handlers set it, so do the same here.
  Object.assign(token, { scope: 'openid' });
  return token.issue({ use: 'idtoken' });
}

async function publishedJwks(provider: Provider): Promise<JSONWebKeySet> {
  const res = await request(provider.callback()).get('/jwks').expect(200);
  return res.body as JSONWebKeySet;
}

/** Verifies `token` the way a relying party or FHIR server would: against a provider's /jwks. */
async function verifiesAgainst(token: string, provider: Provider): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet(await publishedJwks(provider)), { issuer: ISSUER });
    return true;
  } catch {
    return false;
  }
}

function kidOf(token: string): string | undefined {
  return decodeProtectedHeader(token).kid;
}

async function currentKid(store: KeyStore, kty: 'RSA' | 'EC'): Promise<string> {
  return (await store.list()).keys.find((k) => k.kty === kty && k.status === 'current')!.kid;
}

describe('signing keys in oidc-provider', () => {
  test('with next and retired keys present, only the current key of each type signs, and /jwks publishes all without private members', async () => {
    const store = await instances.store(freshKeyspace(), 'a key encryption secret of at least 32 chars');
    await store.ensureKeys();
    for (const kty of ['RSA', 'EC'] as const) {
      await store.promote((await store.introduce(kty)).kid); // leaves a retired key
      await store.introduce(kty); // and a waiting next key
    }
    const { keys, jwks } = await store.load();
    expect(keys.map((k) => k.status).sort()).toEqual(['current', 'current', 'next', 'next', 'retired', 'retired']);
    const provider = buildProvider(jwks);

    const published = await publishedJwks(provider);
    expect(published.keys.map((k) => k.kid).sort()).toEqual(keys.map((k) => k.kid).sort());
    for (const key of published.keys) {
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
      const status = keys.find((k) => k.kid === key.kid)!.status;
      expect(key.key_ops).toEqual(status === 'current' ? undefined : ['verify']);
    }

    const rsIdToken = await idToken(provider, 'rs-app');
    expect(decodeProtectedHeader(rsIdToken)).toMatchObject({ alg: 'RS256', kid: await currentKid(store, 'RSA') });
    const ecIdToken = await idToken(provider, 'ec-app');
    expect(decodeProtectedHeader(ecIdToken)).toMatchObject({ alg: 'ES384', kid: await currentKid(store, 'EC') });
    expect(await verifiesAgainst(rsIdToken, provider)).toBe(true);
    expect(await verifiesAgainst(ecIdToken, provider)).toBe(true);

    const res = await request(provider.callback())
      .post('/token')
      .auth('backend', SECRET)
      .type('form')
      .send({ grant_type: 'client_credentials', scope: 'system/Patient.rs' })
      .expect(200);
    const accessToken = res.body.access_token as string;
    expect(decodeProtectedHeader(accessToken)).toMatchObject({ alg: 'RS384', typ: 'at+jwt', kid: await currentKid(store, 'RSA') });
    expect(await verifiesAgainst(accessToken, provider)).toBe(true);

    // Order is not what keeps next/retired keys from signing: with them listed first, key_ops still does.
    const reversed = buildProvider({ keys: [...jwks.keys].reverse() });
    expect(kidOf(await idToken(reversed, 'rs-app'))).toBe(await currentKid(store, 'RSA'));
    expect(kidOf(await idToken(reversed, 'ec-app'))).toBe(await currentKid(store, 'EC'));

    const discovery = await request(provider.callback()).get('/.well-known/openid-configuration').expect(200);
    expect(discovery.body.id_token_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS256', 'ES384']));
  });

  test('id_token_hint signed by a retired key is still accepted by the provider', async () => {
    const store = await instances.store(freshKeyspace());
    const { jwks } = await store.ensureKeys();
    const oldToken = await idToken(buildProvider(jwks), 'rs-app');
    await store.promote((await store.introduce('RSA')).kid);

    const rotated = buildProvider(await store.providerJwks());
    const client = await rotated.Client.find('rs-app');
    await expect(rotated.IdToken.validate(oldToken, client!)).resolves.toBeDefined();

    await store.remove(kidOf(oldToken)!);
    const removed = buildProvider(await store.providerJwks());
    await expect(removed.IdToken.validate(oldToken, (await removed.Client.find('rs-app'))!)).rejects.toThrow();
  });
});

describe('rotation across two instances sharing Redis', () => {
  test('following the procedure, tokens from either instance verify at the other at every step', async () => {
    const keyspace = freshKeyspace();
    const storeA = await instances.store(keyspace);
    const storeB = await instances.store(keyspace);
    let providerA = buildProvider((await storeA.ensureKeys()).jwks);
    const startB = await storeB.ensureKeys();
    let providerB = buildProvider(startB.jwks);
    let reloadsB = 0;
    const stopB = startKeyWatcher(
      storeB,
      20,
      (jwks) => {
        providerB = buildProvider(jwks);
        reloadsB++;
      },
      { since: startB.version },
    );

    try {
      const oldKid = await currentKid(storeA, 'RSA');
      const beforeRotation = await idToken(providerA, 'rs-app');

      // 1. introduce, then wait until the other instance has reloaded.
      const next = await storeA.introduce('RSA');
      providerA = buildProvider(await storeA.providerJwks());
      await waitUntil(() => reloadsB >= 1);
      expect((await publishedJwks(providerB)).keys.map((k) => k.kid)).toContain(next.kid);

      // Stop B's reloads to model an instance that has not yet noticed the promotion.
      stopB();

      // 2. promote on A: A signs with the new key at once, B still signs with the old one.
      await storeA.promote(next.kid);
      providerA = buildProvider(await storeA.providerJwks());
      const fromA = await idToken(providerA, 'rs-app');
      const fromLaggingB = await idToken(providerB, 'rs-app');
      expect(kidOf(fromA)).toBe(next.kid);
      expect(kidOf(fromLaggingB)).toBe(oldKid);

      expect(await verifiesAgainst(fromA, providerB)).toBe(true);
      expect(await verifiesAgainst(fromLaggingB, providerA)).toBe(true);
      expect(await verifiesAgainst(beforeRotation, providerA)).toBe(true);

      // B catches up: it now signs with the new key too and still publishes the retired one.
      providerB = buildProvider(await storeB.providerJwks());
      expect(kidOf(await idToken(providerB, 'rs-app'))).toBe(next.kid);
      expect(await verifiesAgainst(beforeRotation, providerB)).toBe(true);

      // 3. after the longest token lifetime, remove: old tokens stop verifying, new ones still do.
      await storeA.remove(oldKid);
      providerA = buildProvider(await storeA.providerJwks());
      providerB = buildProvider(await storeB.providerJwks());
      expect(await verifiesAgainst(beforeRotation, providerA)).toBe(false);
      expect(await verifiesAgainst(beforeRotation, providerB)).toBe(false);
      expect(await verifiesAgainst(fromA, providerB)).toBe(true);
    } finally {
      stopB();
    }
  });

  test('promoting before the other instance reloaded breaks verification there (why the procedure waits)', async () => {
    const keyspace = freshKeyspace();
    const storeA = await instances.store(keyspace);
    const storeB = await instances.store(keyspace);
    await storeA.ensureKeys();
    const providerB = buildProvider((await storeB.ensureKeys()).jwks); // never reloads

    await storeA.promote((await storeA.introduce('RSA')).kid);
    const providerA = buildProvider(await storeA.providerJwks());

    expect(await verifiesAgainst(await idToken(providerA, 'rs-app'), providerB)).toBe(false);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
