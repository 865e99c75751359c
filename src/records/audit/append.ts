import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { GENESIS_HASH, entryHash, type ChainName } from './chain.js';
import type { IndexParam } from './indexes.js';
import { encodeSeq, streamId } from './postings.js';

/**
 * Appends batches of events to one hash chain (a Redis stream plus its head). The hashes are
 * computed here, in Node, from the head this process last saw; the script then appends the batch
 * only if the head in Redis is still that one (compare-and-set on seq and hash) and moves the head
 * in the same step. Another instance that appended meanwhile makes the script answer `conflict`
 * with the current head: the batch is re-hashed on top of it and sent again. Redis runs a script
 * atomically, so however many instances share the trail they produce one unbroken chain.
 *
 * The script also appends the entries' seqs to the posting lists of their search values
 * (postings.ts) and writes their id → seq mapping, so an event is findable exactly when it is in
 * the chain.
 */

const APPEND_SCRIPT = `
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash', 't')
local seq = head[1] or '0'
local hash = head[2] or ARGV[5]
if seq ~= ARGV[1] or hash ~= ARGV[2] then
  return {'conflict', seq, hash}
end
local n = tonumber(ARGV[4])
-- Per event: hash, id, canonical JSON, recorded (ms); its seq and prev follow from the head.
-- Then the ids that may already be in the chain (caller-chosen ids; generated ones cannot be).
local nd = tonumber(ARGV[6 + n * 4])
if nd > 0 then
  local known = redis.call('HMGET', KEYS[3], unpack(ARGV, 7 + n * 4, 6 + n * 4 + nd))
  local dups = {'duplicate'}
  for d = 1, nd do
    if known[d] then dups[#dups + 1] = ARGV[6 + n * 4 + d] end
  end
  if #dups > 1 then return dups end
end
local t = head[3] or '0'
local out = {'ok'}
local locations = {}
local prev = ARGV[2]
local base = tonumber(ARGV[1])
for e = 1, n do
  local i = 6 + (e - 1) * 4
  local s = string.format('%d', base + e)
  -- Time never goes back along the chain (postings.ts): a date range is then a seq range.
  if tonumber(ARGV[i + 3]) > tonumber(t) then t = ARGV[i + 3] end
  redis.call('XADD', KEYS[2], s .. '-0', 'seq', s, 'prev', prev, 'hash', ARGV[i], 'id', ARGV[i + 1], 'event', ARGV[i + 2], 't', t)
  prev = ARGV[i]
  locations[#locations + 1] = ARGV[i + 1]
  locations[#locations + 1] = s
end
redis.call('HSET', KEYS[3], unpack(locations))
-- Posting lists: one APPEND per search value for the whole batch.
local i = 7 + n * 4 + nd
local nk = tonumber(ARGV[i])
for k = 1, nk do
  redis.call('APPEND', KEYS[tonumber(ARGV[i + 2 * k - 1])], ARGV[i + 2 * k])
end
redis.call('HSET', KEYS[1], 'seq', string.format('%d', base + n), 'hash', prev, 't', t)
return out
`;

export interface PreparedEvent {
  id: string;
  /** Canonical JSON of the event or compact record (what the hash covers). */
  json: string;
  /** `recorded` in epoch ms. */
  score: number;
  /** The search values this event is found by (indexes.ts). */
  index: Array<[IndexParam, string]>;
  /** The id was chosen by the caller (not generated here), so it may already be in the chain. */
  mayRepeat?: boolean;
}

export interface Head {
  seq: number;
  hash: string;
  sid?: string | undefined;
}

export interface AppendResult {
  /** How many events were appended (duplicates are not). */
  appended: number;
  /** Ids already in the trail (an earlier attempt of the same event got through): not appended again. */
  duplicates: string[];
  head: Head;
  /** Hashes of the appended entries, in order: the last is the head's, the first at seq head.seq - hashes.length + 1. */
  hashes: string[];
}

export class ChainConflictError extends Error {
  override name = 'ChainConflictError';
}

type Reply = [string, ...string[]];

interface AuditScripts {
  auditAppend(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<Reply>;
}

const defined = new WeakSet<RedisClient>();

/** Registers the script once per client (ioredis sends EVALSHA and falls back to EVAL itself). */
export function appendScripts(redis: RedisClient): RedisClient & AuditScripts {
  if (!defined.has(redis)) {
    redis.defineCommand('auditAppend', { lua: APPEND_SCRIPT });
    defined.add(redis);
  }
  return redis as RedisClient & AuditScripts;
}

const MAX_ATTEMPTS = 50;

export class ChainAppender {
  private head: Head | undefined;
  /** Posting list key names by parameter and value: the same few recur in every batch. */
  private readonly keys = new Map<string, Map<string, string>>();
  private keyCount = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    readonly chain: ChainName,
  ) {
    // Defined up front (see AuditStore): never in the same tick as the first append.
    appendScripts(redis);
  }

  private postingKey(param: IndexParam, value: string): string {
    let byValue = this.keys.get(param);
    if (!byValue) this.keys.set(param, (byValue = new Map()));
    let key = byValue.get(value);
    if (key === undefined) {
      if (this.keyCount >= 10_000) {
        this.keys.clear();
        this.keyCount = 0;
        this.keys.set(param, (byValue = new Map()));
      }
      key = this.keyspace.auditPostings(this.chain, param, value);
      byValue.set(value, key);
      this.keyCount++;
    }
    return key;
  }

  async readHead(): Promise<Head> {
    const [seq, hash] = await this.redis.hmget(this.keyspace.auditHead(this.chain), 'seq', 'hash');
    const at = seq ? Number(seq) : 0;
    return { seq: at, hash: hash ?? GENESIS_HASH, ...(at ? { sid: streamId(at) } : {}) };
  }

  /** Appends `events` in order (as one atomic step per attempt). */
  async append(events: PreparedEvent[]): Promise<AppendResult> {
    let batch = events;
    const duplicates: string[] = [];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!batch.length) return { appended: 0, duplicates, head: this.head ?? (await this.readHead()), hashes: [] };
      let head = this.head;
      if (!head) {
        const read = await this.readHead();
        // Another append may have set (and moved) the head while this one was reading it.
        head = this.head ?? read;
      }
      const keys = [this.keyspace.auditHead(this.chain), this.keyspace.auditStream(this.chain), this.keyspace.auditLocation(this.chain)];
      const argv: Array<string | number> = [head.seq, head.hash, this.chain, batch.length, GENESIS_HASH];
      const postings = new Map<string, string>();
      const hashes: string[] = [];
      let prev = head.hash;
      batch.forEach((ev, n) => {
        const seq = head.seq + n + 1;
        prev = entryHash(seq, prev, ev.json);
        hashes.push(prev);
        argv.push(prev, ev.id, ev.json, ev.score);
        const posting = encodeSeq(seq);
        for (const [param, value] of ev.index) {
          const key = this.postingKey(param, value);
          postings.set(key, (postings.get(key) ?? '') + posting);
        }
      });
      const mayRepeat = batch.filter((ev) => ev.mayRepeat).map((ev) => ev.id);
      argv.push(mayRepeat.length, ...mayRepeat, postings.size);
      for (const [key, list] of postings) {
        keys.push(key);
        argv.push(keys.length, list);
      }
      // Pipelining: the head this batch will leave is taken as the head at once, so a batch
      // started while this one is on its way chains onto it. Redis runs the scripts in the order
      // they were sent on the connection; if this one does not append, every batch chained onto
      // it meets a different head and is re-hashed, and the cached head is dropped.
      const predicted: Head = { seq: head.seq + batch.length, hash: prev };
      this.head = predicted;
      let reply: Reply;
      try {
        reply = await appendScripts(this.redis).auditAppend(keys.length, ...keys, ...argv);
      } catch (err) {
        // The outcome is unknown (a timeout may still have appended): forget the cached head so
        // the next attempt starts from what Redis holds.
        this.head = undefined;
        throw err;
      }
      if (reply[0] === 'ok') {
        // Entry ids are `<seq>-0` (postings.ts): nothing to read back.
        const appended: Head = { ...predicted, sid: streamId(predicted.seq) };
        if (this.head === predicted) this.head = appended;
        return { appended: batch.length, duplicates, head: appended, hashes };
      }
      if (this.head === predicted) this.head = reply[0] === 'conflict' ? { seq: Number(reply[1]), hash: reply[2]! } : head;
      else this.head = undefined;
      if (reply[0] === 'conflict') continue;
      if (reply[0] === 'duplicate') {
        const dup = new Set(reply.slice(1));
        duplicates.push(...dup);
        batch = batch.filter((e) => !dup.has(e.id));
        continue;
      }
      throw new Error(`unexpected reply from the audit append script: ${String(reply[0])}`);
    }
    throw new ChainConflictError(`the audit chain head kept moving; gave up after ${MAX_ATTEMPTS} attempts`);
  }
}
