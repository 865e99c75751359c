import type { ChainName } from './chain.js';
import { indexEntriesOf, type Recordable } from './stored-event.js';
import { encodeSeq, streamId } from './postings.js';
import type { AuditStore } from './store.js';
import { withMaintenanceLock } from './maintenance-lock.js';

/**
 * Trails written before posting lists had Redis-assigned stream ids and sorted-set indexes
 * (`{audit}:idx:*`). The append script now writes entry `<seq>-0` with a trail time and posting
 * lists, and cannot append after a Redis-assigned id, so such a trail is rewritten once, with the
 * servers stopped: `smart-authz audit migrate`. Entries are copied byte for byte (seq, prev, hash
 * and event are what the hashes and signed checkpoints cover, so both still verify); the old
 * stream is kept as `<stream>:legacy` until the operator deletes it.
 */

export type TrailLayout = 'empty' | 'current' | 'legacy';

/** How a chain is laid out: by its last entry's stream id. */
export async function trailLayout(store: AuditStore, chain: ChainName): Promise<TrailLayout> {
  const last = (await store.redis.xrevrange(store.keyspace.auditStream(chain), '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
  if (!last.length) return 'empty';
  const [sid, fields] = last[0]!;
  const seq = fields[fields.indexOf('seq') + 1];
  return sid === `${seq}-0` ? 'current' : 'legacy';
}

export class LegacyTrailError extends Error {
  override name = 'LegacyTrailError';
}

/** Refuses to run on a trail the append script cannot continue (a one-line reason for start-up). */
export async function requireCurrentLayout(store: AuditStore): Promise<void> {
  for (const chain of ['main', 'archive'] as const) {
    if ((await trailLayout(store, chain)) === 'legacy') {
      throw new LegacyTrailError(
        `the audit trail (${chain} chain) was written by an earlier version of this server: stop every instance and run \`smart-authz audit migrate\` once`,
      );
    }
  }
}

const PAGE = 1000;

/** Rewrites a legacy chain in the current layout; returns how many entries were copied. */
export async function migrateChain(store: AuditStore, chain: ChainName): Promise<number> {
  const { redis, keyspace } = store;
  const stream = keyspace.auditStream(chain);
  const staging = `${stream}:migrating`;
  const stagingLocation = `${keyspace.auditLocation(chain)}:migrating`;
  const postingPrefix = keyspace.auditPostings(chain, '', '').replace(/:$/, '');
  // A migration interrupted earlier left staging keys and partial posting lists: start over.
  await redis.unlink(staging, stagingLocation);
  await unlinkMatching(store, `${postingPrefix}*`);

  let copied = 0;
  let t = 0;
  let multi = redis.multi();
  for await (const entry of store.walk(chain, PAGE)) {
    const item = JSON.parse(entry.event) as Recordable;
    t = Math.max(Date.parse(item.recorded ?? '') || 0, t);
    multi.xadd(
      staging,
      streamId(entry.seq),
      'seq',
      String(entry.seq),
      'prev',
      entry.prev,
      'hash',
      entry.hash,
      'id',
      entry.id,
      'event',
      entry.event,
      't',
      String(t),
    );
    multi.hset(stagingLocation, entry.id, String(entry.seq));
    for (const [param, value] of indexEntriesOf(item)) multi.append(keyspace.auditPostings(chain, param, value), encodeSeq(entry.seq));
    if (++copied % PAGE === 0) {
      await multi.exec();
      multi = redis.multi();
    }
  }
  await multi.exec();
  if (!copied) return 0;
  const swap = redis.multi();
  swap.rename(stream, `${stream}:legacy`);
  swap.rename(staging, stream);
  swap.rename(stagingLocation, keyspace.auditLocation(chain));
  swap.hset(keyspace.auditHead(chain), 't', String(t));
  swap.hdel(keyspace.auditHead(chain), 'sid');
  await swap.exec();
  return copied;
}

/** Migrates both chains and drops the old sorted-set indexes. */
export async function migrateTrail(store: AuditStore): Promise<{ main: number; archive: number }> {
  return withMaintenanceLock(
    store.redis,
    store.keyspace,
    () => new LegacyTrailError('a purge or another migration is running'),
    async () => {
      const out = { main: 0, archive: 0 };
      for (const chain of ['main', 'archive'] as const) {
        if ((await trailLayout(store, chain)) === 'legacy') out[chain] = await migrateChain(store, chain);
      }
      await unlinkMatching(store, store.keyspace.key('{audit}:idx:*'));
      await unlinkMatching(store, store.keyspace.key('{audit}:scratch:*'));
      return out;
    },
  );
}

async function unlinkMatching(store: AuditStore, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await store.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await store.redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
