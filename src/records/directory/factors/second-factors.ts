import { hash, randomUUID } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Config } from '../../../platform/config/schema.js';
import type { SealedKey } from '../../../platform/keys/encryption.js';
import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import type { LoginLockout } from '../lockout.js';
import { factorScripts, type FactorScripts } from './factor-scripts.js';
import { newRecoveryCode, normaliseRecoveryCode, recoveryCodeHash } from './recovery-codes.js';
import { newTotpSecret, normaliseTotpCode, sealTotpSecret, totpQrSvg, totpStepOf, totpUri, unsealTotpSecret } from './totp.js';
import {
  FactorError,
  type FactorSnapshot,
  type FactorSummary,
  type SecondFactorSettings,
  type StoredFactor,
  type StoredTotp,
  type StoredWebAuthn,
  type VerifyAttempt,
  type VerifyOutcome,
} from './types.js';
import { CHALLENGE_SECONDS, authenticationOptionsFor, checkAssertion, checkRegistration, registrationOptionsFor } from './webauthn.js';

export {
  FactorError,
  type FactorSnapshot,
  type FactorSummary,
  type SecondFactorSettings,
  type VerifyAttempt,
  type VerifyOutcome,
} from './types.js';

/**
 * A user's second factors: TOTP apps, WebAuthn keys and passkeys, and one-time recovery codes,
 * kept in Redis under the user's `{mfa:<id>}` keys (Keyspace). Enrolment is two steps for both
 * kinds (a pending TOTP secret confirmed with a code; a WebAuthn challenge answered by the
 * authenticator), and every challenge belongs to one binding (an interaction, a management
 * session) and is used once.
 *
 * `verify` is a sign-in check like the password's: it takes a slot of the account's LoginLockout
 * first, so wrong codes, wrong assertions and wrong passwords count toward one limit, and an
 * administrator's unlock clears them all. Nothing here logs or returns a secret, a code or an
 * assertion.
 */

/** How long an enrolment waits for its first code. */
const PENDING_TOTP_SECONDS = 600;
/** How long the last accepted TOTP step is kept: far longer than the ±1-step window it guards. */
const STEP_MEMORY_SECONDS = 24 * 3600;
/** Most TOTP and WebAuthn factors one user may have (bounds every per-user scan). */
export const MAX_FACTORS = 20;
const MAX_LABEL = 64;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

type ChallengePurpose = 'register' | 'authenticate';

interface StoredChallenge {
  c: string;
  p: ChallengePurpose;
  /** The user's reset generation when it was handed out. */
  g: string;
}

interface PendingTotp {
  secret: SealedKey;
}

type Check =
  | { ok: true; kind: 'totp' | 'webauthn' | 'recovery'; factorId: string; amr: string[] }
  | { ok: false; reason: 'invalid' | 'reused' | 'no_factor' };

export interface ResetResult {
  factors: number;
  recoveryCodes: number;
}

export class SecondFactors {
  private readonly redis: RedisClient & FactorScripts;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly lockout: LoginLockout,
    private readonly settings: SecondFactorSettings,
  ) {
    this.redis = factorScripts(redis);
  }

  async list(userId: string): Promise<FactorSummary[]> {
    return (await this.snapshot(userId)).factors;
  }

  /** Factors and recovery codes left, in one command (the user directory shows them). */
  async snapshot(userId: string): Promise<FactorSnapshot> {
    const k = this.keyspace;
    const [factorJson, usagePairs, codes] = await this.redis.mfaSnapshot(
      k.mfaFactors(userId),
      k.mfaUsage(userId),
      k.mfaRecoveryCodes(userId),
    );
    const usage = new Map<string, string>();
    for (let i = 0; i + 1 < usagePairs.length; i += 2) usage.set(usagePairs[i]!, usagePairs[i + 1]!);
    const factors = sortFactors(factorJson.map((j) => JSON.parse(j) as StoredFactor)).map((f) => summaryOf(f, usage.get(`used:${f.id}`)));
    return { factors, recoveryCodesLeft: Number(codes) };
  }

  /** TOTP or WebAuthn (recovery codes alone do not count). */
  async hasAny(userId: string): Promise<boolean> {
    return (await this.redis.hlen(this.keyspace.mfaFactors(userId))) > 0;
  }

  // TOTP enrolment

  /** A new secret, pending for 10 minutes until `confirmTotp` proves the app has it; replaces an earlier pending one. */
  async beginTotp(userId: string, accountName: string): Promise<{ secret: string; otpauthUri: string; qrSvg: string }> {
    const secret = newTotpSecret();
    const pending: PendingTotp = { secret: sealTotpSecret(secret, userId, this.settings.encryptionSecret) };
    await this.redis.set(this.keyspace.mfaTotpPending(userId), JSON.stringify(pending), 'EX', PENDING_TOTP_SECONDS);
    const otpauthUri = totpUri(secret, this.settings.totpIssuer, accountName);
    return { secret, otpauthUri, qrSvg: await totpQrSvg(otpauthUri) };
  }

  /** The new factor; undefined for a wrong code, one already used, or nothing pending. The confirming code is used up. */
  async confirmTotp(userId: string, code: string, label?: string): Promise<FactorSummary | undefined> {
    const k = this.keyspace;
    const raw = await this.redis.get(k.mfaTotpPending(userId));
    const digits = normaliseTotpCode(code);
    if (!raw || !digits) return undefined;
    const pending = JSON.parse(raw) as PendingTotp;
    const step = await totpStepOf(unsealTotpSecret(pending.secret, userId, this.settings.encryptionSecret), digits);
    if (step === undefined) return undefined;
    const factor: StoredTotp = {
      id: randomUUID(),
      kind: 'totp',
      label: cleanLabel(label, 'Authenticator app'),
      createdAt: new Date().toISOString(),
      secret: pending.secret,
    };
    const reply = await this.redis.mfaConfirmTotp(
      k.mfaTotpPending(userId),
      k.mfaFactors(userId),
      k.mfaTotpStep(userId),
      raw,
      factor.id,
      JSON.stringify(factor),
      step,
      STEP_MEMORY_SECONDS,
      MAX_FACTORS,
    );
    if (reply === 'full') throw tooMany();
    return reply === 'ok' ? summaryOf(factor) : undefined;
  }

  // WebAuthn enrolment

  async registrationOptions(
    userId: string,
    user: { userName: string; displayName: string },
    binding: string,
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const factors = await this.stored(userId);
    if (factors.length >= MAX_FACTORS) throw tooMany();
    const options = await registrationOptionsFor(this.settings, userId, user, webauthnOf(factors));
    await this.keepChallenge(userId, binding, 'register', options.challenge);
    return options;
  }

  async verifyRegistration(userId: string, response: RegistrationResponseJSON, binding: string, label?: string): Promise<FactorSummary> {
    const challenge = await this.takeChallenge(userId, binding, 'register');
    if (!challenge) throw new FactorError('This registration has expired or was already used. Please start again.');
    if (!isCredentialJson(response)) throw new FactorError('The browser did not send a security key registration. Please try again.');
    const key = await checkRegistration(this.settings, response, challenge);
    const factor: StoredWebAuthn = {
      id: randomUUID(),
      kind: 'webauthn',
      label: cleanLabel(label, key.keyType === 'swk' ? 'Passkey' : 'Security key'),
      createdAt: new Date().toISOString(),
      credentialId: key.credentialId,
      publicKey: key.publicKey,
      ...(key.transports ? { transports: key.transports } : {}),
      keyType: key.keyType,
    };
    const k = this.keyspace;
    const reply = await this.redis.mfaAddWebAuthn(
      k.mfaFactors(userId),
      factor.id,
      JSON.stringify(factor),
      MAX_FACTORS,
      factor.credentialId,
    );
    if (reply === 'duplicate') throw new FactorError('This security key is already registered for your account.');
    if (reply === 'full') throw tooMany();
    if (key.counter > 0) await this.redis.hset(k.mfaUsage(userId), `counter:${factor.id}`, String(key.counter));
    return summaryOf(factor);
  }

  /** Options for `navigator.credentials.get`, allowing only this user's keys; a FactorError when there are none. */
  async authenticationOptions(userId: string, binding: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const keys = webauthnOf(await this.stored(userId));
    if (!keys.length) throw new FactorError('No security key or passkey is registered for this account.');
    const options = await authenticationOptionsFor(this.settings, keys);
    await this.keepChallenge(userId, binding, 'authenticate', options.challenge);
    return options;
  }

  // Sign-in

  /**
   * Checks one second-factor attempt in a lock-out slot: locked → nothing is checked; a wrong or
   * reused code, or an invalid assertion, is a failure (`lockedNow` when it locked the account);
   * success starts the count again. `no_factor` (nothing of that kind to check) gives the slot back.
   */
  async verify(userId: string, attempt: VerifyAttempt, binding: string): Promise<VerifyOutcome> {
    const slot = await this.lockout.reserve(userId);
    if (!slot) {
      const seconds = await this.lockout.secondsLeft(userId);
      return { ok: false, reason: 'locked', ...(seconds > 0 ? { retryAfterSeconds: seconds } : {}) };
    }
    // An exception (Redis gone, a wrong keyEncryptionSecret) leaves the slot taken: it counts as
    // the failure it most likely was, so errors cannot be used to test codes beyond the limit.
    const check = await this.check(userId, attempt, binding);
    if (check.ok) {
      await slot.succeeded();
      return check;
    }
    if (check.reason === 'no_factor') {
      await slot.released();
      return { ok: false, reason: 'no_factor' };
    }
    const lockedNow = await slot.failed();
    return { ok: false, reason: check.reason, ...(lockedNow ? { lockedNow } : {}) };
  }

  // Recovery codes

  /** New codes replacing every earlier one; shown once, only their hashes are kept. */
  async newRecoveryCodes(userId: string): Promise<string[]> {
    const codes = Array.from({ length: this.settings.recoveryCodes }, newRecoveryCode);
    const key = this.keyspace.mfaRecoveryCodes(userId);
    const hashes = codes.map((c) => recoveryCodeHash(normaliseRecoveryCode(c)!));
    await this.redis
      .multi()
      .del(key)
      .sadd(key, ...hashes)
      .exec();
    return codes;
  }

  async recoveryCodesLeft(userId: string): Promise<number> {
    return this.redis.scard(this.keyspace.mfaRecoveryCodes(userId));
  }

  // Removal

  /**
   * `keepLast`: refuse to remove the person's only factor (a policy requires one), checked in the
   * same atomic step as the removal. Removing the last factor also removes the recovery codes.
   */
  async remove(userId: string, factorId: string, { keepLast = false } = {}): Promise<'removed' | 'missing' | 'last-kept'> {
    const k = this.keyspace;
    const result = await this.redis.mfaRemove(
      k.mfaFactors(userId),
      k.mfaUsage(userId),
      k.mfaRecoveryCodes(userId),
      factorId,
      keepLast ? '1' : '0',
    );
    return result === 1 ? 'removed' : result === -1 ? 'last-kept' : 'missing';
  }

  /** Every factor, the pending enrolment and the recovery codes; challenges already handed out stop working. */
  async reset(userId: string): Promise<ResetResult> {
    return this.clear(userId, 'reset');
  }

  /** Everything of a deleted user. */
  async forget(userId: string): Promise<void> {
    await this.clear(userId, 'forget');
  }

  private async clear(userId: string, mode: 'reset' | 'forget'): Promise<ResetResult> {
    const k = this.keyspace;
    const [factors, recoveryCodes] = await this.redis.mfaReset(
      k.mfaFactors(userId),
      k.mfaUsage(userId),
      k.mfaTotpStep(userId),
      k.mfaTotpPending(userId),
      k.mfaRecoveryCodes(userId),
      k.mfaGeneration(userId),
      mode,
    );
    return { factors: Number(factors), recoveryCodes: Number(recoveryCodes) };
  }

  // Checks

  private async check(userId: string, attempt: VerifyAttempt, binding: string): Promise<Check> {
    switch (attempt?.kind) {
      case 'totp':
        return this.checkTotp(userId, attempt.code);
      case 'webauthn':
        return this.checkAssertion(userId, attempt.response, binding);
      case 'recovery':
        return this.checkRecoveryCode(userId, attempt.code);
      default:
        return { ok: false, reason: 'invalid' };
    }
  }

  private async checkTotp(userId: string, code: unknown): Promise<Check> {
    const factors = (await this.stored(userId)).filter((f): f is StoredTotp => f.kind === 'totp');
    if (!factors.length) return { ok: false, reason: 'no_factor' };
    const digits = typeof code === 'string' ? normaliseTotpCode(code) : undefined;
    if (!digits) return { ok: false, reason: 'invalid' };
    const k = this.keyspace;
    for (const factor of factors) {
      const step = await totpStepOf(unsealTotpSecret(factor.secret, userId, this.settings.encryptionSecret), digits);
      if (step === undefined) continue;
      // The step, not the code, is what is used up: the same code, or an earlier one, is refused
      // even when two requests race (one script decides).
      const accepted = await this.redis.mfaAcceptStep(k.mfaTotpStep(userId), k.mfaFactors(userId), step, factor.id, STEP_MEMORY_SECONDS);
      if (accepted === 0) return { ok: false, reason: 'reused' };
      if (accepted < 0) continue;
      await this.touch(userId, factor.id);
      return { ok: true, kind: 'totp', factorId: factor.id, amr: ['otp'] };
    }
    return { ok: false, reason: 'invalid' };
  }

  private async checkAssertion(userId: string, response: unknown, binding: string): Promise<Check> {
    const keys = webauthnOf(await this.stored(userId));
    if (!keys.length) return { ok: false, reason: 'no_factor' };
    // Taken (and so used up) before anything else is looked at: one assertion per challenge.
    const challenge = await this.takeChallenge(userId, binding, 'authenticate');
    if (!challenge || !isCredentialJson<AuthenticationResponseJSON>(response)) return { ok: false, reason: 'invalid' };
    const factor = keys.find((f) => f.credentialId === response.id);
    if (!factor) return { ok: false, reason: 'invalid' };
    const k = this.keyspace;
    const counter = Number((await this.redis.hget(k.mfaUsage(userId), `counter:${factor.id}`)) ?? 0);
    const newCounter = await checkAssertion(this.settings, response, challenge, factor, counter);
    if (newCounter === undefined) return { ok: false, reason: 'invalid' };
    // A counter that did not move forward (non-zero) is a cloned authenticator; the script decides
    // atomically, so two assertions of the same counter cannot both pass.
    const advanced = await this.redis.mfaAdvanceCounter(
      k.mfaFactors(userId),
      k.mfaUsage(userId),
      factor.id,
      newCounter,
      new Date().toISOString(),
    );
    if (advanced !== 1) return { ok: false, reason: 'invalid' };
    return { ok: true, kind: 'webauthn', factorId: factor.id, amr: [factor.keyType] };
  }

  private async checkRecoveryCode(userId: string, code: unknown): Promise<Check> {
    const key = this.keyspace.mfaRecoveryCodes(userId);
    if ((await this.redis.scard(key)) === 0) return { ok: false, reason: 'no_factor' };
    const normalised = typeof code === 'string' ? normaliseRecoveryCode(code) : undefined;
    if (!normalised) return { ok: false, reason: 'invalid' };
    // SREM answers 1 to exactly one request: a code is used up by the check that accepts it.
    if ((await this.redis.srem(key, recoveryCodeHash(normalised))) !== 1) return { ok: false, reason: 'invalid' };
    return { ok: true, kind: 'recovery', factorId: 'recovery', amr: ['otp'] };
  }

  // Storage

  private async stored(userId: string): Promise<StoredFactor[]> {
    const all = await this.redis.hvals(this.keyspace.mfaFactors(userId));
    return sortFactors(all.map((j) => JSON.parse(j) as StoredFactor));
  }

  private async touch(userId: string, factorId: string): Promise<void> {
    await this.redis.hset(this.keyspace.mfaUsage(userId), `used:${factorId}`, new Date().toISOString());
  }

  private challengeKey(userId: string, binding: string): string {
    return this.keyspace.mfaChallenge(userId, hash('sha256', binding, 'base64url'));
  }

  /** One challenge per (user, binding): a newer one replaces it. */
  private async keepChallenge(userId: string, binding: string, purpose: ChallengePurpose, challenge: string): Promise<void> {
    const generation = (await this.redis.get(this.keyspace.mfaGeneration(userId))) ?? '0';
    const stored: StoredChallenge = { c: challenge, p: purpose, g: generation };
    await this.redis.set(this.challengeKey(userId, binding), JSON.stringify(stored), 'EX', CHALLENGE_SECONDS);
  }

  /** The challenge, once; undefined when there is none, it is for the other ceremony, or a reset came after it. */
  private async takeChallenge(userId: string, binding: string, purpose: ChallengePurpose): Promise<string | undefined> {
    const [raw, generation] = await this.redis.mfaTakeChallenge(this.challengeKey(userId, binding), this.keyspace.mfaGeneration(userId));
    if (!raw) return undefined;
    const stored = JSON.parse(raw) as StoredChallenge;
    return stored.p === purpose && stored.g === (generation ?? '0') ? stored.c : undefined;
  }
}

function sortFactors(factors: StoredFactor[]): StoredFactor[] {
  return factors.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

function webauthnOf(factors: StoredFactor[]): StoredWebAuthn[] {
  return factors.filter((f): f is StoredWebAuthn => f.kind === 'webauthn');
}

function summaryOf(f: StoredFactor, lastUsedAt?: string): FactorSummary {
  return {
    id: f.id,
    kind: f.kind,
    label: f.label,
    createdAt: f.createdAt,
    ...(lastUsedAt ? { lastUsedAt } : {}),
    ...(f.kind === 'webauthn' ? { keyType: f.keyType } : {}),
  };
}

function cleanLabel(label: string | undefined, fallback: string): string {
  const text = (label ?? '').replace(CONTROL, ' ').replace(/\s+/g, ' ').trim().slice(0, MAX_LABEL);
  return text || fallback;
}

function tooMany(): FactorError {
  return new FactorError(`An account can have at most ${MAX_FACTORS} authenticators. Remove one first.`);
}

/** The part of a WebAuthn credential JSON checked before the library looks at it (it came from a form). */
function isCredentialJson<T extends { id: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string';
}

/** The second factors as the app and the CLI build them from configuration. */
export function createSecondFactors(config: Config, redis: RedisClient, keyspace: Keyspace, lockout: LoginLockout): SecondFactors {
  const issuer = new URL(config.issuer);
  return new SecondFactors(redis, keyspace, lockout, {
    rpId: issuer.hostname,
    rpName: issuer.host,
    origin: issuer.origin,
    totpIssuer: config.mfa.totpIssuer ?? issuer.hostname,
    recoveryCodes: config.mfa.recoveryCodes,
    ...(config.keyEncryptionSecret ? { encryptionSecret: config.keyEncryptionSecret } : {}),
  });
}
