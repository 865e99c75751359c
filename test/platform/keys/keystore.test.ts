import { createPrivateKey } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { KeyStore } from '../../../src/platform/keys/keystore.js';
import { expectKeyStoreError, freshKeyspace, Instances } from './support.js';

const instances = new Instances();
afterAll(() => instances.closeAll());

function byKid(jwks: { keys: JWK[] }): Map<string, JWK> {
  return new Map(jwks.keys.map((k) => [k.kid!, k]));
}

function currentKid(keys: Array<{ kid: string; kty: string; status: string }>, kty: 'RSA' | 'EC'): string {
  const current = keys.filter((k) => k.kty === kty && k.status === 'current');
  expect(current).toHaveLength(1);
  return current[0]!.kid;
}

describe('first start and restart', () => {
  test('first start generates one current RSA-2048 and one current EC P-384 key, with thumbprint kids', async () => {
    const store = await instances.store(freshKeyspace());
    const result = await store.ensureKeys();

    expect(result.created.map((k) => k.kty).sort()).toEqual(['EC', 'RSA']);
    expect(result.keys.every((k) => k.status === 'current' && !k.encrypted)).toBe(true);
    expect(result.version).toBe(1);

    const jwks = byKid(result.jwks);
    expect(jwks.size).toBe(2);
    for (const [kid, jwk] of jwks) {
      expect(await calculateJwkThumbprint(jwk, 'sha256')).toBe(kid);
      expect(jwk.use).toBe('sig');
      expect(jwk.key_ops).toBeUndefined();
    }
    const rsa = jwks.get(currentKid(result.keys, 'RSA'))!;
    expect(createPrivateKey({ key: rsa as never, format: 'jwk' }).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(rsa.alg).toBeUndefined();
    const ec = jwks.get(currentKid(result.keys, 'EC'))!;
    expect(ec).toMatchObject({ kty: 'EC', crv: 'P-384', alg: 'ES384' });
  });

  test('keys persist: a restarted instance and a second instance load the same private keys and create none', async () => {
    const keyspace = freshKeyspace();
    const firstRedis = await instances.redis();
    const first = await new KeyStore(firstRedis, keyspace).ensureKeys();
    await firstRedis.quit();

    const restarted = await (await instances.store(keyspace)).ensureKeys();
    const second = await (await instances.store(keyspace)).ensureKeys();

    for (const again of [restarted, second]) {
      expect(again.created).toEqual([]);
      expect(again.version).toBe(first.version);
      expect(again.jwks).toEqual(first.jwks);
    }
  });

  test('instances starting at the same moment end with one keyset', async () => {
    for (let round = 0; round < 3; round++) {
      const keyspace = freshKeyspace();
      const stores = await Promise.all([1, 2, 3, 4].map(() => instances.store(keyspace)));
      const results = await Promise.all(stores.map((s) => s.ensureKeys()));

      const kidSets = results.map((r) =>
        r.keys
          .map((k) => k.kid)
          .sort()
          .join(),
      );
      expect(new Set(kidSets).size).toBe(1);
      expect(results.flatMap((r) => r.created)).toHaveLength(2);
      const { keys } = await stores[0]!.list();
      expect(keys).toHaveLength(2);
    }
  });

  test('a keyset missing one type gets only that type added', async () => {
    const keyspace = freshKeyspace();
    const store = await instances.store(keyspace);
    const { keys } = await store.ensureKeys();
    const ecKid = currentKid(keys, 'EC');
    const redis = await instances.redis();
    await redis.hdel(keyspace.signingKeys(), ecKid);

    const repaired = await store.ensureKeys();
    expect(repaired.created.map((k) => k.kty)).toEqual(['EC']);
    expect(currentKid(repaired.keys, 'RSA')).toBe(currentKid(keys, 'RSA'));
  });
});

describe('rotation', () => {
  test('introduce → promote → remove changes the published keys, which key may sign, and the version', async () => {
    const keyspace = freshKeyspace();
    const store = await instances.store(keyspace);
    const start = await store.ensureKeys();
    const oldRsa = currentKid(start.keys, 'RSA');
    const ec = currentKid(start.keys, 'EC');

    const next = await store.introduce('RSA');
    expect(next).toMatchObject({ kty: 'RSA', status: 'next' });
    let loaded = await store.load();
    expect(loaded.version).toBe(start.version + 1);
    let jwks = byKid(loaded.jwks);
    expect([...jwks.keys()].sort()).toEqual([oldRsa, ec, next.kid].sort());
    expect(jwks.get(next.kid)!.key_ops).toEqual(['verify']);
    expect(jwks.get(oldRsa)!.key_ops).toBeUndefined();
    expect(loaded.jwks.keys[0]!.key_ops).toBeUndefined(); // current keys come first

    const { promoted, retired } = await store.promote(next.kid);
    expect(promoted).toMatchObject({ kid: next.kid, status: 'current' });
    expect(promoted.promotedAt).toEqual(expect.any(String));
    expect(retired).toEqual([expect.objectContaining({ kid: oldRsa, status: 'retired', retiredAt: promoted.promotedAt })]);
    loaded = await store.load();
    expect(loaded.version).toBe(start.version + 2);
    jwks = byKid(loaded.jwks);
    expect(jwks.get(next.kid)!.key_ops).toBeUndefined();
    expect(jwks.get(oldRsa)!.key_ops).toEqual(['verify']);
    expect(jwks.get(ec)!.key_ops).toBeUndefined();

    await store.remove(oldRsa);
    loaded = await store.load();
    expect(loaded.version).toBe(start.version + 3);
    expect([...byKid(loaded.jwks).keys()].sort()).toEqual([ec, next.kid].sort());
  });

  test('steps out of order are refused and change nothing', async () => {
    const store = await instances.store(freshKeyspace());
    const start = await store.ensureKeys();
    const rsa = currentKid(start.keys, 'RSA');
    const next = await store.introduce('EC');
    const version = await store.version();

    expect((await expectKeyStoreError(store.introduce('EC'), 'invalid-transition')).message).toContain(next.kid);
    await expectKeyStoreError(store.promote(rsa), 'invalid-transition');
    await expectKeyStoreError(store.remove(rsa), 'invalid-transition');
    await expectKeyStoreError(store.promote('no-such-kid'), 'not-found');
    await expectKeyStoreError(store.remove('no-such-kid'), 'not-found');
    expect(await store.version()).toBe(version);

    const { retired } = await store.promote(next.kid);
    await expectKeyStoreError(store.promote(retired[0]!.kid), 'invalid-transition');

    // A next key that never signed may be abandoned.
    const abandoned = await store.introduce('RSA');
    await store.remove(abandoned.kid);
    expect((await store.list()).keys.map((k) => k.kid)).not.toContain(abandoned.kid);
  });

  test('two instances doing the same step at once: exactly one succeeds', async () => {
    const keyspace = freshKeyspace();
    const a = await instances.store(keyspace);
    const b = await instances.store(keyspace);
    await a.ensureKeys();

    const introduced = await Promise.allSettled([a.introduce('RSA'), b.introduce('RSA')]);
    expect(introduced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const nextKeys = (await a.list()).keys.filter((k) => k.status === 'next');
    expect(nextKeys).toHaveLength(1);

    const promoted = await Promise.allSettled([a.promote(nextKeys[0]!.kid), b.promote(nextKeys[0]!.kid)]);
    expect(promoted.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const after = (await b.list()).keys;
    expect(after.filter((k) => k.kty === 'RSA' && k.status === 'current').map((k) => k.kid)).toEqual([nextKeys[0]!.kid]);
    expect(after.filter((k) => k.status === 'retired')).toHaveLength(1);
  });
});
