import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { isRedisOutage } from '../../platform/redis/outage.js';
import type { AuditEvent } from './audit-event.js';
import { byShardOrder, isChainName, parseEvent, parseStreamEntry, shardChains, type ChainEntry, type ChainName } from './chain.js';
import { postingScripts, streamId } from './postings.js';
import type { AuditHome } from './lane.js';

/** How long the list of shards is reused before it is read again (a new shard is rare). */
const SHARD_LIST_TTL_MS = 2000;

/** Reads entries and events out of the chains (every shard and the disclosure archive). */
export class AuditStore {
  private shardList: { at: number; chains: ChainName[] } | undefined;

  constructor(
    readonly redis: RedisClient,
    readonly keyspace: Keyspace,
    /** Shards this server writes (audit.chains); readers also find those written under an earlier setting. */
    private readonly configuredShards = 1,
    /** Where the trail lives for good when Redis is only its intake (PostgreSQL); undefined: Redis holds all of it. */
    readonly home?: AuditHome,
  ) {
    // Defined up front: with auto-pipelining, a script defined in the same tick as another command
    // is missing from that tick's pipeline ("pipeline[functionName] is not a function").
    postingScripts(redis);
  }

  /**
   * The shards to read: the configured ones and every shard a server has registered (a trail keeps
   * its shards when the setting is lowered). Read again every couple of seconds; while the
   * registry cannot be read (its master is down) the last answer stands.
   */
  async shards(): Promise<ChainName[]> {
    const now = Date.now();
    if (this.shardList && now - this.shardList.at < SHARD_LIST_TTL_MS) return this.shardList.chains;
    let registered: string[];
    try {
      registered = await this.redis.smembers(this.keyspace.auditShards());
    } catch (err) {
      if (!isRedisOutage(err) || !this.shardList) throw err;
      return this.shardList.chains;
    }
    const chains = [
      ...new Set<ChainName>([...shardChains(this.configuredShards), ...registered.filter(isChainName).filter((c) => c !== 'archive')]),
    ].sort(byShardOrder);
    this.shardList = { at: now, chains };
    return chains;
  }

  /** Every chain: the shards, then the archive. */
  async chains(): Promise<ChainName[]> {
    return [...(await this.shards()), 'archive'];
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

  /** How far the trail's home holds each chain (the shipper's watermark; 0: nothing yet). */
  async shippedSeqs(chains: ChainName[]): Promise<number[]> {
    const seqs = await Promise.all(chains.map((chain) => this.redis.hget(this.keyspace.auditShipped(chain), 'seq')));
    return seqs.map((s) => Number(s ?? 0));
  }

  /**
   * The events with these ids, in the given order (unknown ids are skipped): from Redis, then from
   * the home for those Redis no longer holds. In that order, an entry the shipper drops from Redis
   * meanwhile is already in the home (it drops only what the home confirmed).
   */
  async events(ids: string[]): Promise<AuditEvent[]> {
    const inRedis = await this.redisEvents(ids);
    if (!this.home || inRedis.length === ids.length) return inRedis;
    const found = new Set(inRedis.map((e) => e.id));
    const fromHome = await this.home.eventsByIds(ids.filter((id) => !found.has(id)));
    const byId = new Map([...inRedis, ...fromHome].map((e) => [e.id, e]));
    return ids.map((id) => byId.get(id)).filter((e): e is AuditEvent => e !== undefined);
  }

  private async redisEvents(ids: string[]): Promise<AuditEvent[]> {
    if (!ids.length) return [];
    const chains = await this.chains();
    const found = await Promise.all(chains.map((chain) => this.redis.hmget(this.keyspace.auditLocation(chain), ...ids)));
    // Each chain's location hash maps an id to its seq there; the archive wins (a copy moved there).
    const refs: Array<{ chain: ChainName; seq: number }> = [];
    ids.forEach((_, i) => {
      for (let c = chains.length - 1; c >= 0; c--) {
        const seq = found[c]![i];
        if (seq) {
          refs.push({ chain: chains[c]!, seq: Number(seq) });
          break;
        }
      }
    });
    return this.eventsAt(refs);
  }

  /** The entries at these chain positions, in the given order (undefined where purged meanwhile). */
  async entriesAt(refs: Array<{ chain: ChainName; seq: number }>): Promise<Array<ChainEntry | undefined>> {
    if (!refs.length) return [];
    // One read per entry, all sent at once: in a Cluster the chains live in different slots, so
    // they cannot share a pipeline (auto-pipelining groups what can go together).
    const rows = await Promise.all(
      refs.map(
        ({ chain, seq }) =>
          this.redis.xrange(this.keyspace.auditStream(chain), streamId(seq), streamId(seq)) as Promise<Array<[string, string[]]>>,
      ),
    );
    return rows.map((r) => (r.length ? parseStreamEntry(r[0]![0], r[0]![1]) : undefined));
  }

  /** The events at these chain positions, in the given order (positions purged meanwhile are skipped). */
  async eventsAt(refs: Array<{ chain: ChainName; seq: number }>): Promise<AuditEvent[]> {
    return (await this.entriesAt(refs)).filter((e): e is ChainEntry => e !== undefined).map(parseEvent);
  }

  async event(id: string): Promise<AuditEvent | undefined> {
    return (await this.events([id]))[0];
  }
}
