import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';

/**
 * Redis access for the signing-key hash. Every write is a compare-and-set on the version counter:
 * the caller decides from a snapshot, and the write only lands if nobody changed the keys since.
 * Scripts rather than WATCH/MULTI because the shared client auto-pipelines.
 */

export interface RawSnapshot {
  version: number;
  /** hash field (kid) → serialized record */
  fields: Map<string, string>;
}

const READ = `
return { redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1]) }
`;

// ARGV: expected version, number of fields to set, then field/value pairs, then fields to delete.
const WRITE_IF_VERSION = `
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return -1 end
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
return redis.call('INCR', KEYS[2])
`;

export class KeyStorage {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {}

  private keys(): [string, string] {
    return [this.keyspace.signingKeys(), this.keyspace.signingKeysVersion()];
  }

  async version(): Promise<number> {
    return toVersion(await this.redis.get(this.keyspace.signingKeysVersion()));
  }

  async read(): Promise<RawSnapshot> {
    const reply = (await this.redis.eval(READ, 2, ...this.keys())) as [string, string[]];
    const [version, flat] = reply;
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
    return { version: toVersion(version), fields };
  }

  /** Returns the new version, or undefined when the keys changed since `expectedVersion`. */
  async writeIfVersion(expectedVersion: number, set: Map<string, string>, remove: string[] = []): Promise<number | undefined> {
    const args = [String(expectedVersion), String(set.size), ...[...set].flat(), ...remove];
    const result = Number(await this.redis.eval(WRITE_IF_VERSION, 2, ...this.keys(), ...args));
    return result < 0 ? undefined : result;
  }
}

function toVersion(value: string | null): number {
  const n = Number(value ?? 0);
  return Number.isSafeInteger(n) ? n : 0;
}
