/** Key types the server signs with: RSA for RS256 id_tokens (SMART), EC P-384 for ES384. */
export const SIGNING_KTYS = ['RSA', 'EC'] as const;
export type SigningKty = (typeof SIGNING_KTYS)[number];

/**
 * `next`: published, not signing yet. `current`: signs (one per kty). `retired`: published so tokens
 * it signed still verify, never signs again.
 */
export const KEY_STATUSES = ['next', 'current', 'retired'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** What may be shown about a key: no key material, not even public parts. */
export interface SigningKeyInfo {
  kid: string;
  kty: SigningKty;
  status: KeyStatus;
  createdAt: string;
  promotedAt?: string | undefined;
  retiredAt?: string | undefined;
  encrypted: boolean;
}
