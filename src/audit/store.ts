import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';
import type { AuditEvent } from './audit-event.js';
import { parseEvent, parseStreamEntry, type ChainEntry, type ChainName } from './chain.js';
import { postingScripts, streamId } from './postings.js';

/** Reads entries and events out of the chains (both the main chain and the disclosure archive). */
export class AuditStore {
  constructor(
    readonly redis: RedisClient,
    readonly keyspace: Keyspace,
  ) {
    // Defined up front: with auto-pipelining, a script defined in the same tick as another command
    // is missing from that tick's pipeline ("pipeline[functionName] is not a function").
    postingScripts(redis);
  }

  /** Up to `count` entries of a chain in stream order, starting after `afterSid` (exclusive), or from the start. */
  async entries(chain: ChainName, afterSid: string | undefined, count: number): Promise<ChainEntry[]> {
    const start = afterSid ? `(${afterSid}` : '-';
    const raw = (await this.redis.xrange(this.keyspace.auditStream(chain), start, '+', 'COUNT', count)) as Array<[string, string[]]>;
    return raw.map(([sid, fields]) => parseStreamEntry(sid, fields));
  }

  /** Every entry of a chain in stream order, in pages (the caller may stop early). */
  async *walk(chain: ChainName, page = 1000, afterSid?: string): AsyncGenerator<ChainEntry> {
    let after = afterSid;
    for (;;) {
      const batch = await this.entries(chain, after, page);
      for (const e of batch) yield e;
      if (batch.length < page) return;
      after = batch[batch.length - 1]!.sid;
    }
  }

  /** The events with these ids, in the given order (unknown ids are skipped). */
  async events(ids: string[]): Promise<AuditEvent[]> {
    if (!ids.length) return [];
    const [main, archive] = await Promise.all([
      this.redis.hmget(this.keyspace.auditLocation('main'), ...ids),
      this.redis.hmget(this.keyspace.auditLocation('archive'), ...ids),
    ]);
    // Each chain's location hash maps an id to its seq there; the archive wins (a copy moved there).
    const refs: Array<{ chain: ChainName; seq: number }> = [];
    ids.forEach((_, i) => {
      if (archive[i]) refs.push({ chain: 'archive', seq: Number(archive[i]) });
      else if (main[i]) refs.push({ chain: 'main', seq: Number(main[i]) });
    });
    return this.eventsAt(refs);
  }

  /** The events at these chain positions, in the given order (positions purged meanwhile are skipped). */
  async eventsAt(refs: Array<{ chain: ChainName; seq: number }>): Promise<AuditEvent[]> {
    if (!refs.length) return [];
    const pipeline = this.redis.pipeline();
    for (const { chain, seq } of refs) pipeline.xrange(this.keyspace.auditStream(chain), streamId(seq), streamId(seq));
    const out: AuditEvent[] = [];
    for (const [err, value] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      const rows = value as Array<[string, string[]]>;
      if (rows.length) out.push(parseEvent(parseStreamEntry(rows[0]![0], rows[0]![1])));
    }
    return out;
  }

  async event(id: string): Promise<AuditEvent | undefined> {
    return (await this.events([id]))[0];
  }
}
