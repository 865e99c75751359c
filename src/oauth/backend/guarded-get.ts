import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { allPublic, isPublicAddress } from './address-policy.js';
import { JwksFetchError, describeJwksUri } from './jwks-fetch-error.js';

/**
 * One GET of a jwks_uri under the SSRF, time and size rules:
 * - the address check runs inside the `lookup` the socket connects with, so the address that was
 *   vetted is the one connected to (no DNS-rebinding window between check and connect); literal IP
 *   hosts never reach a lookup and are checked before anything is opened;
 * - every resolved address must pass, not just the one that would be used first;
 * - one deadline covers DNS, connect, TLS, headers and body; bodies above the cap are cut off;
 * - redirects are never followed, and only 200 is a success;
 * - no connection pooling, so a socket is never reused for a request it was not vetted for.
 */

export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export interface GuardedGetOptions {
  timeoutMs: number;
  maxBytes: number;
  allowPrivateNetworks: boolean;
  resolve?: Resolver;
  tls?: { ca?: string | Buffer };
}

export interface GuardedResponse {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const defaultResolve: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

function vettingLookup(url: URL, options: GuardedGetOptions): LookupFunction {
  const resolve = options.resolve ?? defaultResolve;
  const where = describeJwksUri(url);
  return (hostname, lookupOptions, callback) => {
    resolve(hostname)
      .then((resolved) => {
        if (resolved.length === 0) throw new JwksFetchError('dns', `${where}: host does not resolve`);
        if (!options.allowPrivateNetworks && !allPublic(resolved.map(({ address }) => address))) {
          throw new JwksFetchError('private-address', `${where}: host resolves to a private address`);
        }
        const wanted = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
        const usable = resolved.filter(({ family }) => wanted === 0 || family === wanted);
        const [first] = usable;
        if (first === undefined) throw new JwksFetchError('dns', `${where}: host does not resolve`);
        if (lookupOptions.all) callback(null, usable);
        else callback(null, first.address, first.family);
      })
      .catch((err: unknown) => {
        const error = err instanceof JwksFetchError ? err : new JwksFetchError('dns', `${where}: host does not resolve`, { cause: err });
        callback(error as NodeJS.ErrnoException, '', 0);
      });
  };
}

function literalHost(url: URL): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? undefined : host;
}

export function guardedGet(url: URL, options: GuardedGetOptions): Promise<GuardedResponse> {
  const where = describeJwksUri(url);
  const literal = literalHost(url);
  if (literal !== undefined && !options.allowPrivateNetworks && !isPublicAddress(literal)) {
    return Promise.reject(new JwksFetchError('private-address', `${where}: host is a private address`));
  }

  return new Promise<GuardedResponse>((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, {
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json' },
      agent: false,
      lookup: vettingLookup(url, options),
      ...(options.tls?.ca === undefined ? {} : { ca: options.tls.ca }),
    });

    let settled = false;
    const fail = (error: JwksFetchError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new JwksFetchError('timeout', `${where}: timed out after ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );

    req.on('error', (err) => {
      fail(
        err instanceof JwksFetchError
          ? err
          : new JwksFetchError('network', `${where}: request failed (${networkReason(err)})`, { cause: err }),
      );
    });

    req.on('response', (res: IncomingMessage) => {
      res.on('error', (err) => {
        fail(new JwksFetchError('network', `${where}: response interrupted (${networkReason(err)})`, { cause: err }));
      });
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        fail(new JwksFetchError('redirect', `${where}: HTTP ${status}; redirects are not followed`, { status }));
        return;
      }
      if (status !== 200) {
        fail(new JwksFetchError('http-status', `${where}: HTTP ${status}`, { status }));
        return;
      }
      const tooLarge = (): JwksFetchError => new JwksFetchError('too-large', `${where}: response exceeds ${options.maxBytes} bytes`);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        fail(tooLarge());
        return;
      }

      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > options.maxBytes) fail(tooLarge());
        else chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        if (!res.complete) {
          fail(new JwksFetchError('network', `${where}: response interrupted`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve({ headers: res.headers, body: Buffer.concat(chunks) });
      });
    });

    req.end();
  });
}

/** A short, address-free reason such as `ECONNREFUSED` or `CERT_HAS_EXPIRED`. */
function networkReason(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'connection error';
}
