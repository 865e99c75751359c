import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { consentScripts, type ConsentScripts } from './consent-scripts.js';
import type { ConsentStore } from './consent-store.js';
import { FHIR_JSON } from '../../domain/fhir/errors.js';

/**
 * Write-through of Consents to a FHIR server. The store adds an outbox entry (a Redis Stream) in
 * the same script that stores or withdraws a Consent, so nothing is lost while that server is
 * down; this worker delivers them with `PUT {base}/Consent/{id}`.
 *
 * Delivery is at least once and idempotent: an entry names a Consent, and each attempt sends the
 * Consent as it is now, so a late retry cannot put an older version back. An entry is
 * acknowledged only after a 2xx. A failed one stays pending in the consumer group and is retried
 * by whichever worker finds it idle for longer than its back-off (exponential in the number of
 * deliveries, capped) — which also picks up entries of a worker that crashed mid-delivery. A
 * refusal that retrying cannot fix (a 4xx other than 408/409/425/429) goes to a dead-letter
 * stream and is logged. The local record stays the source of truth either way.
 */

export const OUTBOX_GROUP = 'fhir-writer';
const DEAD_LETTER_CAP = 10_000;
const RETRYABLE_4XX = new Set([408, 409, 425, 429]);
/** When a delivery answers 2xx but the Consent changed meanwhile, send again, at most this often. */
const RESEND_LIMIT = 3;

export interface OutboxWorkerOptions {
  redis: RedisClient;
  keyspace: Keyspace;
  store: ConsentStore;
  /** FHIR base URL (no trailing slash). */
  fhirServer: string;
  token?: string;
  logger: Logger;
  /** This worker's name in the consumer group; unique per process by default. */
  consumer?: string;
  /** Pause between polls when there is nothing to do. */
  pollMs?: number;
  /** First retry delay; doubles with each delivery up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** One PUT may take this long. Another worker only takes over an entry idle for longer. */
  requestTimeoutMs?: number;
  batch?: number;
  fetch?: typeof fetch;
}

type StreamEntry = [id: string, fields: string[]];
type Outcome = 'delivered' | 'retry' | 'dead';

function fieldsOf(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

export class ConsentOutboxWorker {
  private readonly redis: RedisClient & ConsentScripts;
  private readonly consumer: string;
  private readonly pollMs: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly requestTimeoutMs: number;
  private readonly batch: number;
  private readonly fetch: typeof fetch;
  private readonly stream: string;
  private running = false;
  private loop: Promise<void> | undefined;
  private abort = new AbortController();
  private wake: (() => void) | undefined;
  private groupReady = false;

  constructor(private readonly opts: OutboxWorkerOptions) {
    this.redis = consentScripts(opts.redis);
    this.consumer = opts.consumer ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.pollMs = opts.pollMs ?? 1000;
    this.baseDelayMs = opts.baseDelayMs ?? 2000;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.batch = opts.batch ?? 20;
    this.fetch = opts.fetch ?? fetch;
    this.stream = opts.keyspace.consentOutbox();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.run();
  }

  /** Stops polling and abandons a delivery in flight (it stays pending and will be retried). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    this.wake?.();
    await this.loop;
    await this.leaveGroupIfIdle();
  }

  /** Delay before an entry delivered `deliveries` times may be tried again. */
  retryDelay(deliveries: number): number {
    const backoff = Math.min(this.baseDelayMs * 2 ** Math.max(0, deliveries - 1), this.maxDelayMs);
    // Never take over an entry another worker may still be sending (its PUT times out first).
    return Math.max(backoff, Math.ceil(this.requestTimeoutMs * 1.5));
  }

  private async run(): Promise<void> {
    while (this.running) {
      let worked = 0;
      try {
        worked = await this.runOnce();
      } catch (err) {
        // The stream (and so its group) can vanish, e.g. after a flush: create it again next time.
        if (String((err as Error).message).includes('NOGROUP')) this.groupReady = false;
        if (this.running) this.opts.logger.warn({ err: { message: (err as Error).message } }, 'consent outbox: poll failed');
      }
      if (this.running && worked === 0) await this.sleep(this.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      await this.redis.xgroup('CREATE', this.stream, OUTBOX_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }

  /** One pass: due retries (this worker's or anyone's), then new entries. Answers how many were tried. */
  async runOnce(): Promise<number> {
    await this.ensureGroup();
    let tried = 0;
    for (const entry of await this.claimDue()) {
      if (this.abort.signal.aborted) break;
      await this.handle(entry);
      tried++;
    }
    const fresh = (await this.redis.xreadgroup(
      'GROUP',
      OUTBOX_GROUP,
      this.consumer,
      'COUNT',
      this.batch,
      'STREAMS',
      this.stream,
      '>',
    )) as Array<[string, StreamEntry[]]> | null;
    for (const entry of fresh?.[0]?.[1] ?? []) {
      if (this.abort.signal.aborted) break;
      await this.handle(entry);
      tried++;
    }
    return tried;
  }

  private async claimDue(): Promise<StreamEntry[]> {
    const minIdle = this.retryDelay(1);
    const pending = (await this.redis.xpending(this.stream, OUTBOX_GROUP, 'IDLE', minIdle, '-', '+', this.batch)) as Array<
      [string, string, number, number]
    >;
    const claimed: StreamEntry[] = [];
    for (const [id, , idle, deliveries] of pending) {
      const delay = this.retryDelay(deliveries);
      if (idle < delay) continue;
      // XCLAIM with the same minimum idle time: of several workers, only the first gets it.
      const got = (await this.redis.call('XCLAIM', this.stream, OUTBOX_GROUP, this.consumer, String(delay), id)) as StreamEntry[];
      for (const entry of got) if (entry) claimed.push(entry);
    }
    return claimed;
  }

  private async handle([entryId, raw]: StreamEntry): Promise<void> {
    const fields = fieldsOf(raw ?? []);
    const consentId = fields.consent;
    if (!consentId) {
      await this.settle(entryId, 'dead', '', 'entry without a consent id');
      return;
    }
    let outcome: Outcome;
    let reason: string;
    try {
      [outcome, reason] = await this.deliver(consentId);
    } catch (err) {
      if (this.abort.signal.aborted) return;
      outcome = 'retry';
      reason = (err as Error).message;
    }
    if (outcome === 'retry') {
      this.opts.logger.warn({ consentId, entryId, reason }, 'consent outbox: FHIR server write failed; will retry');
      return;
    }
    if (outcome === 'dead')
      this.opts.logger.error({ consentId, entryId, reason }, 'consent outbox: FHIR server refused the Consent; moved to the dead letters');
    await this.settle(entryId, outcome, consentId, reason);
  }

  private async settle(entryId: string, outcome: Exclude<Outcome, 'retry'>, consentId: string, reason: string): Promise<void> {
    await this.redis.consentSettleOutbox(
      this.stream,
      this.opts.keyspace.consentOutboxDead(),
      entryId,
      outcome === 'dead' ? '1' : '0',
      consentId,
      reason,
      String(DEAD_LETTER_CAP),
      OUTBOX_GROUP,
    );
  }

  private async deliver(consentId: string): Promise<[Outcome, string]> {
    for (let round = 0; round < RESEND_LIMIT; round++) {
      const stored = await this.opts.store.get(consentId);
      if (!stored) return ['dead', 'the Consent no longer exists locally'];
      const res = await this.fetch(`${this.opts.fhirServer}/Consent/${encodeURIComponent(consentId)}`, {
        method: 'PUT',
        headers: {
          'Content-Type': `${FHIR_JSON}; charset=utf-8`,
          Accept: FHIR_JSON,
          ...(this.opts.token ? { Authorization: `Bearer ${this.opts.token}` } : {}),
        },
        body: JSON.stringify(stored.resource),
        redirect: 'error',
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.requestTimeoutMs)]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 500 || RETRYABLE_4XX.has(res.status)) return ['retry', `HTTP ${res.status}`];
      if (res.status < 200 || res.status >= 300) return ['dead', `HTTP ${res.status}`];
      if ((await this.opts.store.version(consentId)) === stored.version) return ['delivered', ''];
    }
    // Still changing after several sends: the entry of the latest change delivers it.
    return ['delivered', ''];
  }

  private async leaveGroupIfIdle(): Promise<void> {
    try {
      const mine = (await this.redis.xpending(this.stream, OUTBOX_GROUP, '-', '+', 1, this.consumer)) as unknown[];
      if (mine.length === 0) await this.redis.xgroup('DELCONSUMER', this.stream, OUTBOX_GROUP, this.consumer);
    } catch (err) {
      this.opts.logger.warn({ err: { message: (err as Error).message } }, 'consent outbox: could not leave the consumer group');
    }
  }
}

/** Starts the write-through worker when a FHIR server is configured for consents; undefined otherwise. */
export function startConsentOutbox(
  opts: Omit<OutboxWorkerOptions, 'fhirServer' | 'token'> & { fhirServer: string | undefined; token?: string },
): ConsentOutboxWorker | undefined {
  if (!opts.fhirServer) return undefined;
  const worker = new ConsentOutboxWorker({ ...opts, fhirServer: opts.fhirServer });
  worker.start();
  return worker;
}
