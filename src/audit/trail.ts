import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';
import type { Metrics } from '../ops/metrics.js';
import { auditEventProblems } from './audit-event.js';
import { canonicalJson } from './chain.js';
import { ChainAppender, type PreparedEvent } from './append.js';
import { eventOf, indexEntriesOf, type Recordable } from './stored-event.js';
import { introspectionRecordJson, isIntrospectionRecord } from './forms/introspection.js';
import { CheckpointStore, keyStoreCheckpointKeys, signCadence, type CheckpointKeys } from './checkpoints.js';
import { createAnchor, type CheckpointAnchor } from './anchor.js';
import { asRequestWrite } from '../redis/write-acks.js';

export type { AuditEvent } from './audit-event.js';

export interface AuditTrail {
  /** Resolves once the event is durably appended to the hash-chained Redis stream; rejects if it could not be. */
  record(event: Recordable): Promise<void>;
}

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

/**
 * Turns an event (or a compact record) into what the append script writes: id and recorded
 * filled in, canonical JSON, search values. Validation renders a compact record and checks the
 * AuditEvent it stands for, so development catches a record that would read back wrong.
 */
export function prepareEvent(input: Recordable, validate = true, opts: { mayRepeat?: boolean } = {}): PreparedEvent {
  const item: Recordable = isIntrospectionRecord(input) ? input : { ...input, id: input.id ?? randomUUID(), recorded: input.recorded ?? new Date().toISOString() };
  if (validate) {
    const problems = auditEventProblems(eventOf(item));
    if (problems.length) throw new InvalidAuditEventError(`not a valid R4 AuditEvent: ${problems.slice(0, 5).join('; ')}`);
  }
  const score = Date.parse(item.recorded!);
  if (!Number.isFinite(score)) throw new InvalidAuditEventError(`recorded is not a date-time: ${String(item.recorded)}`);
  const prepared: PreparedEvent = { id: item.id!, json: isIntrospectionRecord(item) ? introspectionRecordJson(item) : canonicalJson(item), score, index: indexEntriesOf(item) };
  // A new record's id is a fresh UUID; an event may come with its own, and a copy (retention's
  // archive, re-run after an interruption) may already be there.
  if (opts.mayRepeat || (!isIntrospectionRecord(input) && input.id !== undefined)) prepared.mayRepeat = true;
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
 * survives a Redis crash; with `everysec` up to a second may be lost (README "Audit trail").
 */
class RedisAuditTrail implements AuditTrail {
  private queue: Pending[] = [];
  /** Batches sent and not yet answered; up to MAX_IN_FLIGHT are pipelined on the connection. */
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  /** Checkpoints being signed (cadence and interval); close() waits for them. */
  private readonly signing = new Set<Promise<unknown>>();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly appender: ChainAppender;
  private readonly anchor: CheckpointAnchor | undefined;
  private readonly instance = randomUUID();
  readonly checkpoints: CheckpointStore;

  private readonly validate: boolean;

  constructor(private readonly deps: AuditTrailDeps) {
    this.validate = deps.config.audit.validateEvents ?? deps.config.mode !== 'production';
    this.appender = new ChainAppender(deps.redis, deps.keyspace, 'main');
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
  }

  record(event: Recordable): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(event, this.validate);
    } catch (err) {
      return Promise.reject(err);
    }
    // The batch goes out from whichever request's tick drains the queue: count it as this
    // request's write, so the request waits for the replicas to have it (redis/write-acks.ts).
    return asRequestWrite(
      new Promise<void>((resolve, reject) => {
        this.queue.push({ event: prepared, resolve, reject });
        if (this.inFlight < MAX_IN_FLIGHT && !this.scheduled) {
          this.scheduled = true;
          setImmediate(() => this.drain());
        }
      }),
    );
  }

  /**
   * Sends what is queued, in batches, without waiting for earlier batches to be answered (up to
   * MAX_IN_FLIGHT): a busy server never idles while a batch is on its way to Redis and back.
   * The appender chains each batch onto the one before (append.ts).
   */
  private drain(): void {
    this.scheduled = false;
    while (this.queue.length && this.inFlight < MAX_IN_FLIGHT) {
      const batch = this.queue.splice(0, this.deps.config.audit.maxBatch);
      this.inFlight += 1;
      void this.send(batch).finally(() => {
        this.inFlight -= 1;
        if (this.queue.length) this.drain();
      });
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    try {
      const result = await this.appender.append(batch.map((p) => p.event));
      this.deps.metrics?.auditBatchSize.observe(batch.length);
      this.deps.metrics?.auditEvents.inc({ result: 'ok' }, batch.length);
      for (const p of batch) p.resolve();
      // After the callers are answered: signing and anchoring never sit on the request path.
      if (result.hashes.length) this.track(signCadence(this.checkpoints, 'main', result, this.deps.config.audit.checkpointEvery));
    } catch (err) {
      this.deps.logger.error({ err: { message: (err as Error).message }, events: batch.length }, 'audit events could not be appended');
      this.deps.metrics?.auditEvents.inc({ result: 'error' }, batch.length);
      for (const p of batch) p.reject(err);
    }
  }

  /** Keeps a checkpoint write for close() to wait on; its failure is logged (the chain is intact, only less anchored). */
  private track(work: Promise<unknown>): void {
    const p = work
      .catch((err: unknown) => this.deps.logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint could not be written'))
      .finally(() => this.signing.delete(p));
    this.signing.add(p);
  }

  /** Says so when the newest checkpoint is already older than verify accepts, then signs the head. */
  private async startUp(): Promise<void> {
    const { checkpointIntervalSeconds, checkpointGraceSeconds } = this.deps.config.audit;
    const newest = await this.checkpoints.newestIat('main');
    const now = Math.floor(Date.now() / 1000);
    if (newest !== undefined && now - newest > checkpointIntervalSeconds + checkpointGraceSeconds) {
      this.deps.logger.warn(
        { newestCheckpoint: new Date(newest * 1000).toISOString() },
        'the newest signed audit checkpoint is older than audit verify accepts: expected if no server ran meanwhile; otherwise run `smart-authz audit verify --anchor <dir>`',
      );
    }
    await this.intervalCheckpoint();
  }

  /**
   * Signs the head once per interval across all instances: a lease in Redis (SET NX EX) lets one
   * instance write it, and lapses after the interval. A quiet trail gets checkpoints too, so a
   * stale newest checkpoint means checkpoints were deleted or no server ran (verify.ts).
   */
  private async intervalCheckpoint(): Promise<void> {
    if (this.closed) return;
    const { redis, keyspace, config } = this.deps;
    const lease = keyspace.key('{audit}:checkpoint-lease');
    if ((await redis.set(lease, this.instance, 'EX', config.audit.checkpointIntervalSeconds, 'NX')) !== 'OK') return;
    try {
      const cp = await this.checkpoints.write('main', 'interval');
      await this.checkpoints.dropSuperseded('main', cp);
    } catch (err) {
      // Let the next tick (on any instance) try again rather than wait out the lease.
      await redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, lease, this.instance).catch(() => {});
      throw err;
    }
  }

  /** Signs the current head now (`smart-authz audit checkpoint`, tests). */
  async checkpoint(reason: string): Promise<void> {
    await this.checkpoints.write('main', reason);
  }

  /** Resolves once every checkpoint started so far is signed and anchored. */
  async settled(): Promise<void> {
    while (this.signing.size) await Promise.all([...this.signing]);
    await this.anchor?.flush();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
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

export function createAuditTrail(deps: AuditTrailDeps): AuditTrail & { checkpoint(reason: string): Promise<void>; settled(): Promise<void>; close(): Promise<void> } {
  return new RedisAuditTrail(deps);
}
