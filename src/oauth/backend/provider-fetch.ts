import type { JwkSet } from './jwks-fetch.js';

/**
 * oidc-provider's `fetch` option backed by a JwksFetcher.
 *
 * What oidc-provider 9 does with it (lib/models/client.js ClientKeyStore.refresh): it calls
 * `fetch(href, { method: 'GET', headers, signal: AbortSignal.timeout(2500), dispatcher })` only
 * when a client's in-memory key store is empty or past its freshness and a signature did not
 * verify (unknown kid); it needs status 200 and a JSON body (`arrayBuffer()` or the body stream),
 * and keeps the keys fresh for max(60 s, Cache-Control max-age, Expires). Hence:
 * - every call is a `forceRefresh`: it asks for keys it could not find, and our refetch interval
 *   is what keeps a kid-spraying caller from reaching the client's host; a cached set is the answer
 *   within that interval, a stale one while the host is down;
 * - the response says `max-age=0`, so oidc-provider holds keys for its 60 s floor only and comes
 *   back to us (and our TTL, rate limit and stale rules) on the next unknown kid;
 * - its `dispatcher` is ignored: the connection is made by guardedGet, whose SSRF check is ours;
 * - its `signal` releases the caller only; a shared fetch in progress still completes and fills
 *   the cache for the next one.
 * The same option also carries sector_identifier_uri and client_id metadata document GETs and
 * backchannel POSTs. Only requests `isJwksRequest` accepts come here; the default takes plain GETs
 * without a `redirect` mode (jwks_uri and sector_identifier_uri look alike; pass a stricter test if
 * sector identifiers are ever used). Everything else goes to `fallback` (oidc-provider's default).
 */
export type ProviderFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface ProviderFetchOptions {
  isJwksRequest?: (url: string, init: RequestInit) => boolean;
  fallback?: ProviderFetch;
}

interface JwksSource {
  getJwks(url: string, opts?: { forceRefresh?: boolean }): Promise<JwkSet>;
}

const looksLikeJwksRequest = (_url: string, init: RequestInit): boolean =>
  (init.method ?? 'GET').toUpperCase() === 'GET' && init.redirect === undefined && init.body == null;

export function createProviderFetch(fetcher: JwksSource, options: ProviderFetchOptions = {}): ProviderFetch {
  const isJwksRequest = options.isJwksRequest ?? looksLikeJwksRequest;
  const fallback: ProviderFetch = options.fallback ?? ((input, init) => globalThis.fetch(input, init));

  return async (input, init = {}) => {
    // oidc-provider passes a URL string; a Request object is never a jwks_uri refresh of its own.
    if (typeof input !== 'string' && !(input instanceof URL)) return fallback(input, init);
    const href = typeof input === 'string' ? input : input.href;
    if (!isJwksRequest(href, init)) return fallback(input, init);

    const jwks = await untilAborted(fetcher.getJwks(href, { forceRefresh: true }), init.signal);
    return new Response(JSON.stringify(jwks), {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'max-age=0' },
    });
  };
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
