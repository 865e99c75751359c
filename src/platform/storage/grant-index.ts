import type { Keyspace } from '../redis/keyspace.js';
import type { RedisClient } from '../redis/connection.js';
import { adapterScripts } from './adapter-scripts.js';

/**
 * The per-grant index of entry keys that `revokeByGrantId` deletes, and the "grant is dead" mark.
 *
 * Race rules (the index and the entries live in different hash slots, so in Redis Cluster no
 * single script can cover both; on a single node or Sentinel the adapter writes the entry and its
 * index entries in one atomic script instead, see INDEXED_WRITE in adapter-scripts.ts):
 *  - a writer adds its key to the index BEFORE writing the entry, so a crash in between leaves
 *    an index member pointing at nothing, never an entry that revocation cannot find;
 *  - a revoker empties the index atomically, then deletes the members;
 *  - after writing, the writer checks its key is still in the index. If a revocation ran in
 *    between, the key is gone from the index and the writer deletes its own entry. Without this
 *    check a revoker could delete the member before it was written and the entry would survive.
 *  - once the Grant itself is destroyed, the dead mark makes every later write for the grant fail,
 *    so a request that validated the grant just before it was destroyed cannot mint tokens.
 */

/** How long a destroyed grant refuses token writes: only requests already in flight can try. */
export const DEAD_GRANT_MARK_SECONDS = 3600;

/** Expired members are pruned only this long after their expiry, well past any in-flight write. */
export const PRUNE_GRACE_MS = 60_000;

export class GrantIndex {
  private readonly redis;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {
    this.redis = adapterScripts(redis);
  }

  /** Returns false when the grant is dead. */
  async add(grantId: string, member: string, ttlMs: number | undefined): Promise<boolean> {
    const added = await this.redis.oidcGrantIndexAdd(
      this.keyspace.grantIndex(grantId),
      this.keyspace.revokedGrant(grantId),
      member,
      ttlMs === undefined ? '' : String(ttlMs),
      String(PRUNE_GRACE_MS),
    );
    return added === 1;
  }

  /** The index and its revoked mark, for the single-node indexed write (adapter-scripts.ts). */
  keysOf(grantId: string): [index: string, revoked: string] {
    return [this.keyspace.grantIndex(grantId), this.keyspace.revokedGrant(grantId)];
  }

  async contains(grantId: string, member: string): Promise<boolean> {
    return (await this.redis.zscore(this.keyspace.grantIndex(grantId), member)) !== null;
  }

  /**
   * Deletes every indexed entry of the grant. `dead` also deletes the Grant entry and marks the
   * grant so that writes still in flight for it are refused.
   */
  async revoke(grantId: string, { dead }: { dead: boolean }): Promise<void> {
    const members = await this.redis.oidcGrantTeardown(
      this.keyspace.grantIndex(grantId),
      this.keyspace.revokedGrant(grantId),
      this.keyspace.model('Grant', grantId),
      dead ? '1' : '0',
      String(DEAD_GRANT_MARK_SECONDS),
    );
    // One DEL per key: members live in different hash slots (auto-pipelining batches them).
    await Promise.all(members.map((key) => this.redis.del(key)));
  }
}
