import { randomUUID } from 'node:crypto';
import { generate } from 'otplib';
import { loadConfig } from '../../../../src/platform/config/load.js';
import { connectRedis, createRedis, type RedisClient } from '../../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../../src/platform/redis/keyspace.js';
import { LoginLockout } from '../../../../src/records/directory/lockout.js';
import { FactorError, MAX_FACTORS, SecondFactors, type VerifyOutcome } from '../../../../src/records/directory/factors/second-factors.js';
import { SoftAuthenticator } from './soft-authenticator.js';

/*
 * Second factors against a real Redis with real crypto: TOTP codes computed here with otplib,
 * WebAuthn answered by a software authenticator (soft-authenticator.ts). Every attack the module
 * must refuse is one test: reused and earlier codes, races, another origin, RP ID, binding or
 * user, replayed challenges, missing user verification, cloned keys, and the shared lock-out.
 */

const RP = { id: 'authz.example.org', origin: 'https://authz.example.org' };
const SECRET = 'a key encryption secret of at least 32 characters';
const MAX_FAILURES = 3;
const config = loadConfig({ REDIS_URL: process.env.REDIS_URL! });

let redis: RedisClient;
let keyspace: Keyspace;
let lockout: LoginLockout;
let factors: SecondFactors;
let user: string;

beforeAll(async () => {
  redis = createRedis(config.redis);
  await connectRedis(redis);
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  keyspace = new Keyspace(`test-mfa-${randomUUID().slice(0, 8)}:`);
  lockout = new LoginLockout(redis, keyspace, { maxFailuresPerAccount: MAX_FAILURES, lockoutSeconds: 60 });
  factors = new SecondFactors(redis, keyspace, lockout, {
    rpId: RP.id,
    rpName: 'Example authorization server',
    origin: RP.origin,
    totpIssuer: 'Example Health',
    recoveryCodes: 10,
    encryptionSecret: SECRET,
  });
  user = randomUUID();
});

const now = () => Math.floor(Date.now() / 1000);
const codeAt = (secret: string, offsetSteps: number) => generate({ secret, epoch: now() + offsetSteps * 30 });
const person = { userName: 'dr.who', displayName: 'Dr Who' };

/** An enrolled TOTP app; the confirming code is from the previous step, so the current step is still free. */
async function enrolTotp(userId = user): Promise<{ secret: string; id: string }> {
  const { secret } = await factors.beginTotp(userId, 'dr.who@example.org');
  const summary = await factors.confirmTotp(userId, await codeAt(secret, -1), 'Phone');
  expect(summary).toBeDefined();
  return { secret, id: summary!.id };
}

async function enrolKey(auth: SoftAuthenticator, userId = user, label?: string) {
  const options = await factors.registrationOptions(userId, person, 'manage-1');
  return factors.verifyRegistration(userId, auth.register(options), 'manage-1', label);
}

async function thrown(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

describe('TOTP', () => {
  test('enrolment: Key Uri Format URI, an SVG QR code, the secret sealed at rest', async () => {
    const begun = await factors.beginTotp(user, 'dr.who@example.org');
    expect(begun.secret).toMatch(/^[A-Z2-7]{32}$/); // 20 bytes in base32
    const uri = new URL(begun.otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Example Health:dr.who@example.org');
    expect(uri.searchParams.get('secret')).toBe(begun.secret);
    expect(uri.searchParams.get('issuer')).toBe('Example Health');
    expect(begun.qrSvg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    // Pending and confirmed records hold the secret encrypted only.
    expect(await redis.get(keyspace.mfaTotpPending(user))).not.toContain(begun.secret);
    expect(await factors.confirmTotp(user, '000000')).toBeUndefined();
    const summary = await factors.confirmTotp(user, await codeAt(begun.secret, 0), '  My\u0000 phone  ');
    expect(summary).toMatchObject({ kind: 'totp', label: 'My phone' });
    expect(Object.values(await redis.hgetall(keyspace.mfaFactors(user))).join()).not.toContain(begun.secret);
    expect(await factors.hasAny(user)).toBe(true);
    expect(await factors.list(user)).toEqual([summary]);
    // Confirmed once: nothing is pending any more.
    expect(await factors.confirmTotp(user, await codeAt(begun.secret, 1))).toBeUndefined();
  });

  test('a code is accepted once; the same code, or one of an earlier step, is refused as reused', async () => {
    const { secret, id } = await enrolTotp();
    const current = await codeAt(secret, 0);
    expect(await factors.verify(user, { kind: 'totp', code: current }, 'i-1')).toEqual({
      ok: true,
      kind: 'totp',
      factorId: id,
      amr: ['otp'],
    });
    expect(await factors.verify(user, { kind: 'totp', code: current }, 'i-1')).toEqual({ ok: false, reason: 'reused' });
    // The next step (clock drift, +1) is fine; after it, the current one is refused.
    expect((await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 1) }, 'i-1')).ok).toBe(true);
    expect(await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 0) }, 'i-1')).toMatchObject({ reason: 'reused' });
    expect((await factors.list(user))[0]!.lastUsedAt).toBeDefined();
  });

  test('two steps away is outside the ±1 step window', async () => {
    const { secret } = await enrolTotp();
    expect(await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 3) }, 'i-1')).toEqual({ ok: false, reason: 'invalid' });
  });

  test('concurrent verifications of one code: exactly one succeeds', async () => {
    const { secret } = await enrolTotp();
    await lockout.clear(user);
    const big = new SecondFactors(redis, keyspace, new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 50, lockoutSeconds: 60 }), {
      rpId: RP.id,
      rpName: 'x',
      origin: RP.origin,
      totpIssuer: 'x',
      recoveryCodes: 4,
      encryptionSecret: SECRET,
    });
    const code = await codeAt(secret, 0);
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => big.verify(user, { kind: 'totp', code }, 'i-1')));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok).map((o) => (o as { reason: string }).reason)).toEqual(Array(7).fill('reused'));
  });

  test('wrong codes count toward the lock-out; once locked, even a right code is not checked', async () => {
    const { secret } = await enrolTotp();
    const outcomes: VerifyOutcome[] = [];
    for (let i = 0; i < MAX_FAILURES; i++) outcomes.push(await factors.verify(user, { kind: 'totp', code: 'abc' }, 'i-1'));
    expect(outcomes.map((o) => !o.ok && o.reason)).toEqual(['invalid', 'invalid', 'invalid']);
    expect(outcomes.map((o) => !o.ok && o.lockedNow === true)).toEqual([false, false, true]);
    const locked = await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 0) }, 'i-1');
    expect(locked).toMatchObject({ ok: false, reason: 'locked' });
    expect((locked as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(0);
    // The administrator's unlock (SCIM locked:false, `users unlock`) clears it.
    await lockout.clear(user);
    expect((await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 0) }, 'i-1')).ok).toBe(true);
  });

  test('a reused code is a failure too, and wrong passwords and second factors share one limit', async () => {
    const { secret } = await enrolTotp();
    const code = await codeAt(secret, 0);
    expect((await factors.verify(user, { kind: 'totp', code }, 'i-1')).ok).toBe(true);
    const password = await lockout.reserve(user);
    expect(await password!.failed()).toBe(false);
    expect(await factors.verify(user, { kind: 'totp', code }, 'i-1')).toEqual({ ok: false, reason: 'reused' });
    expect(await factors.verify(user, { kind: 'totp', code: '123456' }, 'i-1')).toMatchObject({ reason: 'invalid', lockedNow: true });
    expect(await lockout.isLocked(user)).toBe(true);
  });

  test('no TOTP enrolled: no_factor, which takes nothing from the lock-out', async () => {
    for (let i = 0; i < MAX_FAILURES + 1; i++)
      expect(await factors.verify(user, { kind: 'totp', code: '123456' }, 'i-1')).toEqual({ ok: false, reason: 'no_factor' });
    expect(await lockout.isLocked(user)).toBe(false);
  });

  test('a secret stored before keyEncryptionSecret was configured is still read; one sealed under another secret is not', async () => {
    const plain = new SecondFactors(redis, keyspace, lockout, {
      rpId: RP.id,
      rpName: 'x',
      origin: RP.origin,
      totpIssuer: 'x',
      recoveryCodes: 4,
    });
    const { secret } = await plain.beginTotp(user, 'a');
    await plain.confirmTotp(user, await codeAt(secret, -1));
    expect(Object.values(await redis.hgetall(keyspace.mfaFactors(user))).join()).toContain(secret);
    expect((await factors.verify(user, { kind: 'totp', code: await codeAt(secret, 0) }, 'i')).ok).toBe(true);

    const other = randomUUID();
    const { secret: sealed } = await factors.beginTotp(other, 'b');
    await factors.confirmTotp(other, await codeAt(sealed, -1));
    const wrong = new SecondFactors(redis, keyspace, lockout, {
      rpId: RP.id,
      rpName: 'x',
      origin: RP.origin,
      totpIssuer: 'x',
      recoveryCodes: 4,
      encryptionSecret: 'another secret that is also 32 characters',
    });
    await expect(wrong.verify(other, { kind: 'totp', code: await codeAt(sealed, 0) }, 'i')).rejects.toThrow(/keyEncryptionSecret/);
  });
});

describe('WebAuthn', () => {
  test('registration: UV required, no attestation, ES256/RS256/EdDSA only, excludeCredentials; the key is stored as hwk', async () => {
    const auth = new SoftAuthenticator(RP);
    const options = await factors.registrationOptions(user, person, 'manage-1');
    expect(options.rp).toEqual({ id: RP.id, name: 'Example authorization server' });
    expect(options.authenticatorSelection?.userVerification).toBe('required');
    expect(options.attestation).toBe('none');
    expect(options.pubKeyCredParams.map((p) => p.alg).sort((a, b) => a - b)).toEqual([-257, -8, -7]);
    expect(Buffer.from(options.user.id, 'base64url').toString()).toBe(user);
    const summary = await factors.verifyRegistration(user, auth.register(options), 'manage-1', 'Blue key');
    expect(summary).toMatchObject({ kind: 'webauthn', label: 'Blue key', keyType: 'hwk' });
    const again = await factors.registrationOptions(user, person, 'manage-1');
    expect(again.excludeCredentials?.map((c) => c.id)).toEqual([auth.id]);
    // The same authenticator once more (a browser ignoring excludeCredentials) is refused.
    const error = await thrown(factors.verifyRegistration(user, auth.register(again), 'manage-1'));
    expect(error).toBeInstanceOf(FactorError);
    expect(error.message).toMatch(/already registered/);
  });

  test('a synced passkey is stored as swk and signs in with amr swk', async () => {
    const auth = new SoftAuthenticator(RP, { synced: true });
    const summary = await enrolKey(auth);
    expect(summary).toMatchObject({ keyType: 'swk', label: 'Passkey' });
    const options = await factors.authenticationOptions(user, 'i-1');
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(options) }, 'i-1')).toEqual({
      ok: true,
      kind: 'webauthn',
      factorId: summary.id,
      amr: ['swk'],
    });
  });

  test('authentication: allowCredentials of this user only, UV required, amr hwk; counter and last use stored', async () => {
    const auth = new SoftAuthenticator(RP);
    const key = await enrolKey(auth);
    const options = await factors.authenticationOptions(user, 'i-1');
    expect(options.rpId).toBe(RP.id);
    expect(options.userVerification).toBe('required');
    expect(options.allowCredentials?.map((c) => c.id)).toEqual([auth.id]);
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(options) }, 'i-1')).toEqual({
      ok: true,
      kind: 'webauthn',
      factorId: key.id,
      amr: ['hwk'],
    });
    expect(await redis.hget(keyspace.mfaUsage(user), `counter:${key.id}`)).toBe('1');
    expect((await factors.list(user))[0]!.lastUsedAt).toBeDefined();
  });

  test('refused: another origin, another RP ID, no user verification, a registration answer', async () => {
    const auth = new SoftAuthenticator(RP);
    await enrolKey(auth);
    for (const bend of [
      { origin: 'http://evil.example' },
      { origin: 'https://authz.example.org.evil.example' },
      { rpId: 'evil.example' },
      { noUserVerification: true },
      { type: 'webauthn.create' },
    ]) {
      const options = await factors.authenticationOptions(user, 'i-1');
      expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(options, bend) }, 'i-1')).toMatchObject({
        ok: false,
        reason: 'invalid',
      });
      await lockout.clear(user);
    }
  });

  test('registration refused for another origin, another RP ID, or without user verification', async () => {
    for (const bend of [
      { origin: 'http://evil.example' },
      { rpId: 'evil.example' },
      { noUserVerification: true },
      { type: 'webauthn.get' },
    ]) {
      const auth = new SoftAuthenticator(RP);
      const options = await factors.registrationOptions(user, person, 'manage-1');
      expect(await thrown(factors.verifyRegistration(user, auth.register(options, bend), 'manage-1'))).toBeInstanceOf(FactorError);
    }
    expect(await factors.hasAny(user)).toBe(false);
  });

  test('a challenge belongs to one binding and one user, and is used once', async () => {
    const auth = new SoftAuthenticator(RP);
    await enrolKey(auth);
    // Asked for under one interaction, presented under another: nothing waits there.
    const forA = await factors.authenticationOptions(user, 'interaction-a');
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(forA) }, 'interaction-b')).toMatchObject({
      reason: 'invalid',
    });
    // Both have challenges: the answer to A's does not fit B's.
    const a = await factors.authenticationOptions(user, 'interaction-a');
    await factors.authenticationOptions(user, 'interaction-b');
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(a) }, 'interaction-b')).toMatchObject({
      reason: 'invalid',
    });
    // Replay: the first use succeeds, the same assertion again finds no challenge.
    const c = await factors.authenticationOptions(user, 'interaction-c');
    const assertion = auth.assert(c);
    expect((await factors.verify(user, { kind: 'webauthn', response: assertion }, 'interaction-c')).ok).toBe(true);
    expect(await factors.verify(user, { kind: 'webauthn', response: assertion }, 'interaction-c')).toMatchObject({ reason: 'invalid' });
    // Another user's challenge and binding: this key is not theirs.
    const other = randomUUID();
    await enrolKey(new SoftAuthenticator(RP), other);
    const theirs = await factors.authenticationOptions(other, 'interaction-d');
    expect(await factors.verify(other, { kind: 'webauthn', response: auth.assert(theirs) }, 'interaction-d')).toMatchObject({
      reason: 'invalid',
    });
    // A registration challenge does not serve a sign-in.
    const reg = await factors.registrationOptions(user, person, 'interaction-e');
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(reg) }, 'interaction-e')).toMatchObject({
      reason: 'invalid',
    });
  });

  test('a signature counter that does not increase (a cloned key) is refused', async () => {
    const auth = new SoftAuthenticator(RP);
    await enrolKey(auth);
    const first = await factors.authenticationOptions(user, 'i-1');
    expect((await factors.verify(user, { kind: 'webauthn', response: auth.assert(first, { counter: 5 }) }, 'i-1')).ok).toBe(true);
    for (const counter of [5, 3, 0]) {
      const options = await factors.authenticationOptions(user, 'i-1');
      expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert(options, { counter }) }, 'i-1')).toMatchObject({
        reason: 'invalid',
      });
    }
    await lockout.clear(user); // three refusals locked the account
    const later = await factors.authenticationOptions(user, 'i-1');
    expect((await factors.verify(user, { kind: 'webauthn', response: auth.assert(later, { counter: 6 }) }, 'i-1')).ok).toBe(true);
  });

  test('a key that never counts (counter always 0, as many passkeys) keeps working', async () => {
    const auth = new SoftAuthenticator(RP, { synced: true });
    await enrolKey(auth);
    for (let i = 0; i < 2; i++) {
      const options = await factors.authenticationOptions(user, 'i-1');
      expect((await factors.verify(user, { kind: 'webauthn', response: auth.assert(options, { counter: 0 }) }, 'i-1')).ok).toBe(true);
    }
  });

  test('garbage instead of an assertion is a failure, not an error', async () => {
    await enrolKey(new SoftAuthenticator(RP));
    await factors.authenticationOptions(user, 'i-1');
    const garbage = { id: 'x', response: 'nope' } as unknown as Parameters<SecondFactors['verify']>[1] & { kind: 'webauthn' };
    expect(await factors.verify(user, { ...garbage, kind: 'webauthn' }, 'i-1')).toMatchObject({ reason: 'invalid' });
    expect(await factors.verify(user, null as unknown as Parameters<SecondFactors['verify']>[1], 'i-1')).toMatchObject({
      reason: 'invalid',
    });
  });

  test('nothing registered: no authentication options, and no_factor', async () => {
    expect(await thrown(factors.authenticationOptions(user, 'i-1'))).toBeInstanceOf(FactorError);
    const auth = new SoftAuthenticator(RP);
    expect(await factors.verify(user, { kind: 'webauthn', response: auth.assert({ challenge: 'x' }) }, 'i-1')).toEqual({
      ok: false,
      reason: 'no_factor',
    });
  });

  test(`at most ${MAX_FACTORS} factors`, async () => {
    for (let i = 0; i < MAX_FACTORS; i++) await enrolKey(new SoftAuthenticator(RP));
    expect(await thrown(factors.registrationOptions(user, person, 'manage-1'))).toBeInstanceOf(FactorError);
  });
});

describe('recovery codes', () => {
  test('readable, 50 bits, stored only as hashes, each accepted once (any case, with or without the hyphen)', async () => {
    const codes = await factors.newRecoveryCodes(user);
    expect(codes).toHaveLength(10);
    for (const c of codes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/);
    expect(new Set(codes).size).toBe(10);
    const stored = await redis.smembers(keyspace.mfaRecoveryCodes(user));
    for (const c of codes) expect(stored.join()).not.toContain(c.replace('-', ''));
    expect(await factors.recoveryCodesLeft(user)).toBe(10);
    expect(await factors.hasAny(user)).toBe(false); // recovery codes alone are no second factor

    expect(await factors.verify(user, { kind: 'recovery', code: codes[0]!.toUpperCase().replace('-', ' ') }, 'i-1')).toEqual({
      ok: true,
      kind: 'recovery',
      factorId: 'recovery',
      amr: ['otp'],
    });
    expect(await factors.verify(user, { kind: 'recovery', code: codes[0]! }, 'i-1')).toEqual({ ok: false, reason: 'invalid' });
    expect(await factors.recoveryCodesLeft(user)).toBe(9);
  });

  test('one code presented by many requests at once is accepted once', async () => {
    const [code] = await factors.newRecoveryCodes(user);
    const roomy = new SecondFactors(redis, keyspace, new LoginLockout(redis, keyspace, { maxFailuresPerAccount: 50, lockoutSeconds: 60 }), {
      rpId: RP.id,
      rpName: 'x',
      origin: RP.origin,
      totpIssuer: 'x',
      recoveryCodes: 4,
    });
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => roomy.verify(user, { kind: 'recovery', code: code! }, 'i-1')));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
  });

  test('new codes replace the old ones', async () => {
    const old = await factors.newRecoveryCodes(user);
    await factors.newRecoveryCodes(user);
    expect(await factors.verify(user, { kind: 'recovery', code: old[1]! }, 'i-1')).toMatchObject({ reason: 'invalid' });
    expect(await factors.recoveryCodesLeft(user)).toBe(10);
  });
});

describe('removal and reset', () => {
  test('remove one factor', async () => {
    const { id } = await enrolTotp();
    const key = await enrolKey(new SoftAuthenticator(RP));
    expect(await factors.remove(user, id)).toBe('removed');
    expect(await factors.remove(user, id)).toBe('missing');
    expect((await factors.list(user)).map((f) => f.id)).toEqual([key.id]);
  });

  test('keepLast: of many concurrent removals of the only two factors, one succeeds and the last factor stays', async () => {
    const { id } = await enrolTotp();
    const key = await enrolKey(new SoftAuthenticator(RP));
    const before = (await factors.list(user)).map((f) => f.id);
    expect(before).toHaveLength(2);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => factors.remove(user, i % 2 ? id : key.id, { keepLast: true })));
    expect(results.filter((r) => r === 'removed')).toHaveLength(1);
    expect(await factors.list(user)).toHaveLength(1);
    const [last] = await factors.list(user);
    expect(await factors.remove(user, last!.id, { keepLast: true })).toBe('last-kept');
  });

  test('with the last factor go the recovery codes', async () => {
    await factors.newRecoveryCodes(user);
    const { id } = await enrolTotp();
    const key = await enrolKey(new SoftAuthenticator(RP));
    expect(await factors.remove(user, id)).toBe('removed');
    expect(await factors.recoveryCodesLeft(user)).toBeGreaterThan(0);
    expect(await factors.remove(user, key.id)).toBe('removed');
    expect(await factors.recoveryCodesLeft(user)).toBe(0);
  });

  test('reset removes every factor, the pending enrolment and the recovery codes; earlier challenges stop working', async () => {
    const auth = new SoftAuthenticator(RP);
    await enrolTotp();
    await enrolKey(auth);
    await factors.newRecoveryCodes(user);
    const pending = await factors.beginTotp(user, 'again');
    const registration = await factors.registrationOptions(user, person, 'manage-2');
    expect(await factors.reset(user)).toEqual({ factors: 2, recoveryCodes: 10 });
    expect(await factors.list(user)).toEqual([]);
    expect(await factors.hasAny(user)).toBe(false);
    expect(await factors.recoveryCodesLeft(user)).toBe(0);
    expect(await factors.confirmTotp(user, await codeAt(pending.secret, 0))).toBeUndefined();
    // A registration begun before the reset cannot finish after it.
    expect(await thrown(factors.verifyRegistration(user, new SoftAuthenticator(RP).register(registration), 'manage-2'))).toBeInstanceOf(
      FactorError,
    );
    // After the reset the user can enrol again.
    await enrolKey(auth);
    expect(await factors.hasAny(user)).toBe(true);
  });

  test("forget leaves none of the user's keys behind", async () => {
    await enrolTotp();
    await enrolKey(new SoftAuthenticator(RP));
    await factors.newRecoveryCodes(user);
    await factors.reset(user);
    await factors.forget(user);
    expect(await redis.keys(`${keyspace.prefix}*`)).toEqual([]);
  });

  test('every key of a user is under the one {mfa:<id>} hash tag (one Cluster slot per script)', () => {
    const keys = [
      keyspace.mfaFactors(user),
      keyspace.mfaUsage(user),
      keyspace.mfaTotpStep(user),
      keyspace.mfaTotpPending(user),
      keyspace.mfaRecoveryCodes(user),
      keyspace.mfaChallenge(user, 'digest'),
      keyspace.mfaGeneration(user),
    ];
    for (const k of keys) expect(/\{([^}]*)\}/.exec(k)?.[1]).toBe(`mfa:${user}`);
  });
});
