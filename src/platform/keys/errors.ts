/**
 * Why a signing-key operation was refused. Messages name keys by kid only: they end up in start-up
 * output and CLI errors, so they must never carry key material.
 */
export type KeyStoreErrorCode =
  | 'secret-missing' // keys are encrypted, no keyEncryptionSecret configured
  | 'plaintext-keys' // keyEncryptionSecret configured, keys stored unencrypted
  | 'wrong-secret' // keys do not decrypt with the configured secret
  | 'invalid-secret'
  | 'corrupt' // a stored record is malformed or its key does not match its kid
  | 'not-found'
  | 'invalid-transition' // rotation step not allowed from the key's current status
  | 'conflict'; // kept losing to concurrent writers

export class KeyStoreError extends Error {
  override readonly name = 'KeyStoreError';

  constructor(
    readonly code: KeyStoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}
