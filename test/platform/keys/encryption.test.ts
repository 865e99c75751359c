import type { JWK } from 'jose';
import { expectKeyStoreError, freshKeyspace, Instances, PRIVATE_MEMBERS } from './support.js';
import type { Keyspace } from '../../../src/platform/redis/keyspace.js';

const instances = new Instances();
afterAll(() => instances.closeAll());

const secret = 'correct horse battery staple, long enough';
const otherSecret = 'a completely different secret of 32+ chars';

async function rawRecords(keyspace: Keyspace): Promise<Record<string, string>> {
  return (await instances.redis()).hgetall(keyspace.signingKeys());
}

function privateValues(jwks: { keys: JWK[] }): string[] {
  return jwks.keys.flatMap((k) =>
    PRIVATE_MEMBERS.map((m) => (k as Record<string, unknown>)[m]).filter((v): v is string => typeof v === 'string'),
  );
}

describe('encryption at rest', () => {
  test('with a secret, Redis holds no private key parameters', async () => {
    const keyspace = freshKeyspace();
    const { jwks, keys } = await (await instances.store(keyspace, secret)).ensureKeys();
    expect(keys.every((k) => k.encrypted)).toBe(true);

    const raw = await rawRecords(keyspace);
    expect(Object.keys(raw).sort()).toEqual(keys.map((k) => k.kid).sort());
    const secrets = privateValues(jwks);
    expect(secrets.length).toBeGreaterThanOrEqual(7); // RSA d p q dp dq qi + EC d
    for (const value of Object.values(raw)) {
      expect(value).not.toMatch(/"(d|p|q|dp|dq|qi)"\s*:/);
      for (const s of secrets) expect(value).not.toContain(s);
      expect(JSON.parse(value).key.enc).toBe('A256GCM');
    }
  });

  test('without a secret, keys are stored as plain JWKs (the contrast that makes the test above meaningful)', async () => {
    const keyspace = freshKeyspace();
    const { jwks } = await (await instances.store(keyspace)).ensureKeys();
    const raw = Object.values(await rawRecords(keyspace)).join('\n');
    for (const s of privateValues(jwks)) expect(raw).toContain(s);
  });

  test('the wrong secret fails start-up clearly, without key material in the error, and generates nothing', async () => {
    const keyspace = freshKeyspace();
    const { jwks, version } = await (await instances.store(keyspace, secret)).ensureKeys();
    const wrong = await instances.store(keyspace, otherSecret);

    const err = await expectKeyStoreError(wrong.ensureKeys(), 'wrong-secret');
    for (const s of privateValues(jwks)) expect(err.message).not.toContain(s);
    await expectKeyStoreError(wrong.load(), 'wrong-secret');
    await expectKeyStoreError(wrong.introduce('RSA'), 'wrong-secret');
    expect(await wrong.version()).toBe(version);
  });

  test('encrypted keys without a secret fail start-up; listing status still works', async () => {
    const keyspace = freshKeyspace();
    const { keys } = await (await instances.store(keyspace, secret)).ensureKeys();
    const noSecret = await instances.store(keyspace);

    await expectKeyStoreError(noSecret.ensureKeys(), 'secret-missing');
    expect((await noSecret.list()).keys.map((k) => k.kid).sort()).toEqual(keys.map((k) => k.kid).sort());
  });

  test('a secret configured while keys are stored in plaintext fails start-up instead of replacing the keys', async () => {
    const keyspace = freshKeyspace();
    const { version } = await (await instances.store(keyspace)).ensureKeys();
    const before = await rawRecords(keyspace);

    const err = await expectKeyStoreError((await instances.store(keyspace, secret)).ensureKeys(), 'plaintext-keys');
    expect(err.message).toMatch(/unencrypted.*keyEncryptionSecret/);
    expect(await rawRecords(keyspace)).toEqual(before);
    expect(await (await instances.store(keyspace)).version()).toBe(version);
  });

  test('reencrypt introduces, changes and removes the secret without changing the keys', async () => {
    const keyspace = freshKeyspace();
    const plain = await instances.store(keyspace);
    const original = await plain.ensureKeys();

    expect(await plain.reencrypt(secret)).toBe(2);
    const withSecret = await (await instances.store(keyspace, secret)).load();
    expect(withSecret.jwks).toEqual(original.jwks);
    expect(withSecret.version).toBe(original.version + 1);
    await expectKeyStoreError((await instances.store(keyspace)).load(), 'secret-missing');

    // The store that re-encrypted now uses the new secret for its own later writes.
    const introduced = await plain.introduce('EC');
    expect(introduced.encrypted).toBe(true);

    const rotating = await instances.store(keyspace, secret);
    await rotating.reencrypt(otherSecret);
    await expectKeyStoreError((await instances.store(keyspace, secret)).load(), 'wrong-secret');
    const underOther = await (await instances.store(keyspace, otherSecret)).load();
    expect(underOther.keys).toHaveLength(3);

    await (await instances.store(keyspace, otherSecret)).reencrypt(undefined);
    const back = await (await instances.store(keyspace)).load();
    expect(back.jwks.keys.filter((k) => k.kid !== introduced.kid)).toEqual(original.jwks.keys);
  });

  test('a ciphertext moved onto another key record does not decrypt', async () => {
    const keyspace = freshKeyspace();
    const { keys } = await (await instances.store(keyspace, secret)).ensureKeys();
    const raw = await rawRecords(keyspace);
    const [a, b] = keys.map((k) => k.kid) as [string, string];
    const recordA = JSON.parse(raw[a]!);
    recordA.key = JSON.parse(raw[b]!).key;
    await (await instances.redis()).hset(keyspace.signingKeys(), a, JSON.stringify(recordA));

    await expectKeyStoreError((await instances.store(keyspace, secret)).load(), 'wrong-secret');
  });

  test('a plaintext record whose key does not match its kid is rejected', async () => {
    const keyspace = freshKeyspace();
    const { keys } = await (await instances.store(keyspace)).ensureKeys();
    const raw = await rawRecords(keyspace);
    const rsa = keys.find((k) => k.kty === 'RSA')!.kid;
    const record = JSON.parse(raw[rsa]!);
    record.key.jwk.n = record.key.jwk.n.replace(/^./, (c: string) => (c === 'A' ? 'B' : 'A'));
    await (await instances.redis()).hset(keyspace.signingKeys(), rsa, JSON.stringify(record));

    const err = await expectKeyStoreError((await instances.store(keyspace)).load(), 'corrupt');
    expect(err.message).not.toContain(record.key.jwk.d);
  });

  test('a short secret is refused', async () => {
    await expectKeyStoreError(instances.store(freshKeyspace(), 'too short'), 'invalid-secret');
  });
});
