import type { AuditFixture } from './support.js';
import { GENESIS_HASH, entryHash, type ChainEntry, type ChainName } from '../../../src/records/audit/chain.js';
import { decodePostings, encodeSeq, streamId } from '../../../src/records/audit/postings.js';

/**
 * Rewrites a chain's stream the way someone with write access to Redis would have to: a stream
 * cannot be edited in place, so it is deleted and written again with the original stream ids.
 */
export async function rewriteStream(
  f: AuditFixture,
  chain: ChainName,
  change: (entries: ChainEntry[]) => ChainEntry[],
  opts: { ownSids?: boolean } = {},
): Promise<void> {
  const entries = await f.store.entries(chain, undefined, 1_000_000);
  const originalSids = entries.map((e) => e.sid);
  const changed = change(entries.map((e) => ({ ...e })));
  const key = f.keyspace.auditStream(chain);
  await f.redis.del(key);
  // Reordered entries keep the position's stream id, so ids stay ascending as XADD requires.
  // (or, with ownSids, the ids the change gave them).
  const sids = changed.length === originalSids.length && !opts.ownSids ? originalSids : changed.map((e) => e.sid);
  for (let i = 0; i < changed.length; i++) {
    const e = changed[i]!;
    await f.redis.xadd(key, sids[i]!, 'seq', String(e.seq), 'prev', e.prev, 'hash', e.hash, 'id', e.id, 'event', e.event, 't', String(e.t));
  }
}

/**
 * Removes the entry at `seq` the way someone with write access to Redis would hide it: every later
 * entry is renumbered and rehashed (a consistent chain again), and everything that points at seqs
 * follows: the id → seq locations, the posting lists of every search value, the head, and the
 * signed checkpoints from `seq` on (they sign hashes that no longer exist, and cannot be re-signed).
 */
export async function removeAndRenumber(f: AuditFixture, chain: ChainName, seq: number): Promise<ChainEntry> {
  const { redis, keyspace } = f;
  const entries = await f.store.entries(chain, undefined, 1_000_000);
  const removed = entries.find((e) => e.seq === seq)!;
  let previous = entries.find((e) => e.seq === seq - 1);
  const changed: ChainEntry[] = [];
  for (const e of entries) {
    if (e.seq < seq) changed.push(e);
    if (e.seq <= seq) continue;
    const n = e.seq - 1;
    const prev = previous?.hash ?? GENESIS_HASH;
    const recorded = Date.parse((JSON.parse(e.event) as { recorded: string }).recorded);
    const moved: ChainEntry = {
      ...e,
      seq: n,
      sid: streamId(n),
      prev,
      hash: entryHash(n, prev, e.event),
      t: Math.max(recorded, previous?.t ?? 0),
    };
    changed.push(moved);
    previous = moved;
  }
  await rewriteStream(f, chain, () => changed, { ownSids: true });

  await redis.hdel(keyspace.auditLocation(chain), removed.id);
  for (const e of changed) if (e.seq >= seq) await redis.hset(keyspace.auditLocation(chain), e.id, String(e.seq));

  const pattern = `${keyspace.auditPostings(chain, '', '').replace(/:+$/, '')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    for (const key of keys) {
      const seqs = decodePostings((await redis.get(key)) ?? '')
        .filter((s) => s !== seq)
        .map((s) => (s > seq ? s - 1 : s));
      if (seqs.length) await redis.set(key, seqs.map(encodeSeq).join(''));
      else await redis.del(key);
    }
    cursor = next;
  } while (cursor !== '0');

  const last = changed.at(-1)!;
  await redis.hset(keyspace.auditHead(chain), 'seq', String(last.seq), 'hash', last.hash, 't', String(last.t));
  await redis.zremrangebyscore(keyspace.auditCheckpoints(chain), seq, '+inf');
  return removed;
}

/** Cuts the last entries off a chain (from `seq` on), moves the head back and deletes the checkpoints that covered them. */
export async function truncateFrom(f: AuditFixture, chain: ChainName, seq: number): Promise<void> {
  const { redis, keyspace } = f;
  await rewriteStream(f, chain, (entries) => entries.filter((e) => e.seq < seq));
  const last = (await f.store.entries(chain, undefined, 1_000_000)).at(-1)!;
  await redis.hset(keyspace.auditHead(chain), 'seq', String(last.seq), 'hash', last.hash, 't', String(last.t));
  await redis.zremrangebyscore(keyspace.auditCheckpoints(chain), seq, '+inf');
}

/**
 * Makes appends fail with a real Redis error: a string where the chain head hash lives, so the
 * append script fails on its first command. Returns what puts the head back.
 */
export async function breakTrail(t: { redis: AuditFixture['redis']; keyspace: AuditFixture['keyspace'] }): Promise<() => Promise<void>> {
  const head = t.keyspace.auditHead('main');
  const saved = await t.redis.hgetall(head);
  await t.redis.del(head);
  await t.redis.set(head, 'not a hash');
  return async () => {
    await t.redis.del(head);
    await t.redis.hset(head, saved);
  };
}
