import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import { seal, unseal, type SealedKey } from '../../../platform/keys/encryption.js';

/**
 * TOTP (RFC 6238) as every authenticator app understands it: SHA-1, 6 digits, 30-second steps, a
 * 160-bit secret in base32, offered as an otpauth:// URI (Key Uri Format) and its QR code. A code is
 * accepted one step either side of now (clock drift); single use is the caller's job (the step is
 * returned so that it can be compared with the last one accepted).
 */

const ALGORITHM = 'sha1';
const DIGITS = 6;
const PERIOD_SECONDS = 30;
/** ±1 step. */
const TOLERANCE_SECONDS = PERIOD_SECONDS;
const SECRET_BYTES = 20;
const CODE = /^\d{6}$/;

export function newTotpSecret(): string {
  return generateSecret({ length: SECRET_BYTES });
}

/** The Key Uri Format URI (`otpauth://totp/<issuer>:<account>?secret=…&issuer=…`). */
export function totpUri(secret: string, issuer: string, accountName: string): string {
  return generateURI({ issuer, label: accountName, secret, algorithm: ALGORITHM, digits: DIGITS, period: PERIOD_SECONDS });
}

/** The URI as an SVG QR code, to put on the enrolment page as it is. */
export async function totpQrSvg(uri: string): Promise<string> {
  return QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

/** Spaces people type or paste ("123 456") are dropped; anything but 6 digits is no code. */
export function normaliseTotpCode(code: string): string | undefined {
  const digits = code.replace(/\s+/g, '');
  return CODE.test(digits) ? digits : undefined;
}

/** The time step the code belongs to (within ±1 step of now), or undefined when it matches none. */
export async function totpStepOf(secret: string, code: string, epochSeconds = Math.floor(Date.now() / 1000)): Promise<number | undefined> {
  const result = await verify({
    secret,
    token: code,
    algorithm: ALGORITHM,
    digits: DIGITS,
    period: PERIOD_SECONDS,
    epoch: epochSeconds,
    epochTolerance: TOLERANCE_SECONDS,
  });
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

/** The additional authenticated data: a sealed secret cannot be moved onto another user's record. */
function aad(userId: string): string {
  return `totp:${userId}`;
}

export function sealTotpSecret(secret: string, userId: string, encryptionSecret: string | undefined): SealedKey {
  return seal({ kty: 'oct', k: secret }, aad(userId), encryptionSecret);
}

/**
 * A secret stored before keyEncryptionSecret was configured is still read (signing keys are
 * refused then, and re-encrypted with `keys encrypt`; TOTP secrets have no such step, and refusing
 * them would lock their users out). One sealed with another secret, or altered, throws.
 */
export function unsealTotpSecret(sealed: SealedKey, userId: string, encryptionSecret: string | undefined): string {
  const jwk = sealed.enc === 'none' ? sealed.jwk : unseal(sealed, aad(userId), encryptionSecret);
  if (typeof jwk.k !== 'string') throw new Error(`the TOTP secret of user ${userId} is not readable`);
  return jwk.k;
}
