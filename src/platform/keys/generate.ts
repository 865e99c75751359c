import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { SigningKty } from './types.js';

export interface GeneratedKey {
  /** RFC 7638 thumbprint: unique per key and recomputable, so a stored key can be checked against it. */
  kid: string;
  /** Private JWK with key parameters only (no kid/use/alg: those are added when published). */
  jwk: JWK;
}

const generate = promisify(generateKeyPair);

export async function generateSigningKey(kty: SigningKty): Promise<GeneratedKey> {
  const { privateKey } = kty === 'RSA' ? await generate('rsa', { modulusLength: 2048 }) : await generate('ec', { namedCurve: 'P-384' });
  const jwk = privateKey.export({ format: 'jwk' }) as JWK;
  return { kid: await thumbprint(jwk), jwk };
}

export function thumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}
