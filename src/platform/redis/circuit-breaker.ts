import { Command, type Cluster } from 'ioredis';
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
 * - in a Cluster the breaker is per master: a command is refused at once only when the master
 *   that owns its slot failed, and the probe PINGs that master. The other masters keep serving,
 *   so what does not touch the failed one (and audit appends, which move to another chain:
 *   records/audit/trail.ts) goes on while the Cluster fails over.
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
const OWN_TIMEOUT = new Set([
  'wait',
  'waitaof',
  'blpop',
  'brpop',
  'brpoplpush',
  'blmove',
  'blmpop',
  'bzpopmin',
  'bzpopmax',
  'bzmpop',
  'xread',
  'xreadgroup',
]);

export class RedisCircuitBreaker implements StoreHealth {
  /** Standalone or Sentinel: the one breaker. */
  private open = false;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Cluster: masters (`host:port`) whose breaker is open, each with its probe. */
  private readonly openNodes = new Map<string, NodeJS.Timeout | undefined>();
  private stopped = false;
  private readonly send: Send;
  private readonly cluster: Cluster | undefined;

  constructor(
    private readonly client: RedisClient,
    private readonly options: BreakerOptions,
  ) {
    const target = client as unknown as { sendCommand: Send };
    this.send = target.sendCommand.bind(client);
    this.cluster = (client as { isCluster?: boolean }).isCluster ? (client as Cluster) : undefined;
    target.sendCommand = (command, stream, node) => this.dispatch(command, stream, node);
  }

  /**
   * Whether a request may use Redis now. In a Cluster, unless every master failed: a request that
   * needs a failed one is refused by its command, at once.
   */
  available(): boolean {
    if (this.client.status !== 'ready') return false;
    if (!this.cluster) return !this.open;
    return this.openNodes.size === 0 || this.openNodes.size < this.cluster.nodes('master').length;
  }

  /** One PING outside the breaker, with its own deadline. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.client.status !== 'ready') return false;
    return this.pingVia(this.send, timeoutMs);
  }

  private async pingVia(send: (command: Command) => unknown, timeoutMs: number): Promise<boolean> {
    const command = new Command('ping', [], { replyEncoding: 'utf8' });
    command.setTimeout(timeoutMs);
    send(command);
    try {
      return (await command.promise) === 'PONG';
    } catch {
      return false;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    for (const timer of this.openNodes.values()) clearTimeout(timer);
  }

  /** The master that will get this command (Cluster), or undefined for a keyless one. */
  private nodeOf(command: Command): string | undefined {
    if (!this.cluster) return undefined;
    const slot = command.getSlot();
    return slot === null || slot === undefined ? undefined : this.cluster.slots[slot]?.[0];
  }

  private dispatch(command: Command, stream?: unknown, node?: unknown): unknown {
    const target = this.nodeOf(command);
    // Before the connection is ready, what passes here is the client's own handshake and ready
    // check (INFO) on a new connection; the client refuses everything else itself (no offline
    // queue). Refusing the ready check would keep the client from ever becoming ready after
    // Redis restarts, and the PING probe below waits for "ready": the breaker would stay open.
    // (A Cluster's node connections do their handshakes on their own clients, not through here.)
    if (this.cluster ? target !== undefined && this.openNodes.has(target) : this.open && this.client.status === 'ready') {
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
      if (isRedisOutage(err) && !(err instanceof StoreUnavailableError)) this.trip((err as Error).message, target);
    });
    return result;
  }

  private trip(reason: string, node: string | undefined): void {
    if (this.stopped) return;
    if (this.cluster) {
      // A keyless command's failure says nothing about one master; the slot's own commands will.
      if (node === undefined || this.openNodes.has(node)) return;
      this.openNodes.set(node, undefined);
      this.options.onChange?.('open', `${node}: ${reason}`);
      this.scheduleNodeProbe(node);
      return;
    }
    if (this.open) return;
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

  /**
   * Closes a master's breaker when it answers a PING again, or when it no longer owns any slot
   * (the Cluster failed over to its replica, and ioredis has learnt the new map: commands for
   * those slots now go to the new master).
   */
  private scheduleNodeProbe(key: string): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      void this.nodeAnswers(key).then((ok) => {
        if (this.stopped || !this.openNodes.has(key)) return;
        if (ok) {
          this.openNodes.delete(key);
          this.options.onChange?.('closed', key);
        } else this.scheduleNodeProbe(key);
      });
    }, this.options.probeIntervalMs ?? 200);
    timer.unref();
    this.openNodes.set(key, timer);
  }

  private async nodeAnswers(key: string): Promise<boolean> {
    const cluster = this.cluster!;
    if (!cluster.slots.some((owners) => owners?.[0] === key)) return true;
    const node = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key);
    if (!node || node.status !== 'ready') return false;
    return this.pingVia((command) => node.sendCommand(command), this.options.probeTimeoutMs ?? 250);
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
        const answer = await Promise.race([
          client.ping(),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), timeoutMs))),
        ]);
        return answer === 'PONG';
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
