import type { AuditFixture } from './support.js';
import type { ChainEntry, ChainName } from '../../src/audit/chain.js';

/**
 * Rewrites a chain's stream the way someone with write access to Redis would have to: a stream
 * cannot be edited in place, so it is deleted and written again with the original stream ids.
 */
export async function rewriteStream(f: AuditFixture, chain: ChainName, change: (entries: ChainEntry[]) => ChainEntry[], opts: { ownSids?: boolean } = {}): Promise<void> {
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
