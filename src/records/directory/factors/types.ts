import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { SealedKey } from '../../../platform/keys/encryption.js';

/**
 * The shapes of second factors: what callers see (summaries, outcomes) and what is stored. Secrets
 * never leave the factor records: a summary has no TOTP secret and no public key.
 */

export type FactorKind = 'totp' | 'webauthn';

export interface FactorSummary {
  id: string;
  kind: FactorKind;
  label: string;
  createdAt: string;
  lastUsedAt?: string;
  /** webauthn only: 'hwk' (device-bound key, credentialDeviceType singleDevice) or 'swk' (synced passkey, multiDevice). */
  keyType?: 'hwk' | 'swk';
}

export type VerifyAttempt =
  { kind: 'totp'; code: string } | { kind: 'webauthn'; response: AuthenticationResponseJSON } | { kind: 'recovery'; code: string };

export type VerifyOutcome =
  | { ok: true; kind: 'totp' | 'webauthn' | 'recovery'; factorId: string; amr: string[] }
  | { ok: false; reason: 'invalid' | 'reused' | 'locked' | 'no_factor'; retryAfterSeconds?: number; lockedNow?: boolean };

/** A readable, user-facing refusal (a registration that cannot be accepted, nothing to authenticate with). */
export class FactorError extends Error {
  override readonly name = 'FactorError';
}

export interface SecondFactorSettings {
  /** The issuer's host name. */
  rpId: string;
  /** Shown by the authenticator. */
  rpName: string;
  /** The issuer's origin: the only origin accepted in WebAuthn client data. */
  origin: string;
  /** config mfa.totpIssuer ?? issuer host. */
  totpIssuer: string;
  /** config mfa.recoveryCodes. */
  recoveryCodes: number;
  /** config keyEncryptionSecret: TOTP secrets are sealed with it when set. */
  encryptionSecret?: string;
}

interface StoredFactorBase {
  id: string;
  label: string;
  createdAt: string;
}

export interface StoredTotp extends StoredFactorBase {
  kind: 'totp';
  /** The base32 secret, sealed (AES-256-GCM) when a keyEncryptionSecret is configured. */
  secret: SealedKey;
}

export interface StoredWebAuthn extends StoredFactorBase {
  kind: 'webauthn';
  /** Credential id, base64url. */
  credentialId: string;
  /** COSE public key, base64url. */
  publicKey: string;
  transports?: string[];
  keyType: 'hwk' | 'swk';
}

export type StoredFactor = StoredTotp | StoredWebAuthn;

/** What the user directory shows of a user's factors (SCIM), read in one command per user. */
export interface FactorSnapshot {
  factors: FactorSummary[];
  recoveryCodesLeft: number;
}
