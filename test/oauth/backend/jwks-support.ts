import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { JwksFetcher } from '../../../src/oauth/backend/jwks-fetch.js';
import type { JwksFetchEvent, JwksFetcherOptions } from '../../../src/oauth/backend/jwks-fetch.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local key host on 127.0.0.1 that counts the requests it receives. */
export interface KeyHost {
  port: number;
  /** `http(s)://127.0.0.1:<port>` */
  origin: string;
  hits: number;
  handler: Handler;
  close(): Promise<void>;
}

export async function startKeyHost(handler: Handler, tls?: { key: string; cert: string }): Promise<KeyHost> {
  const host: KeyHost = { port: 0, origin: '', hits: 0, handler, close: async () => {} };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    host.hits += 1;
    host.handler(req, res);
  };
  const server: Server = tls ? createHttpsServer(tls, listener) : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host.port = (server.address() as AddressInfo).port;
  host.origin = `${tls ? 'https' : 'http'}://127.0.0.1:${host.port}`;
  host.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return host;
}

export function serveJson(body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

/** A clock the fetcher reads; tests move it instead of waiting. */
export class TestClock {
  t = Date.parse('2031-03-01T00:00:00Z');

  readonly now = (): number => this.t;

  advanceSeconds(seconds: number): void {
    this.t += seconds * 1000;
  }
}

export function fetcherFor(
  clock: TestClock,
  options: Partial<JwksFetcherOptions> = {},
): {
  fetcher: JwksFetcher;
  events: JwksFetchEvent[];
} {
  const events: JwksFetchEvent[] = [];
  const fetcher = new JwksFetcher({
    production: false,
    allowPrivateNetworks: true,
    now: clock.now,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { fetcher, events };
}

/** A resolver mapping fixed names to addresses, so no test depends on real DNS. */
export function fixedLookup(table: Record<string, string[]>): (hostname: string) => Promise<LookupAddress[]> {
  return async (hostname) => {
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}
