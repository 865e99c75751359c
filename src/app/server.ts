import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../platform/config/schema.js';
import { ConfigError } from '../platform/config/load.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HttpServer {
  server: Server;
  port: number;
  /** Swaps the request handler (e.g. a provider rebuilt with rotated keys) without dropping connections. */
  setHandler(handler: Handler): void;
  /**
   * Keeps accepting for `drainMs` while every response asks the client to close its connection,
   * so a load balancer that saw /readyz turn 503 moves traffic away before the port closes.
   */
  drain(drainMs: number): Promise<void>;
  /** Stops accepting, lets in-flight requests finish within the grace period, then closes. */
  close(graceMs: number): Promise<void>;
}

/** How long `/readyz` answers 503 before the listener closes on SIGTERM (`http.shutdownDrainMs`). */
export function drainMsFor(config: Config): number {
  return config.http.shutdownDrainMs ?? (config.mode === 'production' ? 5_000 : 1_000);
}

/** Reads the certificate and key; a file that cannot be read is a ConfigError naming its setting. */
export function readTls(config: Config): { cert: Buffer; key: Buffer } | undefined {
  if (!config.tls) return undefined;
  const read = (file: string, env: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`config error: ${env} file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  return { cert: read(config.tls.certFile, 'AUTHZ_TLS_CERT'), key: read(config.tls.keyFile, 'AUTHZ_TLS_KEY') };
}

export async function listen(config: Config, initial: Handler, logger: Logger): Promise<HttpServer> {
  let handler = initial;
  let draining = false;
  const dispatch: Handler = (req, res) => {
    // Node ends the connection after a response that carries `Connection: close`.
    if (draining) res.setHeader('Connection', 'close');
    handler(req, res);
  };
  const tls = readTls(config);
  const server = tls ? createHttpsServer({ ...tls, minVersion: 'TLSv1.2' }, dispatch) : createHttpServer(dispatch);
  // Slow-loris bounds; keep-alive longer than typical load balancer idle timeouts.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  logger.info({ port, tls: Boolean(tls), issuer: config.issuer }, 'listening');

  return {
    server,
    port,
    setHandler(next) {
      handler = next;
    },
    async drain(drainMs) {
      draining = true;
      if (drainMs > 0) logger.info({ drainMs }, 'draining: /readyz answers 503, connections close after each response');
      await new Promise((resolve) => setTimeout(resolve, drainMs));
    },
    async close(graceMs) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        logger.warn('grace period over, closing remaining connections');
        server.closeAllConnections();
      }, graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
