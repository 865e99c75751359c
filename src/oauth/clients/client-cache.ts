import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { InvalidationFeed } from '../../platform/redis/invalidation.js';

export interface ClientCacheSettings {
  /** Most client records kept; the least recently stored goes first. */
  maxEntries: number;
  /** Oldest a cached record may be, whatever the feed says (a write made past the adapters). */
  maxAgeMs: number;
}

export const CLIENT_CACHE_DEFAULTS: ClientCacheSettings = { maxEntries: 10_000, maxAgeMs: 60_000 };

interface Entry {
  /** As JSON: each caller gets a copy of its own to change (parsing ~1 kB is cheaper than a structured clone). */
  json: string;
  storedAt: number;
}

/**
 * Keeps client records in memory, so the token endpoint does not read the client from Redis on
 * every request: a backend service's token costs one round trip less.
 *
 * A record is served from memory only while the invalidation feed is live, and every write of a
 * client through the adapters (any instance, the CLI, registration, SCIM-side tools) announces
 * itself on that feed; so a removed client, or one whose keys or secret rotated, stops working on
 * every instance as soon as the announcement arrives, the same moment another instance would
 * have read it from Redis. Only found records are kept (unknown ids are what an attacker varies),
 * and a read that overlapped an invalidation keeps nothing.
 */
export function cachedClientAdapter(base: Adapter, feed: InvalidationFeed, settings: ClientCacheSettings = CLIENT_CACHE_DEFAULTS): Adapter {
  const entries = new Map<string, Entry>();
  feed.onInvalidate((kind, id) => {
    if (kind === '*') entries.clear();
    else if (kind === 'Client') entries.delete(id);
  });
  return {
    async find(id) {
      const entry = entries.get(id);
      if (entry && feed.live && Date.now() - entry.storedAt < settings.maxAgeMs) return JSON.parse(entry.json) as AdapterPayload;
      const generation = feed.generation;
      const payload = await base.find(id);
      if (payload && feed.cacheable(generation)) {
        entries.delete(id);
        if (entries.size >= settings.maxEntries) entries.delete(entries.keys().next().value as string);
        entries.set(id, { json: JSON.stringify(payload), storedAt: Date.now() });
      }
      return payload;
    },
    async upsert(id, payload, expiresIn) {
      entries.delete(id);
      await base.upsert(id, payload, expiresIn);
    },
    async destroy(id) {
      entries.delete(id);
      await base.destroy(id);
    },
    findByUserCode: (code) => base.findByUserCode(code),
    findByUid: (uid) => base.findByUid(uid),
    consume: (id) => base.consume(id),
    revokeByGrantId: (grantId) => base.revokeByGrantId(grantId),
  };
}
