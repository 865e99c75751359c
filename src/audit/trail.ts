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
import { CheckpointStore, keyStoreCheckpointKeys, type CheckpointKeys } from './checkpoints.js';

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
  private lastCheckpointSeq: number | undefined;
  private lastSeq = 0;
  private checkpointing: Promise<unknown> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly appender: ChainAppender;
  readonly checkpoints: CheckpointStore;

  private readonly validate: boolean;

  constructor(private readonly deps: AuditTrailDeps) {
    this.validate = deps.config.audit.validateEvents ?? deps.config.mode !== 'production';
    this.appender = new ChainAppender(deps.redis, deps.keyspace, 'main');
    const keys = deps.checkpointKeys ?? keyStoreCheckpointKeys(deps.redis, deps.keyspace, deps.config.keyEncryptionSecret);
    this.checkpoints = new CheckpointStore(deps.redis, deps.keyspace, keys, deps.config.issuer);
    this.timer = setInterval(() => this.periodicCheckpoint(), deps.config.audit.checkpointIntervalSeconds * 1000);
    this.timer.unref();
  }

  record(event: Recordable): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(event, this.validate);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ event: prepared, resolve, reject });
      if (this.inFlight < MAX_IN_FLIGHT && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.drain());
      }
    });
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
        // Under steady load the queue is never empty: checkpoint by count whatever comes next.
        void this.maybeCheckpoint();
      });
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    try {
      const result = await this.appender.append(batch.map((p) => p.event));
      this.lastSeq = Math.max(this.lastSeq, result.head.seq);
      this.deps.metrics?.auditBatchSize.observe(batch.length);
      this.deps.metrics?.auditEvents.inc({ result: 'ok' }, batch.length);
      for (const p of batch) p.resolve();
    } catch (err) {
      this.deps.logger.error({ err: { message: (err as Error).message }, events: batch.length }, 'audit events could not be appended');
      this.deps.metrics?.auditEvents.inc({ result: 'error' }, batch.length);
      for (const p of batch) p.reject(err);
    }
  }

  private async maybeCheckpoint(): Promise<void> {
    if (this.checkpointing) return;
    if (this.lastCheckpointSeq === undefined) {
      this.lastCheckpointSeq = await this.checkpoints.latestSeq('main').catch(() => undefined);
      if (this.lastCheckpointSeq === undefined) return;
    }
    if (this.lastSeq - this.lastCheckpointSeq < this.deps.config.audit.checkpointEvery) return;
    await this.checkpoint('periodic');
  }

  private periodicCheckpoint(): void {
    if (this.lastCheckpointSeq !== undefined && this.lastSeq > this.lastCheckpointSeq) void this.checkpoint('periodic');
  }

  /** Signs the current head; failures are logged (the chain is still intact, only less anchored). */
  checkpoint(reason: string): Promise<unknown> {
    if (this.checkpointing) return this.checkpointing;
    this.checkpointing = this.checkpoints
      .write('main', reason)
      .then((cp) => {
        this.lastCheckpointSeq = Math.max(this.lastCheckpointSeq ?? 0, cp.seq);
      })
      .catch((err: unknown) => this.deps.logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint could not be written'))
      .finally(() => {
        this.checkpointing = undefined;
        // Events appended while this one was being signed may already call for the next.
        if (!this.closed) void this.maybeCheckpoint();
      });
    return this.checkpointing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // Let queued events finish; nothing new is accepted.
    this.closed = true;
    while (this.inFlight || this.scheduled || this.queue.length) {
      if (!this.inFlight && !this.scheduled) this.drain();
      await new Promise((r) => setTimeout(r, 5));
    }
    await this.checkpointing;
  }
}

export function createAuditTrail(deps: AuditTrailDeps): AuditTrail & { close(): Promise<void> } {
  return new RedisAuditTrail(deps);
}
