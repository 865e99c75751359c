import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import type { Metrics } from '../../platform/ops/metrics.js';
import { auditEventProblems } from './audit-event.js';
import { canonicalJson, shardChains, type ChainName } from './chain.js';
import { ChainAppender, type PreparedEvent } from './append.js';
import { eventOf, indexEntriesOf, isCompactRecord, type Recordable } from './stored-event.js';
import { introspectionRecordJson, isIntrospectionRecord } from './forms/introspection.js';
import { CheckpointStore, keyStoreCheckpointKeys, signCadence, type CheckpointKeys } from './checkpoints.js';
import { createAnchor, type CheckpointAnchor } from './anchor.js';
import { asRequestWrite } from '../../platform/redis/write-acks.js';
import { isRedisOutage } from '../../platform/redis/outage.js';
import { AuditStore } from './store.js';
import { StoreUnavailableError } from '../../platform/redis/circuit-breaker.js';

export interface AuditTrail {
  /** Resolves once the event is durably appended to the hash-chained Redis stream; rejects if it could not be. */
  record(event: Recordable): Promise<void>;
}

/** The part of the trail that routes and services writing events need. */
export type AuditRecorder = Pick<AuditTrail, 'record'>;

export interface AuditTrailDeps {
  config: Config;
  redis: RedisClient;
  keyspace: Keyspace;
  logger: Logger;
  metrics?: Metrics;
  /** Keys for checkpoints; default: the server's key store in the same Redis. */
  checkpointKeys?: CheckpointKeys;
  /** Where checkpoints are also written outside Redis; default: what the configuration names (anchor.ts). */
  anchor?: CheckpointAnchor;
  /**
   * The trail's home is PostgreSQL (shipper.ts): watch how far it lags behind the Redis intake,
   * report it, and refuse new events while every chain holds more than audit.intakeMaxEvents
   * unconfirmed ones.
   */
  intake?: boolean;
  /**
   * Sign the head every audit.checkpointIntervalSeconds, also when idle (default true). Off for the
   * admin CLI: a tool run after tampering must not sign what it finds, or it would launder it.
   */
  intervalCheckpoints?: boolean;
}

export class InvalidAuditEventError extends Error {
  override name = 'InvalidAuditEventError';
}

// Two batches on their way at once: one is always being filled while the other is in Redis, and
// batches stay large (Redis pays per script call as much as per event). Measured against 1, 3, 4
// and 8 with bench:introspect.
const MAX_IN_FLIGHT = 2;

interface Pending {
  event: PreparedEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** One chain of the trail as this instance writes it. */
interface Shard {
  chain: ChainName;
  appender: ChainAppender;
  /** Batches sent to this chain and not yet answered; up to MAX_IN_FLIGHT are pipelined. */
  inFlight: number;
  /** Until when appends avoid this chain (its Redis node failed); 0 = healthy. */
  avoidUntil: number;
}

/** How often the intake's lag behind PostgreSQL is read (trail with `intake`). */
const INTAKE_WATCH_MS = 1000;

/** How long a chain whose node failed is passed over while other chains take the appends. */
const AVOID_MS = 1000;

/**
 * Whether an append certainly did not happen, so its events may go to another chain without being
 * recorded twice: it was never sent (the breaker was open), or Redis refused it before running it
 * (Cluster redirection or down, a read-only replica, still loading). A timeout or a dropped
 * connection may have come after the script ran, so those events are not moved: the caller gets
 * a 503 instead of a possible duplicate.
 */
function certainlyNotAppended(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const message = err instanceof Error ? err.message : '';
  const name = err instanceof Error ? err.name : '';
  return (
    /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|READONLY|MASTERDOWN)\b/.test(message) ||
    /^(None of startup nodes is available|Failed to refresh slots cache|Too many Cluster redirections)/.test(message) ||
    name === 'ClusterAllFailedError' ||
    /\bECONNREFUSED\b/.test(message)
  );
}

/**
 * Turns an event (or a compact record) into what the append script writes: id and recorded
 * filled in, canonical JSON, search values. Validation renders a compact record and checks the
 * AuditEvent it stands for, so development catches a record that would read back wrong.
 */
export function prepareEvent(input: Recordable, validate = true, opts: { mayRepeat?: boolean } = {}): PreparedEvent {
  const item: Recordable = isCompactRecord(input)
    ? input
    : { ...input, id: input.id ?? randomUUID(), recorded: input.recorded ?? new Date().toISOString() };
  if (validate) {
    const problems = auditEventProblems(eventOf(item));
    if (problems.length) throw new InvalidAuditEventError(`not a valid R4 AuditEvent: ${problems.slice(0, 5).join('; ')}`);
  }
  const score = Date.parse(item.recorded!);
  if (!Number.isFinite(score)) throw new InvalidAuditEventError(`recorded is not a date-time: ${String(item.recorded)}`);
  const prepared: PreparedEvent = {
    id: item.id!,
    json: isIntrospectionRecord(item) ? introspectionRecordJson(item) : canonicalJson(item),
    score,
    index: indexEntriesOf(item),
  };
  // A new record's id is a fresh UUID; an event may come with its own, and a copy (retention's
  // archive, re-run after an interruption) may already be there.
  if (opts.mayRepeat || (!isCompactRecord(input) && input.id !== undefined)) prepared.mayRepeat = true;
  return prepared;
}

/**
 * Group commit: `record` only queues the event; everything queued in the same tick, and
 * everything queued while an append is on its way to Redis, goes into the next single script
 * call. Under load one round trip carries many events (the introspection endpoint's cost), with
 * no timer-induced latency when idle. Each caller's promise settles with its batch, after Redis
 * has executed the script, so "resolved" means "in the chain".
 *
 * Durability is Redis's: with `appendonly yes` and `appendfsync always` an acknowledged append
 * survives a Redis crash; with `everysec` up to a second may be lost (docs/audit.md).
 */
class RedisAuditTrail implements AuditTrail {
  private queue: Pending[] = [];
  /** Batches sent and not yet answered, over all chains. */
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  /** Checkpoints being signed (cadence and interval); close() waits for them. */
  private readonly signing = new Set<Promise<unknown>>();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly shards: Shard[];
  /** Round-robin start for the next batch, so busy or not, every chain takes its share. */
  private turn = 0;
  /** Resolves once the shards beyond `main` are in the registry readers use (store.ts); undefined: not yet asked. */
  private registered: Promise<void> | undefined;
  private readonly anchor: CheckpointAnchor | undefined;
  private readonly instance = randomUUID();
  readonly checkpoints: CheckpointStore;

  private readonly validate: boolean;
  /** Set while every chain's intake is over its bound (PostgreSQL not keeping up or down). */
  private intakeFull: string | undefined;
  /** Chains whose intake is over its bound: no appends go there (a stalled chain must not grow). */
  private overBound = new Set<ChainName>();
  /** Reads the entry after a chain's watermark (its age is the intake's lag in seconds). */
  private readonly store: AuditStore;
  private readonly intakeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: AuditTrailDeps) {
    this.validate = deps.config.audit.validateEvents ?? deps.config.mode !== 'production';
    this.store = new AuditStore(deps.redis, deps.keyspace, deps.config.audit.chains);
    this.shards = shardChains(deps.config.audit.chains).map((chain) => ({
      chain,
      appender: new ChainAppender(deps.redis, deps.keyspace, chain),
      inFlight: 0,
      avoidUntil: 0,
    }));
    const keys = deps.checkpointKeys ?? keyStoreCheckpointKeys(deps.redis, deps.keyspace, deps.config.keyEncryptionSecret);
    this.anchor = deps.anchor ?? createAnchor({ config: deps.config, logger: deps.logger, metrics: deps.metrics });
    this.checkpoints = new CheckpointStore(deps.redis, deps.keyspace, keys, deps.config.issuer, this.anchor);
    if (deps.intervalCheckpoints !== false) {
      // Several ticks per interval, so the lease (below) is taken soon after it lapses, by whichever instance ticks first.
      const tick = Math.max(1000, Math.ceil((deps.config.audit.checkpointIntervalSeconds * 1000) / 4));
      this.timer = setInterval(() => this.track(this.intervalCheckpoint()), tick);
      this.timer.unref();
      this.track(this.startUp());
    }
    if (deps.intake) {
      this.intakeTimer = setInterval(() => void this.watchIntake().catch(() => {}), INTAKE_WATCH_MS);
      this.intakeTimer.unref();
    }
  }

  /**
   * Reads each chain's head and how far PostgreSQL holds it (the shipper's watermark), sets the
   * lag metrics, and closes the intake while every chain is over its bound: a refused request
   * (503) loses nothing, an intake that grows until Redis runs out of memory loses everything.
   */
  private async watchIntake(): Promise<void> {
    const { redis, keyspace, metrics, config } = this.deps;
    const now = Date.now();
    const over = new Set<ChainName>();
    await Promise.all(
      this.shards.map(async ({ chain }) => {
        const [[head], [shipped]] = await Promise.all([
          redis.hmget(keyspace.auditHead(chain), 'seq'),
          redis.hmget(keyspace.auditShipped(chain), 'seq'),
        ]);
        const confirmed = Number(shipped ?? 0);
        const events = Math.max(0, Number(head ?? 0) - confirmed);
        // The age of the oldest entry waiting: the one right after the watermark.
        let seconds = 0;
        if (events) {
          const [oldest] = await this.store.entriesAt([{ chain, seq: confirmed + 1 }]);
          if (oldest) seconds = Math.max(0, now - oldest.t) / 1000;
        }
        metrics?.auditIntakeLagEvents.set({ chain }, events);
        metrics?.auditIntakeLagSeconds.set({ chain }, seconds);
        if (events > config.audit.intakeMaxEvents) over.add(chain);
      }),
    );
    // A chain over its bound takes no more appends (the others do); when every chain is over it,
    // the intake is full and audited requests are refused.
    this.overBound = over;
    const full = over.size === this.shards.length;
    if (full && !this.intakeFull)
      this.deps.logger.error(
        { chains: [...over] },
        'the audit intake is full: PostgreSQL has not confirmed the trail for a while; audited requests get 503 until it catches up',
      );
    else if (over.size && !full)
      this.deps.logger.warn({ chains: [...over] }, 'audit chains over the intake bound take no appends until PostgreSQL confirms them');
    if (!full && this.intakeFull) this.deps.logger.info('the audit intake takes events again');
    this.intakeFull = full
      ? `the audit intake holds more than ${config.audit.intakeMaxEvents} events PostgreSQL has not confirmed`
      : undefined;
  }

  record(event: Recordable): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    // An outage as far as the request is concerned: 503 + Retry-After, nothing recorded or done.
    if (this.intakeFull) return Promise.reject(new StoreUnavailableError(this.intakeFull));
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(event, this.validate);
    } catch (err) {
      return Promise.reject(err);
    }
    // The batch goes out from whichever request's tick drains the queue: count it as this
    // request's write, so the request waits for the replicas to have it (platform/redis/write-acks.ts).
    return asRequestWrite(
      new Promise<void>((resolve, reject) => {
        this.queue.push({ event: prepared, resolve, reject });
        if (this.inFlight < MAX_IN_FLIGHT * this.shards.length && !this.scheduled) {
          this.scheduled = true;
          setImmediate(() => this.drain());
        }
      }),
    );
  }

  /**
   * Sends what is queued, in batches, without waiting for earlier batches to be answered (up to
   * MAX_IN_FLIGHT per chain): a busy server never idles while a batch is on its way to Redis and
   * back. The appender chains each batch onto the one before (append.ts).
   */
  private drain(): void {
    this.scheduled = false;
    while (this.queue.length) {
      const shard = this.pick(new Set(), false);
      if (!shard) break;
      const batch = this.queue.splice(0, this.deps.config.audit.maxBatch);
      shard.inFlight += 1;
      this.inFlight += 1;
      void this.send(shard, batch).finally(() => {
        shard.inFlight -= 1;
        this.inFlight -= 1;
        if (this.queue.length) this.drain();
      });
    }
    // Every chain went over the intake's bound while these waited: nothing will take them (and no
    // batch in flight will call drain again), so they are refused like new ones.
    if (this.queue.length && !this.inFlight && this.shards.every((s) => this.overBound.has(s.chain))) {
      const refused = this.queue.splice(0);
      const err = new StoreUnavailableError(this.intakeFull ?? 'the audit intake is full');
      for (const p of refused) p.reject(err);
    }
  }

  /**
   * The chain for the next batch: round robin over the chains with room, passing over those whose
   * node failed a moment ago. With `anyRoom`, a batch that failed elsewhere may go to a chain that
   * is already full (it is one batch, and waiting would only lengthen the outage it is escaping).
   * When every chain is being avoided, one is tried anyway: the outage may be over.
   */
  private pick(exclude: Set<Shard>, anyRoom: boolean): Shard | undefined {
    const now = Date.now();
    let fallback: Shard | undefined;
    for (let i = 0; i < this.shards.length; i++) {
      const shard = this.shards[(this.turn + i) % this.shards.length]!;
      if (exclude.has(shard) || this.overBound.has(shard.chain) || (!anyRoom && shard.inFlight >= MAX_IN_FLIGHT)) continue;
      if (shard.avoidUntil > now) {
        if (!fallback || shard.avoidUntil < fallback.avoidUntil) fallback = shard;
        continue;
      }
      this.turn = (this.turn + i + 1) % this.shards.length;
      return shard;
    }
    return fallback;
  }

  private async send(first: Shard, batch: Pending[]): Promise<void> {
    const tried = new Set<Shard>();
    let shard = first;
    for (;;) {
      try {
        if (shard.chain !== 'main') await this.register();
        const result = await shard.appender.append(batch.map((p) => p.event));
        shard.avoidUntil = 0;
        this.deps.metrics?.auditBatchSize.observe(batch.length);
        this.deps.metrics?.auditEvents.inc({ result: 'ok' }, batch.length);
        for (const p of batch) p.resolve();
        // After the callers are answered: signing and anchoring never sit on the request path.
        if (result.hashes.length) this.track(signCadence(this.checkpoints, shard.chain, result, this.deps.config.audit.checkpointEvery));
        return;
      } catch (err) {
        tried.add(shard);
        if (isRedisOutage(err)) shard.avoidUntil = Date.now() + AVOID_MS;
        // Another chain (another hash tag, in a Cluster usually another master) may take it.
        const next = certainlyNotAppended(err) ? this.pick(tried, true) : undefined;
        if (next) {
          this.deps.logger.warn(
            { err: { message: (err as Error).message }, chain: shard.chain, to: next.chain, events: batch.length },
            'audit append moved to another chain',
          );
          shard = next;
          continue;
        }
        this.deps.logger.error(
          { err: { message: (err as Error).message }, chain: shard.chain, events: batch.length },
          'audit events could not be appended',
        );
        this.deps.metrics?.auditEvents.inc({ result: 'error' }, batch.length);
        for (const p of batch) p.reject(err);
        return;
      }
    }
  }

  /**
   * Adds this server's shards beyond `main` to the registry before their first append, so readers
   * (search, read by id, verify) look in them even after the setting is lowered again.
   */
  private register(): Promise<void> {
    if (!this.registered) {
      const { redis, keyspace } = this.deps;
      this.registered = redis.sadd(keyspace.auditShards(), ...this.shards.map((s) => s.chain).filter((c) => c !== 'main')).then(
        () => undefined,
        (err: unknown) => {
          this.registered = undefined;
          throw err;
        },
      );
    }
    return this.registered;
  }

  /** Keeps a checkpoint write for close() to wait on; its failure is logged (the chain is intact, only less anchored). */
  private track(work: Promise<unknown>): void {
    const p = work
      .catch((err: unknown) =>
        this.deps.logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint could not be written'),
      )
      .finally(() => this.signing.delete(p));
    this.signing.add(p);
  }

  /** Says so when the newest checkpoint is already older than verify accepts, then signs the head. */
  private async startUp(): Promise<void> {
    const { checkpointIntervalSeconds, checkpointGraceSeconds } = this.deps.config.audit;
    const newest = await this.checkpoints.newestIat('main');
    const now = Math.floor(Date.now() / 1000);
    if (this.shards.length > 1) await this.register();
    if (newest !== undefined && now - newest > checkpointIntervalSeconds + checkpointGraceSeconds) {
      this.deps.logger.warn(
        { newestCheckpoint: new Date(newest * 1000).toISOString() },
        'the newest signed audit checkpoint is older than audit verify accepts: expected if no server ran meanwhile; otherwise run `smart-authz audit verify --anchor <dir>`',
      );
    }
    await this.intervalCheckpoint();
  }

  /**
   * Signs each chain's head once per interval across all instances: a lease in Redis (SET NX EX)
   * lets one instance write it, and lapses after the interval. A quiet trail gets checkpoints too,
   * so a stale newest checkpoint means checkpoints were deleted or no server ran (verify.ts). Each
   * chain on its own: one whose node is down does not hold the others back.
   */
  private async intervalCheckpoint(): Promise<void> {
    if (this.closed) return;
    // Shards an earlier setting wrote are signed too (the store's registry): verify holds every shard to the interval.
    const results = await Promise.allSettled((await this.store.shards()).map((chain) => this.intervalCheckpointOf(chain)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async intervalCheckpointOf(chain: ChainName): Promise<void> {
    const { redis, keyspace, config } = this.deps;
    const lease = keyspace.auditCheckpointLease(chain);
    if ((await redis.set(lease, this.instance, 'EX', config.audit.checkpointIntervalSeconds, 'NX')) !== 'OK') return;
    try {
      const cp = await this.checkpoints.write(chain, 'interval');
      await this.checkpoints.dropSuperseded(chain, cp);
    } catch (err) {
      // Let the next tick (on any instance) try again rather than wait out the lease.
      await redis
        .eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, lease, this.instance)
        .catch(() => {});
      throw err;
    }
  }

  /** Signs the current head of every chain this server writes now (`smart-authz audit checkpoint`, tests). */
  async checkpoint(reason: string): Promise<void> {
    for (const { chain } of this.shards) await this.checkpoints.write(chain, reason);
  }

  /** Resolves once every checkpoint started so far is signed and anchored. */
  async settled(): Promise<void> {
    while (this.signing.size) await Promise.all([...this.signing]);
    await this.anchor?.flush();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.intakeTimer) clearInterval(this.intakeTimer);
    // Let queued events finish; nothing new is accepted.
    this.closed = true;
    while (this.inFlight || this.scheduled || this.queue.length) {
      if (!this.inFlight && !this.scheduled) this.drain();
      await new Promise((r) => setTimeout(r, 5));
    }
    await this.settled();
    if (!this.deps.anchor) await this.anchor?.close();
  }
}

export function createAuditTrail(deps: AuditTrailDeps): AuditTrail & {
  readonly checkpoints: CheckpointStore;
  checkpoint(reason: string): Promise<void>;
  settled(): Promise<void>;
  close(): Promise<void>;
} {
  return new RedisAuditTrail(deps);
}
