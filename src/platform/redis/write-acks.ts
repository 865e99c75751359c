import { AsyncLocalStorage } from 'node:async_hooks';
import type { Command, Redis } from 'ioredis';
import type { RedisClient } from './connection.js';
import { isRedisOutage } from './outage.js';

/**
 * Which Redis writes a request made, and whether a replica has them.
 *
 * Redis replicates asynchronously: a write the master answered can be lost when a replica is
 * promoted before it got it, or when a demoted master resyncs. `WAIT n timeout`, sent on the same
 * connection after the writes, answers how many replicas have everything that connection wrote.
 * So each request runs in a scope (AsyncLocalStorage); the commands it sends are noted there, and
 * before it is answered one WAIT confirms them (platform/http/durable-writes.ts).
 *
 * Two traps, both handled here:
 *  - ioredis auto-pipelining sends commands later, from another request's tick. Commands are
 *    therefore noted when they are queued (the caller's context), not when they are written.
 *  - A reconnect (failover) between a write and the WAIT would make the WAIT count acknowledgements
 *    on the new master for a write that went to the old one. Every connect and close moves an
 *    epoch; a write counts as confirmed only if its reply and the WAIT's came in the same epoch.
 */

/** Commands that never change data. Anything else, unknown commands included, counts as a write. */
const READ_ONLY = new Set([
  'get',
  'mget',
  'getrange',
  'strlen',
  'exists',
  'ttl',
  'pttl',
  'expiretime',
  'type',
  'keys',
  'scan',
  'randomkey',
  'dbsize',
  'hget',
  'hmget',
  'hgetall',
  'hkeys',
  'hvals',
  'hlen',
  'hexists',
  'hscan',
  'hstrlen',
  'smembers',
  'sismember',
  'smismember',
  'scard',
  'sscan',
  'srandmember',
  'sinter',
  'sunion',
  'sdiff',
  'zrange',
  'zrangebyscore',
  'zrevrange',
  'zrevrangebyscore',
  'zrangebylex',
  'zscore',
  'zmscore',
  'zcard',
  'zcount',
  'zrank',
  'zrevrank',
  'zscan',
  'lrange',
  'llen',
  'lindex',
  'xrange',
  'xrevrange',
  'xlen',
  'xinfo',
  'evalsha_ro',
  'eval_ro',
  'fcall_ro',
  'ping',
  'echo',
  'time',
  'info',
  'role',
  'wait',
  'script',
  'select',
  'auth',
  'hello',
  'client',
]);

export function isWriteCommand(name: string): boolean {
  // ioredis names its commands in lower case; anything else is lowered first.
  return !READ_ONLY.has(name) && !READ_ONLY.has(name.toLowerCase());
}

/** Set on a command once it is noted: a pipeline's commands pass sendCommand twice. */
const NOTED = Symbol('noted');

/** One request's writes. */
export class WriteScope {
  /** The request sent at least one write. */
  wrote = false;
  /** Epochs in which this request's writes were answered. */
  readonly epochs = new Set<number>();
  /** The first store-unavailable error one of its commands met. */
  unavailable: Error | undefined;

  constructor(readonly tracker: WriteTracker) {}

  noteAnswered(): void {
    this.wrote = true;
    this.epochs.add(this.tracker.epoch);
  }

  noteFailed(err: unknown): void {
    if (isRedisOutage(err)) this.unavailable ??= err as Error;
  }
}

const scopes = new AsyncLocalStorage<WriteScope>();

/**
 * Marks `work` (a write this request waits for, sent from outside its context: the audit trail's
 * group commit) as this request's: its outcome counts as if the request had sent it.
 */
export function asRequestWrite<T>(work: Promise<T>): Promise<T> {
  const scope = scopes.getStore();
  if (!scope) return work;
  scope.wrote = true;
  return work.then(
    (v) => {
      scope.noteAnswered();
      return v;
    },
    (err: unknown) => {
      scope.noteFailed(err);
      throw err;
    },
  );
}

export interface WaitResult {
  acks: number;
  epoch: number;
}

type CommandSender = (command: Command, ...rest: unknown[]) => unknown;

export class WriteTracker {
  /** Moves on every connect and close of the client's connection. */
  epoch = 0;
  /** The WAIT that callers arriving now join; sent once the one before it has answered. */
  private nextWait: Promise<WaitResult> | undefined;
  private lastWait: Promise<unknown> = Promise.resolve();
  /** The last WAIT came back with too few acknowledgements. */
  private short = false;

  constructor(
    readonly redis: Redis,
    readonly minReplicas: number,
    readonly waitTimeoutMs: number,
  ) {
    const bump = () => {
      this.epoch += 1;
    };
    redis.on('connect', bump);
    redis.on('close', bump);
    this.instrument();
  }

  /** Runs `work` as one request: the commands it queues are noted in `scope`. */
  run<T>(scope: WriteScope, work: () => Promise<T>): Promise<T> {
    return scopes.run(scope, work);
  }

  /**
   * Every command is seen when it is queued, in its caller's context: direct sends, and the
   * pipelines ioredis' auto-pipelining (and our code) builds. A pipeline's commands pass through
   * sendCommand again when it is flushed; by then they have been noted.
   */
  private instrument(): void {
    const redis = this.redis as unknown as { sendCommand: CommandSender; pipeline: (...args: unknown[]) => { sendCommand: CommandSender } };
    const note = (command: Command) => this.note(command);
    const send = redis.sendCommand;
    redis.sendCommand = function sendCommand(this: unknown, command: Command, ...rest: unknown[]) {
      note(command);
      return send.call(this, command, ...rest);
    };
    const pipeline = redis.pipeline;
    redis.pipeline = function pipelineNoted(this: unknown, ...args: unknown[]) {
      const p = pipeline.apply(this, args);
      const queue = p.sendCommand;
      p.sendCommand = function sendCommand(this: unknown, command: Command, ...rest: unknown[]) {
        note(command);
        return queue.call(this, command, ...rest);
      };
      return p;
    };
  }

  private note(command: Command): void {
    // A mark on the command, not a WeakSet of every command ever sent (its upkeep showed in profiles).
    const marked = command as Command & { [NOTED]?: true };
    if (marked[NOTED]) return;
    marked[NOTED] = true;
    const scope = scopes.getStore();
    if (!scope) return;
    const write = isWriteCommand(command.name);
    if (write) scope.wrote = true;
    // The command's own settle functions are wrapped rather than its promise chained: two more
    // promises per command, under the hooks AsyncLocalStorage installs, cost more than the rest of
    // the tracking (measured with npm run bench). ioredis settles a command only through these (a
    // Cluster pipeline re-creates them on a redirection, but Cluster clients are not tracked).
    const settle = command as unknown as { resolve: (value: unknown) => void; reject: (err: Error) => void };
    const { resolve, reject } = settle;
    if (write) {
      settle.resolve = (value) => {
        scope.noteAnswered();
        resolve(value);
      };
    }
    settle.reject = (err) => {
      scope.noteFailed(err);
      reject(err);
    };
  }

  /**
   * One WAIT for everyone who asks while none is queued: it is sent after their writes were
   * answered, so it covers them all. WAIT blocks the connection until it returns, so they are sent
   * one at a time rather than one per request.
   */
  waitForReplicas(): Promise<WaitResult> {
    if (this.nextWait) return this.nextWait;
    const batch = this.lastWait.then(async () => {
      this.nextWait = undefined;
      const epoch = this.epoch;
      // WAIT holds up every command behind it on the connection for its whole timeout when the
      // replicas are gone (a failover, a replica down): then ask first, without blocking, and refuse
      // at once while too few are online. Answering "not acknowledged" without WAIT only ever refuses.
      if (this.short) {
        const online = await this.onlineReplicas();
        if (online < this.minReplicas) return { acks: online, epoch };
      }
      const acks = await this.redis.wait(this.minReplicas, this.waitTimeoutMs);
      this.short = acks < this.minReplicas;
      return { acks, epoch: this.epoch };
    });
    this.nextWait = batch;
    this.lastWait = batch.catch(() => {});
    return batch;
  }

  private async onlineReplicas(): Promise<number> {
    const info = await this.redis.info('replication');
    return info.split('\n').filter((line) => /^slave\d+:.*\bstate=online\b/.test(line)).length;
  }

  /** Whether every write of `scope` is on at least minReplicas replicas. */
  async confirmed(scope: WriteScope): Promise<boolean> {
    if (!scope.wrote || this.minReplicas === 0) return true;
    if (scope.epochs.size > 1) return false;
    let result: WaitResult;
    try {
      result = await this.waitForReplicas();
    } catch {
      return false;
    }
    return result.acks >= this.minReplicas && [...scope.epochs].every((e) => e === result.epoch);
  }
}

export class ReplicaAckError extends Error {
  override name = 'ReplicaAckError';
}

const trackers = new WeakMap<RedisClient, WriteTracker>();

/**
 * Tracks the client's commands per request: always, so a request that met a demoted master
 * (READONLY) answers 503, and with minReplicas > 0 to confirm its writes. A single node, Sentinel
 * or not; not a Cluster (WAIT answers for one node only). One tracker per client.
 */
export function writeTrackerFor(
  redis: RedisClient,
  settings: { minReplicas?: number | undefined; waitTimeoutMs?: number | undefined },
): WriteTracker | undefined {
  const minReplicas = settings.minReplicas ?? 0;
  if (redis.isCluster) return undefined;
  let tracker = trackers.get(redis);
  if (!tracker) {
    tracker = new WriteTracker(redis as Redis, minReplicas, settings.waitTimeoutMs ?? 500);
    trackers.set(redis, tracker);
  }
  return tracker;
}

/**
 * Runs `work` outside any request and throws ReplicaAckError unless its writes reached the
 * replicas: for what must be replicated before it is shown outside Redis (audit checkpoint anchors).
 * Without a tracker on the client it just runs `work`.
 */
export async function replicated<T>(redis: RedisClient, work: () => Promise<T>): Promise<T> {
  const tracker = trackers.get(redis);
  if (!tracker) return work();
  const scope = new WriteScope(tracker);
  const result = await tracker.run(scope, work);
  if (scope.unavailable || !(await tracker.confirmed(scope)))
    throw new ReplicaAckError(`not acknowledged by ${tracker.minReplicas} replica(s) within ${tracker.waitTimeoutMs} ms`);
  return result;
}
