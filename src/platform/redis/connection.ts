import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisSettings } from '../config/schema.js';

export type RedisClient = Redis | Cluster;

/**
 * Longest pause between two reconnection attempts. The pause decides how soon after Redis is back
 * (restarted, or a new master promoted) the server serves again: with Sentinel, the attempts
 * made while the sentinels still name the dead master fail, and the next one comes only after
 * this pause. Measured (docs/operations.md "Chaos suite"): a 2 s cap added up to 2 s of 503s to
 * every failover. One attempt per half second against a Redis that is down costs nothing.
 */
export const RECONNECT_MAX_MS = 500;

/**
 * Commands fail fast instead of queueing while Redis is unreachable: a request must get a 503,
 * not hang until the connection comes back. Reconnects back off up to RECONNECT_MAX_MS.
 */
const commonOptions: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 2_000,
  connectTimeout: 5_000,
  enableAutoPipelining: true,
  retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, RECONNECT_MAX_MS),
};

/**
 * Follow the master, never write to a demoted one. After a failover the old master keeps taking
 * writes until the sentinels demote it (seconds), then drops them when it resyncs: acknowledged
 * tokens and audit entries vanish. So: leave it as soon as a sentinel announces +switch-master
 * (failoverDetector); connect only to a node that says it is the master (role, checked by
 * ioredis' ready check); and on READONLY (we are talking to a replica) reconnect through the
 * sentinels. The failed command is not re-sent: its request answers 503 (platform/http/durable-writes.ts)
 * rather than succeed half on the old master and half on the new one.
 */
const sentinelOptions: Partial<RedisOptions> = {
  role: 'master',
  failoverDetector: true,
  sentinelRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
  sentinelReconnectStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
  reconnectOnError: (err) => (isReadOnlyError(err) ? 1 : false),
};

export function isReadOnlyError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('READONLY');
}

export function createRedis(settings: RedisSettings, options: RedisOptions = {}): RedisClient {
  const opts = { ...commonOptions, ...options, lazyConnect: true };
  if (settings.clusterNodes?.length) {
    // No auto-pipelining on Cluster: ioredis batches the commands of different slots served by the
    // same master into one pipeline, guessing each command's slot from its first argument. For a
    // script called with a variable key count that argument is the count, not a key, so the batch
    // is refused whole ("All keys in the pipeline should belong to the same slots allocation
    // group"), and a batch formed before a slot moved fails the same way. Each command goes on its
    // own instead (docs/operations.md "Redis Cluster" has the measured cost).
    return new Cluster(settings.clusterNodes, {
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
      redisOptions: { ...opts, enableAutoPipelining: false, password: settings.password, username: settings.username },
      lazyConnect: true,
    });
  }
  if (settings.sentinels?.length) {
    return superviseReconnects(
      new Redis({
        ...opts,
        ...sentinelOptions,
        sentinels: settings.sentinels,
        name: settings.sentinelName ?? 'mymaster',
        password: settings.password,
        username: settings.username,
      }),
    );
  }
  return superviseReconnects(new Redis(settings.url ?? 'redis://127.0.0.1:6379', opts));
}

/** Clients closed on purpose (disconnect or quit): no reconnect for them. */
const closing = new WeakSet<object>();
/** Clients that superviseReconnects brings back after an unintended "end". */
const supervised = new WeakSet<object>();

/**
 * ioredis gives a client up for good ("end") when a connection attempt is cancelled half-way,
 * and never tries again: with Sentinel that is exactly what a failover does. While the client
 * reconnects through the sentinels (the master died), the failover detector sees +switch-master
 * and cancels the attempt in progress to start a new one; the cancelled attempt ends the client
 * instead. Every later command fails with "Connection is closed" and the instance answers 503
 * until it is restarted (found by the chaos suite: both instances, for good, after a master kill).
 * So: a client that ends without being closed (disconnect or quit, which are wrapped here to say
 * so) connects again.
 */
export function superviseReconnects(client: Redis): Redis {
  supervised.add(client);
  const disconnect = client.disconnect.bind(client);
  client.disconnect = (reconnect = false) => {
    if (!reconnect) closing.add(client);
    disconnect(reconnect);
  };
  const quit = client.quit.bind(client) as (...args: unknown[]) => Promise<'OK'>;
  (client as { quit: (...args: unknown[]) => Promise<'OK'> }).quit = (...args) => {
    closing.add(client);
    return quit(...args);
  };
  client.on('end', () => {
    if (closing.has(client)) return;
    const timer = setTimeout(() => {
      if (!closing.has(client) && client.status === 'end') client.connect().catch(() => undefined);
    }, RECONNECT_MAX_MS);
    timer.unref();
  });
  return client;
}

/** After "end": whether the client stays closed (closed on purpose, or not one that reconnects by itself). */
export function staysClosed(client: RedisClient): boolean {
  return closing.has(client) || !supervised.has(client);
}

/** Connects, waiting for the first successful connection up to `timeoutMs`. */
export async function connectRedis(client: RedisClient, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.status === 'wait' ? client.connect() : new Promise<void>((resolve) => client.once('ready', () => resolve())),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
