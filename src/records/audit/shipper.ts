import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { isRedisOutage } from '../../platform/redis/outage.js';
import type { Metrics } from '../../platform/ops/metrics.js';
import type { ChainEntry, ChainName } from './chain.js';
import type { CheckpointStore } from './checkpoints.js';
import { dropPrefix } from './drop-prefix.js';
import { streamId } from './postings.js';
import type { AuditStore } from './store.js';
import { AuditIntegrityError, type PgAuditStore } from './pg/store.js';
import { isPgOutage } from './pg/outage.js';

/**
 * Moves the trail from its Redis intake to PostgreSQL, its home (docs/audit-postgres.md).
 *
 * Per chain, in seq order, exactly once: PostgreSQL's highest seq is where shipping resumes, the
 * insert is idempotent by (chain, seq) and refuses a different entry at a stored seq, so a crash
 * of the shipper, Redis or PostgreSQL at any point only means the next round sends some entries
 * again. Every instance runs a shipper; a lease per chain in Redis lets one of them ship it at a
 * time, and another takes over within the lease time when that one stops.
 *
 * After each batch is committed, the chain's watermark in Redis says how far PostgreSQL holds
 * it: readers take entries up to it from PostgreSQL and the rest from Redis (search.ts), and the
 * intake's bound and the lag metrics count from it (trail.ts). Redis keeps a confirmed prefix a while longer
 * (TRIM_DELAY_MS) so a reader that took the watermark a moment ago still finds its entries, then
 * the shipper signs a `ship-cut` checkpoint at the cut, stores it in PostgreSQL, and drops the
 * prefix from Redis: Redis holds only what is on its way, bounded by the shipping lag.
 */

export interface ShipperDeps {
  redis: RedisClient;
  keyspace: Keyspace;
  store: AuditStore;
  pg: PgAuditStore;
  checkpoints: CheckpointStore;
  logger: Logger;
  metrics?: Metrics | undefined;
  /** Tuning and tests. */
  options?: Partial<ShipperOptions>;
}

export interface ShipperOptions {
  /** Entries per insert. */
  batch: number;
  /** Pause when every chain is caught up. */
  idleMs: number;
  /** A lease lasts this long unless renewed; another instance takes over after it. */
  leaseMs: number;
  /** A confirmed prefix stays in Redis at least this long before it is dropped. */
  trimDelayMs: number;
  /** Most often a chain is trimmed (each trim signs a checkpoint). */
  trimEveryMs: number;
  /** Pause after a failed round. */
  retryMs: number;
}

const DEFAULTS: ShipperOptions = { batch: 1000, idleMs: 200, leaseMs: 15_000, trimDelayMs: 30_000, trimEveryMs: 30_000, retryMs: 1000 };

/** What this instance knows about a chain while it holds its lease. */
interface ChainState {
  /** Highest seq PostgreSQL holds (read from PostgreSQL when the lease is taken). */
  confirmed: number;
  /** Confirmed batches not yet trimmed from Redis: their last entry and when PostgreSQL confirmed it. */
  pending: Array<{ seq: number; hash: string; sid: string; at: number }>;
  lastTrim: number;
  /** Checkpoints already stored in PostgreSQL (by JWS), so each round sends only new ones. */
  shippedCheckpoints: Set<string>;
  /** The chain cannot be shipped until an operator looks (a gap or a refused entry); logged once. */
  stalled?: string;
}

export class AuditShipper {
  private readonly options: ShipperOptions;
  private readonly instance = randomUUID();
  private readonly held = new Map<ChainName, ChainState>();
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly deps: ShipperDeps) {
    this.options = { ...DEFAULTS, ...deps.options };
  }

  start(): void {
    if (this.running) return;
    this.running = this.loop();
  }

  /** Finishes the round in progress, gives up the leases, and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    const { redis, keyspace } = this.deps;
    await Promise.all(
      [...this.held.keys()].map((chain) =>
        redis
          .eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            1,
            keyspace.auditShipLease(chain),
            this.instance,
          )
          .catch(() => {}),
      ),
    );
    this.held.clear();
  }

  /** Ships until every chain this instance can lease is caught up (tests, `audit ship`). Returns how many entries it moved. */
  async drain(): Promise<number> {
    let moved = 0;
    for (;;) {
      const n = await this.round();
      moved += n;
      if (n === 0) return moved;
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let pause = this.options.idleMs;
      try {
        if ((await this.round()) > 0) pause = 0;
      } catch (err) {
        pause = this.options.retryMs;
        this.deps.logger.warn({ err: { message: (err as Error).message } }, 'audit shipping round failed; trying again');
      }
      if (pause && !this.stopped) await new Promise<void>((resolve) => this.sleep(resolve, pause));
    }
  }

  private sleep(resolve: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.wake = undefined;
      resolve();
    }, ms);
    this.wake = () => {
      clearTimeout(timer);
      this.wake = undefined;
      resolve();
    };
  }

  /**
   * One pass over every chain, chains in parallel (each is its own sequence in PostgreSQL, with its
   * own lock there): ship a batch where this instance holds the lease, trim where due.
   */
  private async round(): Promise<number> {
    const results = await Promise.allSettled((await this.deps.store.chains()).map((chain) => this.roundOf(chain)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  private async roundOf(chain: ChainName): Promise<number> {
    if (this.stopped) return 0;
    let state: ChainState | undefined;
    try {
      // Taking the lease reads PostgreSQL too: a round that fails there is counted like any other.
      state = await this.lease(chain);
      if (!state || state.stalled) return 0;
      const moved = await this.shipBatch(chain, state);
      await this.trimIfDue(chain, state);
      return moved;
    } catch (err) {
      this.failed(chain, state, err);
      return 0;
    }
  }

  /** Takes or renews the chain's lease; the chain's state while held, undefined when another instance holds it. */
  private async lease(chain: ChainName): Promise<ChainState | undefined> {
    const { redis, keyspace } = this.deps;
    const key = keyspace.auditShipLease(chain);
    const renewed = await redis.eval(
      "local v = redis.call('GET', KEYS[1]) if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end if v then return 0 end redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2",
      1,
      key,
      this.instance,
      this.options.leaseMs,
    );
    if (Number(renewed) === 0) {
      this.held.delete(chain);
      return undefined;
    }
    let state = this.held.get(chain);
    if (Number(renewed) === 2 || !state) {
      // A fresh lease: another instance may have shipped meanwhile; PostgreSQL says how far.
      state = { confirmed: await this.deps.pg.highestSeq(chain), pending: [], lastTrim: Date.now(), shippedCheckpoints: new Set() };
      this.held.set(chain, state);
      if (state.confirmed) await this.confirmEnd(chain, state);
    }
    return state;
  }

  /** Sends the next batch of a chain after what PostgreSQL holds; how many entries were moved. */
  private async shipBatch(chain: ChainName, state: ChainState): Promise<number> {
    const { store, pg, metrics } = this.deps;
    const batch = await store.entries(chain, state.confirmed ? streamId(state.confirmed) : undefined, this.options.batch);
    await this.shipCheckpoints(chain, state, state.confirmed);
    if (!batch.length) return 0;
    if (batch[0]!.seq !== state.confirmed + 1) {
      // Redis does not continue what PostgreSQL holds: entries were lost from the intake (a Redis
      // without its append-only file, a failover that took writes back) or removed by hand.
      throw new ShipGapError(`the Redis intake continues at seq ${batch[0]!.seq}, but PostgreSQL holds up to seq ${state.confirmed}`);
    }
    await pg.insert(batch.map(({ sid: _sid, ...entry }) => ({ ...entry, chain })));
    const last = batch[batch.length - 1]!;
    state.confirmed = last.seq;
    state.pending.push({ seq: last.seq, hash: last.hash, sid: last.sid, at: Date.now() });
    await this.shipCheckpoints(chain, state, last.seq);
    await this.publish(chain, last);
    metrics?.auditShipped.inc({ chain }, batch.length);
    return batch.length;
  }

  /** The watermark readers and the intake's bound use; written only after PostgreSQL committed. */
  private async publish(chain: ChainName, last: Pick<ChainEntry, 'seq' | 't'>): Promise<void> {
    const { redis, keyspace } = this.deps;
    await redis.hset(keyspace.auditShipped(chain), 'seq', String(last.seq), 't', String(last.t), 'at', String(Date.now()));
  }

  /** On taking a lease: make the watermark match PostgreSQL, and resume trimming from there. */
  private async confirmEnd(chain: ChainName, state: ChainState): Promise<void> {
    const [entry] = await this.deps.store.entriesAt([{ chain, seq: state.confirmed }]);
    if (entry) {
      state.pending.push({ seq: entry.seq, hash: entry.hash, sid: entry.sid, at: Date.now() });
      await this.publish(chain, entry);
    }
  }

  /** Stores the chain's signed checkpoints up to `upTo` in PostgreSQL (idempotent), so verify finds them there. */
  private async shipCheckpoints(chain: ChainName, state: ChainState, upTo: number): Promise<void> {
    if (!upTo) return;
    const { redis, keyspace, pg } = this.deps;
    const jwss = await redis.zrangebyscore(keyspace.auditCheckpoints(chain), '-inf', upTo);
    for (const jws of jwss) {
      if (state.shippedCheckpoints.has(jws)) continue;
      await pg.insertCheckpoint(jws);
      state.shippedCheckpoints.add(jws);
    }
  }

  /**
   * Drops from Redis the prefix PostgreSQL confirmed at least trimDelayMs ago: signs a `ship-cut`
   * checkpoint at the cut (verify starts the Redis chain there), stores it in PostgreSQL first,
   * then removes the entries, their index postings and locations, and the checkpoints before it.
   */
  private async trimIfDue(chain: ChainName, state: ChainState): Promise<void> {
    const now = Date.now();
    if (now - state.lastTrim < this.options.trimEveryMs) return;
    let cut: ChainState['pending'][number] | undefined;
    while (state.pending.length && state.pending[0]!.at <= now - this.options.trimDelayMs) cut = state.pending.shift();
    state.lastTrim = now;
    if (!cut) return;
    const { store, checkpoints, pg } = this.deps;
    const first = (await store.entries(chain, undefined, 1))[0];
    if (!first || first.seq > cut.seq) return;
    const signed = await checkpoints.writeAt(chain, { seq: cut.seq, hash: cut.hash, sid: cut.sid }, 'ship-cut');
    await pg.insertCheckpoint(signed.jws);
    state.shippedCheckpoints.add(signed.jws);
    // Checkpoints signed meanwhile at or before the cut (cadence, interval) go to PostgreSQL before Redis drops them.
    await this.shipCheckpoints(chain, state, cut.seq);
    let after: string | undefined;
    for (;;) {
      const page = (await store.entries(chain, after, this.options.batch)).filter((e) => e.seq <= cut.seq);
      if (!page.length) break;
      await dropPrefix(store, chain, page);
      after = page[page.length - 1]!.sid;
      if (page[page.length - 1]!.seq >= cut.seq) break;
    }
    // Checkpoints below the cut are gone from Redis now; forget them here too.
    state.shippedCheckpoints = new Set([...state.shippedCheckpoints].filter((jws) => jws === signed.jws));
  }

  private failed(chain: ChainName, state: ChainState | undefined, err: unknown): void {
    const { logger, metrics } = this.deps;
    if (isPgOutage(err) || isRedisOutage(err)) {
      metrics?.auditShipErrors.inc({ chain, kind: 'unavailable' });
      // What PostgreSQL holds is re-read when the round is tried again.
      this.held.delete(chain);
      throw err;
    }
    const kind = err instanceof ShipGapError ? 'gap' : err instanceof AuditIntegrityError ? 'integrity' : 'error';
    metrics?.auditShipErrors.inc({ chain, kind });
    if (kind === 'error') {
      this.held.delete(chain);
      throw err;
    }
    // Sending the same entries again would be refused the same way: an operator has to look.
    if (state) state.stalled = (err as Error).message;
    logger.error(
      { chain, err: { message: (err as Error).message } },
      'audit shipping of this chain stopped: PostgreSQL and the Redis intake disagree; run `smart-authz audit verify` and see docs/audit-postgres.md',
    );
  }
}

/** The Redis intake does not continue where PostgreSQL's copy of the chain ends. */
export class ShipGapError extends Error {
  override name = 'ShipGapError';
}
