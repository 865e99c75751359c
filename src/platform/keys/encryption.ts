import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { KeyStoreError } from './errors.js';

/**
 * Private keys at rest: AES-256-GCM under a key derived from keyEncryptionSecret with HKDF-SHA256
 * and a random salt per record (the secret is a passphrase, not a uniformly random key). The kid is
 * the additional authenticated data, so a ciphertext cannot be moved onto another key's record.
 */
export type SealedKey = { enc: 'none'; jwk: JWK } | { enc: 'A256GCM'; salt: string; iv: string; ct: string; tag: string };

const HKDF_INFO = Buffer.from('smart-authz signing-key encryption v1');
export const MIN_SECRET_LENGTH = 32;

export function assertUsableSecret(secret: string | undefined): void {
  if (secret !== undefined && secret.length < MIN_SECRET_LENGTH) {
    throw new KeyStoreError('invalid-secret', `keyEncryptionSecret needs at least ${MIN_SECRET_LENGTH} characters`);
  }
}

function deriveKey(secret: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, HKDF_INFO, 32));
}

export function seal(jwk: JWK, kid: string, secret: string | undefined): SealedKey {
  if (secret === undefined) return { enc: 'none', jwk };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(secret, salt), iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const ct = Buffer.concat([cipher.update(JSON.stringify(jwk), 'utf8'), cipher.final()]);
  return {
    enc: 'A256GCM',
    salt: salt.toString('base64url'),
    iv: iv.toString('base64url'),
    ct: ct.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

/**
 * A mismatch between the configuration and what is stored is an error, never a reason to make new
 * keys: replacing the keys would invalidate every token already issued.
 */
export function unseal(sealed: SealedKey, kid: string, secret: string | undefined): JWK {
  if (sealed.enc === 'none') {
    if (secret !== undefined) {
      throw new KeyStoreError(
        'plaintext-keys',
        `signing key ${kid} is stored unencrypted but keyEncryptionSecret is set: encrypt the stored keys first (keys encrypt) or unset keyEncryptionSecret`,
      );
    }
    return sealed.jwk;
  }
  if (secret === undefined) {
    throw new KeyStoreError('secret-missing', `signing key ${kid} is stored encrypted but no keyEncryptionSecret is configured`);
  }
  let plaintext: string;
  try {
    const decipher = createDecipheriv(
      'aes-256-gcm',
      deriveKey(secret, Buffer.from(sealed.salt, 'base64url')),
      Buffer.from(sealed.iv, 'base64url'),
    );
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
    plaintext = Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyStoreError(
      'wrong-secret',
      `cannot decrypt signing key ${kid}: keyEncryptionSecret is not the one it was encrypted with, or the record was altered`,
    );
  }
  try {
    return JSON.parse(plaintext) as JWK;
  } catch {
    throw new KeyStoreError('corrupt', `signing key ${kid} decrypts to something that is not a JWK`);
  }
}
