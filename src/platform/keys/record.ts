import { z } from 'zod';
import type { JWK } from 'jose';
import { KeyStoreError } from './errors.js';
import type { SealedKey } from './encryption.js';
import { KEY_STATUSES, SIGNING_KTYS, type SigningKeyInfo } from './types.js';

/**
 * One Redis hash field per key. Status and dates stay readable without the secret (so they can be
 * listed and changed by a script that compares versions); only the private JWK is sealed.
 */
export interface KeyRecord extends Omit<SigningKeyInfo, 'encrypted'> {
  key: SealedKey;
}

const sealedSchema = z.discriminatedUnion('enc', [
  z.object({ enc: z.literal('none'), jwk: z.record(z.string(), z.unknown()) }),
  z.object({ enc: z.literal('A256GCM'), salt: z.string(), iv: z.string(), ct: z.string(), tag: z.string() }),
]);

const recordSchema = z.object({
  kid: z.string().min(1),
  kty: z.enum(SIGNING_KTYS),
  status: z.enum(KEY_STATUSES),
  createdAt: z.string(),
  promotedAt: z.string().optional(),
  retiredAt: z.string().optional(),
  key: sealedSchema,
});

export function parseRecord(field: string, raw: string): KeyRecord {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new KeyStoreError('corrupt', `stored signing key ${field} is not JSON`);
  }
  // Zod issues are not echoed: for a plaintext record they could quote key parameters.
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success || parsed.data.kid !== field) {
    throw new KeyStoreError('corrupt', `stored signing key ${field} is malformed`);
  }
  const { key, ...meta } = parsed.data;
  return { ...meta, key: key.enc === 'none' ? { enc: 'none', jwk: key.jwk as JWK } : key };
}

export function serializeRecord(record: KeyRecord): string {
  return JSON.stringify(record);
}

export function infoOf(record: KeyRecord): SigningKeyInfo {
  const { key, ...meta } = record;
  return { ...meta, encrypted: key.enc !== 'none' };
}
