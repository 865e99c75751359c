import type { Invalidatable, InvalidationFeed } from '../../platform/redis/invalidation.js';

export interface ClientCacheSettings {
  /** Most clients kept; the least recently stored goes first. */
  maxEntries: number;
  /** Oldest an entry may be, whatever the feed says (a write made past the adapters). */
  maxAgeMs: number;
}

export const CLIENT_CACHE_DEFAULTS: ClientCacheSettings = { maxEntries: 10_000, maxAgeMs: 60_000 };

interface Entry<T> {
  value: T;
  storedAt: number;
}

/**
 * Keeps clients in memory, so the token endpoint does not read, parse and hash the client's record
 * on every request (app/provider.ts puts it in front of oidc-provider's `Client.find`).
 *
 * An entry is served only while the invalidation feed is live, and every write of a client through
 * the adapters (any instance, the CLI, registration, the management API) announces itself on that
 * feed after it is stored; so a removed client, or one whose keys or secret rotated, stops working
 * on every instance as soon as the announcement arrives, the moment another instance would have
 * read it from Redis. Only found clients are kept (unknown ids are what an attacker varies), and a
 * lookup that overlapped an invalidation or an outage of the feed keeps nothing.
 */
export class ClientCache<T> implements Invalidatable {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly feed: InvalidationFeed,
    private readonly settings: ClientCacheSettings = CLIENT_CACHE_DEFAULTS,
  ) {
    feed.register(this);
  }

  invalidate(kind: string, id: string): void {
    if (kind === '*') this.entries.clear();
    else if (kind === 'Client') this.entries.delete(id);
  }

  async get(id: string, load: (id: string) => Promise<T | undefined>): Promise<T | undefined> {
    const entry = this.entries.get(id);
    if (entry && this.feed.live && Date.now() - entry.storedAt < this.settings.maxAgeMs) return entry.value;
    const generation = this.feed.generation;
    const value = await load(id);
    if (value !== undefined && this.feed.cacheable(generation)) {
      this.entries.delete(id);
      if (this.entries.size >= this.settings.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(id, { value, storedAt: Date.now() });
    }
    return value;
  }
}
