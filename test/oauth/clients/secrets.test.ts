import crypto from 'node:crypto';
import { jest } from '@jest/globals';
import { generateClientSecret, hashClientSecret, isHashedClientSecret, verifyClientSecret } from '../../../src/oauth/clients/secrets.js';

describe('client secrets', () => {
  test('are 32 random bytes in base64url, different every time', () => {
    const a = generateClientSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(generateClientSecret()).not.toBe(a);
  });

  test('hash to sha256$<base64url of the SHA-256 digest>', () => {
    const digest = crypto.createHash('sha256').update('s3cret').digest('base64url');
    expect(hashClientSecret('s3cret')).toBe(`sha256$${digest}`);
    expect(isHashedClientSecret(hashClientSecret('s3cret'))).toBe(true);
    expect(isHashedClientSecret('s3cret')).toBe(false);
    expect(isHashedClientSecret(`sha256$${digest}x`)).toBe(false);
    expect(isHashedClientSecret(undefined)).toBe(false);
  });

  test('verify only the right secret against a stored hash', () => {
    const secret = generateClientSecret();
    const stored = hashClientSecret(secret);
    expect(verifyClientSecret(stored, secret)).toBe(true);
    expect(verifyClientSecret(stored, `${secret}x`)).toBe(false);
    expect(verifyClientSecret(stored, '')).toBe(false);
    expect(verifyClientSecret(stored, undefined)).toBe(false);
  });

  test('never match a plaintext stored value, not even the same string', () => {
    expect(verifyClientSecret('plain-secret', 'plain-secret')).toBe(false);
  });

  test('are compared with crypto.timingSafeEqual on equal-length digests', () => {
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    try {
      const stored = hashClientSecret('right');
      expect(verifyClientSecret(stored, 'wrong but much longer than the right one')).toBe(false);
      expect(spy).toHaveBeenCalledTimes(1);
      const [a, b] = spy.mock.calls[0] as unknown as [Buffer, Buffer];
      expect(a).toHaveLength(32);
      expect(b).toHaveLength(32);
    } finally {
      spy.mockRestore();
    }
  });
});
