import type { IncomingHttpHeaders } from 'node:http';
import type { JWK } from 'jose';
import { freshLifetimeSeconds } from './cache-lifetime.js';
import { guardedGet } from './guarded-get.js';
import type { Resolver } from './guarded-get.js';
import { JwksFetchError, describeJwksUri } from './jwks-fetch-error.js';

/**
 * Client JWK Sets fetched from `jwks_uri` (SMART Backend Services, private_key_jwt), kept in memory
 * per URL:
 * - a set stays fresh for its Cache-Control/Expires lifetime, clamped to [minTtl, maxTtl];
 * - no URL is fetched more than once per `minRefetchIntervalSeconds`, whatever asks (an expired
 *   entry, `forceRefresh`, an unknown `kid`, a failure being retried): a caller spraying random
 *   kids, or a host that is down, costs at most one request per interval;
 * - when a fetch fails transiently, the last good set is served for up to `maxStaleSeconds` past
 *   its expiry, so clients keep authenticating through a short outage of their key host;
 * - concurrent callers share one request;
 * - at most `maxEntries` URLs are remembered, the least recently fetched going first.
 * Every fetch goes through guardedGet (SSRF, time and size rules); see there.
 */

export interface JwksFetcherOptions {
  /** Requires https. */
  production: boolean;
  /** Lets jwks_uri hosts resolve to private, loopback and other non-public addresses (dev, tests). */
  allowPrivateNetworks: boolean;
  timeoutMs?: number;
  maxBytes?: number;
  minTtlSeconds?: number;
  maxTtlSeconds?: number;
  /** Lifetime of a set whose response had neither Cache-Control max-age nor Expires. */
  defaultTtlSeconds?: number;
  /** How long past its expiry a set may still be served while its host fails. */
  maxStaleSeconds?: number;
  minRefetchIntervalSeconds?: number;
  maxEntries?: number;
  /** Milliseconds since the epoch; for tests. */
  now?: () => number;
  /** Resolves a host name to all its addresses; for tests. Defaults to node:dns lookup. */
  lookup?: Resolver;
  /** Extra trust anchors; for tests with a self-signed certificate. */
  tls?: { ca?: string | Buffer };
  /** Told about fetches and failures, for logging. Must not throw. */
  onEvent?: (event: JwksFetchEvent) => void;
}

/** `url` is the jwks_uri without query, fragment or credentials. */
export type JwksFetchEvent =
  | { type: 'fetched'; url: string; keys: number; ttlSeconds: number }
  | { type: 'stale-served'; url: string; error: string; secondsPastExpiry: number }
  | { type: 'failed'; url: string; error: string };

/** Shared with every caller of the same URL, hence frozen: altering it throws. */
export interface JwkSet {
  keys: JWK[];
}

interface Entry {
  /** Last good set, with the time it stops being fresh (ms). */
  good?: { jwks: JwkSet; freshUntil: number };
  lastAttemptAt: number;
  /** Why the most recent attempt failed; cleared by a success. */
  lastError?: JwksFetchError;
}

const DEFAULTS = {
  timeoutMs: 3000,
  maxBytes: 64 * 1024,
  minTtlSeconds: 60,
  maxTtlSeconds: 86_400,
  defaultTtlSeconds: 300,
  maxStaleSeconds: 86_400,
  minRefetchIntervalSeconds: 30,
  maxEntries: 1000,
};

export class JwksFetcher {
  readonly #options: Required<Omit<JwksFetcherOptions, 'lookup' | 'tls' | 'onEvent'>> &
    Pick<JwksFetcherOptions, 'lookup' | 'tls' | 'onEvent'>;

  readonly #cache = new Map<string, Entry>();

  readonly #inFlight = new Map<string, Promise<JwkSet>>();

  constructor(options: JwksFetcherOptions) {
    this.#options = {
      ...DEFAULTS,
      now: Date.now,
      ...withoutUndefined(options),
      production: options.production,
      allowPrivateNetworks: options.allowPrivateNetworks,
    };
  }

  /**
   * The client's current JWK Set. `forceRefresh` treats a fresh cached set as expired, but still
   * obeys the per-URL refetch interval: within it, the cached set is the answer.
   */
  async getJwks(url: string, opts: { forceRefresh?: boolean } = {}): Promise<JwkSet> {
    const target = this.#checkUrl(url);
    const key = target.href;
    const entry = this.#cache.get(key);
    const now = this.#options.now();

    if (entry?.good && now < entry.good.freshUntil && !opts.forceRefresh) return entry.good.jwks;

    const pending = this.#inFlight.get(key);
    if (pending) return pending;

    if (entry && now - entry.lastAttemptAt < this.#options.minRefetchIntervalSeconds * 1000) {
      return this.#fromCache(entry, now, target);
    }

    const attempt = this.#fetchAndStore(key, target).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, attempt);
    return attempt;
  }

  /**
   * The key with this `kid`. When the cached set lacks it, the set is fetched again once (subject to
   * the refetch interval) before answering, so a client's key rotation is picked up promptly.
   */
  async findKey(url: string, kid: string): Promise<JWK | undefined> {
    const cached = await this.getJwks(url);
    const hit = cached.keys.find((jwk) => jwk.kid === kid);
    if (hit) return hit;
    const refreshed = await this.getJwks(url, { forceRefresh: true });
    return refreshed.keys.find((jwk) => jwk.kid === kid);
  }

  #checkUrl(raw: string): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new JwksFetchError('invalid-url', 'jwks_uri is not a valid URL');
    }
    const where = describeJwksUri(url);
    if (url.username !== '' || url.password !== '') {
      throw new JwksFetchError('invalid-url', `${where}: must not contain credentials`);
    }
    if (this.#options.production ? url.protocol !== 'https:' : !['https:', 'http:'].includes(url.protocol)) {
      const allowed = this.#options.production ? 'https' : 'http or https';
      throw new JwksFetchError('insecure-scheme', `${where}: must use ${allowed}`);
    }
    url.hash = '';
    return url;
  }

  #fromCache(entry: Entry, now: number, target: URL): JwkSet {
    const { good, lastError } = entry;
    if (good) {
      if (now < good.freshUntil) return good.jwks;
      if ((lastError?.transient ?? true) && this.#withinStale(good, now)) return good.jwks;
    }
    throw lastError ?? new JwksFetchError('network', `${describeJwksUri(target)}: no usable copy`);
  }

  #withinStale(good: NonNullable<Entry['good']>, now: number): boolean {
    return now - good.freshUntil <= this.#options.maxStaleSeconds * 1000;
  }

  async #fetchAndStore(key: string, target: URL): Promise<JwkSet> {
    const options = this.#options;
    const entry: Entry = this.#cache.get(key) ?? { lastAttemptAt: 0 };
    entry.lastAttemptAt = options.now();
    this.#remember(key, entry);
    const url = `${target.origin}${target.pathname}`;

    try {
      const response = await guardedGet(target, {
        timeoutMs: options.timeoutMs,
        maxBytes: options.maxBytes,
        allowPrivateNetworks: options.allowPrivateNetworks,
        ...(options.lookup ? { resolve: options.lookup } : {}),
        ...(options.tls ? { tls: options.tls } : {}),
      });
      const jwks = parseJwkSet(response.body, target);
      const now = options.now();
      const ttlSeconds = freshLifetimeSeconds(headerGetter(response.headers), now, {
        minSeconds: options.minTtlSeconds,
        maxSeconds: options.maxTtlSeconds,
        defaultSeconds: options.defaultTtlSeconds,
      });
      entry.good = { jwks, freshUntil: now + ttlSeconds * 1000 };
      delete entry.lastError;
      this.#remember(key, entry);
      this.#emit({ type: 'fetched', url, keys: jwks.keys.length, ttlSeconds });
      return jwks;
    } catch (err) {
      const error =
        err instanceof JwksFetchError ? err : new JwksFetchError('network', `${describeJwksUri(target)}: request failed`, { cause: err });
      entry.lastError = error;
      const now = options.now();
      if (!error.transient) delete entry.good;
      if (entry.good && this.#withinStale(entry.good, now)) {
        const secondsPastExpiry = Math.floor((now - entry.good.freshUntil) / 1000);
        this.#emit({ type: 'stale-served', url, error: error.message, secondsPastExpiry });
        return entry.good.jwks;
      }
      this.#emit({ type: 'failed', url, error: error.message });
      throw error;
    }
  }

  /** Moves the entry to the young end, evicting the oldest beyond the cap. */
  #remember(key: string, entry: Entry): void {
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    while (this.#cache.size > this.#options.maxEntries) {
      const oldest = this.#cache.keys().next();
      if (oldest.done) break;
      this.#cache.delete(oldest.value);
    }
  }

  #emit(event: JwksFetchEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // a logging hook must not turn a good key set into a failed authentication
    }
  }
}

function parseJwkSet(body: Buffer, target: URL): JwkSet {
  const where = describeJwksUri(target);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new JwksFetchError('not-jwks', `${where}: response is not JSON, so it is not a JWK Set`);
  }
  const keys = isObject(parsed) ? parsed.keys : undefined;
  if (!Array.isArray(keys) || !keys.every((jwk) => isObject(jwk) && typeof jwk.kty === 'string')) {
    throw new JwksFetchError('not-jwks', `${where}: response is not a JWK Set`);
  }
  // Callers share the cached objects; freezing keeps one of them from altering what others see.
  return deepFreeze({ keys: keys as JWK[] });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function headerGetter(headers: IncomingHttpHeaders): (name: string) => string | undefined {
  return (name) => {
    const value = headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
