import { Command } from 'ioredis';
import type { RedisClient } from './connection.js';
import { isRedisOutage } from './outage.js';

/** Thrown instead of sending a command to a Redis that stopped answering (outage.ts knows its name). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * Fast, honest failure when Redis stops answering. A hung Redis (SIGSTOP, a stalled disk, a
 * Cluster mid-failover) keeps its TCP connection open, so the client stays "ready" and every
 * command would wait out its timeout, several times per request. Instead:
 *
 * - each command of the server gets a short budget (`commandTimeoutMs`, much lower than the
 *   client's own timeout, which the admin CLI keeps);
 * - the first command that fails because the store is unavailable opens the breaker: from then on
 *   commands fail at once with StoreUnavailableError and the HTTP layer answers 503;
 * - while open, a PING every `probeIntervalMs` (each with `probeTimeoutMs`) closes it again as
 *   soon as Redis answers. Each instance decides on its own; nothing is shared.
 *
 * It wraps `sendCommand`, the one place every command of this client passes through (direct
 * calls, scripts and auto-pipelines alike).
 */

export interface BreakerOptions {
  /** Budget of one command on the server's paths. */
  commandTimeoutMs: number;
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  onChange?: (state: 'open' | 'closed', reason?: string) => void;
}

/** What the HTTP layer asks: may a request use Redis now, and does a PING answer in time? */
export interface StoreHealth {
  available(): boolean;
  ping(timeoutMs: number): Promise<boolean>;
}

type Send = (command: Command, stream?: unknown, node?: unknown) => unknown;

/** Commands whose own argument says how long they may block; a short budget would break them. */
const OWN_TIMEOUT = new Set(['wait', 'waitaof', 'blpop', 'brpop', 'brpoplpush', 'blmove', 'blmpop', 'bzpopmin', 'bzpopmax', 'bzmpop', 'xread', 'xreadgroup']);

export class RedisCircuitBreaker implements StoreHealth {
  private open = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly send: Send;

  constructor(
    private readonly client: RedisClient,
    private readonly options: BreakerOptions,
  ) {
    const target = client as unknown as { sendCommand: Send };
    this.send = target.sendCommand.bind(client);
    target.sendCommand = (command, stream, node) => this.dispatch(command, stream, node);
  }

  available(): boolean {
    return !this.open && this.client.status === 'ready';
  }

  /** One PING outside the breaker, with its own deadline. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.client.status !== 'ready') return false;
    const command = new Command('ping', [], { replyEncoding: 'utf8' });
    command.setTimeout(timeoutMs);
    this.send(command);
    try {
      return (await command.promise) === 'PONG';
    } catch {
      return false;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.probeTimer);
  }

  private dispatch(command: Command, stream?: unknown, node?: unknown): unknown {
    // Before the connection is ready, what passes here is the client's own handshake and ready
    // check (INFO) on a new connection; the client refuses everything else itself (no offline
    // queue). Refusing the ready check would keep the client from ever becoming ready after
    // Redis restarts, and the PING probe below waits for "ready": the breaker would stay open.
    if (this.open && this.client.status === 'ready') {
      const error = new StoreUnavailableError('Redis is not answering; the request was not sent');
      if (stream) {
        // A command of a pipeline must still be handed over, or the pipeline never writes the
        // others; it is settled at once and its reply, if Redis ever sends one, is ignored.
        const result = this.send(command, stream, node);
        command.reject(error);
        return result;
      }
      command.reject(error);
      return command.promise;
    }
    // Command#setTimeout keeps the first deadline it is given, so the client's longer one no longer applies.
    if (!OWN_TIMEOUT.has(command.name.toLowerCase())) command.setTimeout(this.options.commandTimeoutMs);
    const result = this.send(command, stream, node);
    command.promise.catch((err: unknown) => {
      if (isRedisOutage(err) && !(err instanceof StoreUnavailableError)) this.trip((err as Error).message);
    });
    return result;
  }

  private trip(reason: string): void {
    if (this.open || this.stopped) return;
    this.open = true;
    this.options.onChange?.('open', reason);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.stopped) return;
    this.probeTimer = setTimeout(() => {
      void this.ping(this.options.probeTimeoutMs ?? 250).then((ok) => {
        if (ok) {
          this.open = false;
          this.options.onChange?.('closed');
        } else this.scheduleProbe();
      });
    }, this.options.probeIntervalMs ?? 200);
    this.probeTimer.unref();
  }
}

const breakers = new WeakMap<RedisClient, RedisCircuitBreaker>();

/** The breaker of a client, installed on first use (once per client, however often the app is rebuilt). */
export function circuitBreakerFor(client: RedisClient, options: BreakerOptions): RedisCircuitBreaker {
  let breaker = breakers.get(client);
  if (!breaker) {
    breaker = new RedisCircuitBreaker(client, options);
    breakers.set(client, breaker);
  }
  return breaker;
}

/** Without a breaker (tests, tools): available while connected, and a PING with a deadline. */
export function connectionHealth(client: RedisClient): StoreHealth {
  return {
    available: () => client.status === 'ready',
    async ping(timeoutMs) {
      if (client.status !== 'ready') return false;
      let timer: NodeJS.Timeout | undefined;
      try {
        const answer = await Promise.race([client.ping(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), timeoutMs)))]);
        return answer === 'PONG';
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
