import type { Logger } from 'pino';
import { staysClosed, type RedisClient } from './connection.js';
import type { Keyspace } from './keyspace.js';

export interface Invalidatable {
  invalidate(kind: string, id: string): void;
}

const feeds = new WeakMap<RedisClient, InvalidationFeed>();

/** The one feed of a Redis client (one subscriber connection however often the app is rebuilt), started. */
export function invalidationFeedFor(redis: RedisClient, keyspace: Keyspace, logger?: Logger): InvalidationFeed {
  let feed = feeds.get(redis);
  if (!feed) {
    feed = new InvalidationFeed(redis, keyspace, logger).start();
    feeds.set(redis, feed);
  }
  return feed;
}

/**
 * Tells every instance at once that a stored record changed, so each can drop what it cached of it.
 *
 * Writers PUBLISH `<kind>:<id>` on the deployment's channel after the write is stored (the
 * adapters do it for every write, whoever makes it: a server, the CLI, a test). Each instance
 * listens on a connection of its own. Redis delivers a message to every subscriber connected when
 * it is published, and to none that is not, so a cache is only trusted while its subscription is
 * known to be up:
 *  - `live` is false until the subscription is confirmed, and again from the moment the
 *    connection drops until it is confirmed anew; callers read through to Redis meanwhile;
 *  - every change of state and every message bumps `generation`, so a read that started before an
 *    invalidation (or an outage) cannot store what it read (see `cacheable`).
 * In a Cluster a PUBLISH reaches the subscribers of every node.
 *
 * A connection that dies without closing (no FIN) goes unnoticed until TCP gives up; caches bound
 * what they keep by age as well (oauth/clients/client-cache.ts: 60 s).
 */
export class InvalidationFeed {
  private subscriber: RedisClient | undefined;
  private up = false;
  private closed = false;
  private gen = 0;
  /**
   * Held weakly: a provider rebuilt with rotated keys gets a cache of its own, and the feed must
   * not keep the old provider's cache (and with it the old provider) alive.
   */
  private readonly listeners = new Set<WeakRef<Invalidatable>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly logger?: Logger,
  ) {}

  get live(): boolean {
    return this.up;
  }

  /** Changes with every invalidation and every loss of the subscription. */
  get generation(): number {
    return this.gen;
  }

  /** True when nothing was invalidated (and the feed stayed up) since `generation` was read. */
  cacheable(generation: number): boolean {
    return this.up && generation === this.gen;
  }

  /** `target.invalidate(kind, id)` on every announcement, and `('*', '*')` when everything must go. */
  register(target: Invalidatable): void {
    this.listeners.add(new WeakRef(target));
  }

  private tell(kind: string, id: string): void {
    for (const ref of this.listeners) {
      const target = ref.deref();
      if (target) target.invalidate(kind, id);
      else this.listeners.delete(ref);
    }
  }

  /** Starts listening; the subscription's connection closes with the main connection. */
  start(): this {
    if (this.subscriber) return this;
    // Named, so an operator (or a test) can find it in CLIENT LIST.
    const subscriber = (this.redis as { duplicate(o?: object): RedisClient }).duplicate({
      connectionName: `${this.keyspace.prefix}invalidations`,
    });
    this.subscriber = subscriber;
    const channel = this.keyspace.invalidations();
    const down = () => {
      if (this.up) this.logger?.warn('invalidation feed lost: cached records are bypassed until it is back');
      this.up = false;
      this.gen++;
      this.dropAll();
    };
    const subscribe = () => {
      subscriber.subscribe(channel).then(
        () => {
          if (this.closed) return;
          // Anything published while the feed was down was missed: start from nothing.
          this.gen++;
          this.dropAll();
          this.up = true;
        },
        () => down(),
      );
    };
    subscriber.on('error', () => undefined);
    subscriber.on('close', down);
    subscriber.on('ready', subscribe);
    // Also now: a lazily connecting client connects on its first command.
    subscribe();
    subscriber.on('message', (from: string, message: string) => {
      if (from !== channel) return;
      this.gen++;
      const colon = message.indexOf(':');
      const kind = message.slice(0, colon);
      const id = message.slice(colon + 1);
      this.tell(kind, id);
    });
    this.redis.on('end', () => {
      if (staysClosed(this.redis)) this.close();
    });
    return this;
  }

  close(): void {
    this.up = false;
    this.gen++;
    if (this.closed) return;
    this.closed = true;
    this.subscriber?.disconnect();
  }

  private dropAll(): void {
    this.tell('*', '*');
  }
}

/** Announces that `kind:id` changed; call it after the change is stored. */
export async function publishInvalidation(redis: RedisClient, keyspace: Keyspace, kind: string, id: string): Promise<void> {
  await redis.publish(keyspace.invalidations(), `${kind}:${id}`);
}
