import type { AuditStore } from './store.js';
import { parseEvent, type ChainEntry, type ChainName } from './chain.js';
import { disclosedPatients } from './disclosure.js';
import { allIndexEntries } from './indexes.js';
import { trimPostings } from './postings.js';

/**
 * Removes a prefix of a chain from Redis: the removed seqs from the posting lists of every value
 * they were indexed by, their locations, the stream entries, and the checkpoints before the cut
 * (the cut's own checkpoint stays: it is where `verify` starts). Retention removes what is past
 * its time (retention.ts); the shipper removes what PostgreSQL holds (shipper.ts). Either signs
 * the checkpoint at the cut first.
 */
export async function dropPrefix(store: AuditStore, chain: ChainName, prefix: ChainEntry[]): Promise<void> {
  if (!prefix.length) return;
  const { redis, keyspace } = store;
  const last = prefix[prefix.length - 1]!;
  const postingKeys = new Set<string>();
  const ids: string[] = [];
  for (const entry of prefix) {
    const event = parseEvent(entry);
    ids.push(entry.id);
    for (const [param, value] of allIndexEntries(event, disclosedPatients(event)))
      postingKeys.add(keyspace.auditPostings(chain, param, value));
  }
  await trimPostings(redis, [...postingKeys], last.seq);
  const multi = redis.multi();
  // An archived event's id resolves to its archive entry (the archive has its own locations).
  multi.hdel(keyspace.auditLocation(chain), ...ids);
  multi.xtrim(keyspace.auditStream(chain), 'MINID', nextStreamId(last.sid));
  multi.zremrangebyscore(keyspace.auditCheckpoints(chain), '-inf', `(${last.seq}`);
  await multi.exec();
}

/** The smallest stream id greater than `sid` (XTRIM MINID keeps ids >= its argument). */
function nextStreamId(sid: string): string {
  const [ms, n] = sid.split('-');
  return `${ms}-${BigInt(n ?? '0') + 1n}`;
}
