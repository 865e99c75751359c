import { randomUUID } from 'node:crypto';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { KeyStore } from '../../../src/platform/keys/keystore.js';
import { KeyStoreError, type KeyStoreErrorCode } from '../../../src/platform/keys/errors.js';

/** Each "instance" gets its own connection, as separate server processes would. */
export class Instances {
  private readonly clients: RedisClient[] = [];

  async redis(): Promise<RedisClient> {
    const client = createRedis({ url: process.env.REDIS_URL, prefix: '' });
    this.clients.push(client);
    await connectRedis(client);
    return client;
  }

  async store(keyspace: Keyspace, secret?: string): Promise<KeyStore> {
    return new KeyStore(await this.redis(), keyspace, { encryptionSecret: secret });
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => (c.status === 'end' ? undefined : c.quit())));
  }
}

export function freshKeyspace(): Keyspace {
  return new Keyspace(`test-${randomUUID()}:`);
}

export async function keyStoreErrorOf(promise: Promise<unknown>): Promise<KeyStoreError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(KeyStoreError);
    return err as KeyStoreError;
  }
  throw new Error('expected a KeyStoreError');
}

export async function expectKeyStoreError(promise: Promise<unknown>, code: KeyStoreErrorCode): Promise<KeyStoreError> {
  const err = await keyStoreErrorOf(promise);
  expect(err.code).toBe(code);
  expect(err.message).not.toContain('\n');
  return err;
}

export const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'] as const;
