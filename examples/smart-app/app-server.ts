import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Serves the example SMART app: static pages plus the official SMART client's browser build
 * (`fhirclient`) and a small `config.json` the pages read. `/launch` is the app's launch URL,
 * `/callback` its redirect URI. The pages get a strict CSP of their own: scripts from this
 * origin only, network calls only to the FHIR server and the authorization server.
 */

export interface AppServerOptions {
  clientId: string;
  /** FHIR base for a standalone launch (an EHR launch passes its own `iss`). */
  fhirBase: string;
  /** Origins the pages may call or post forms to besides their own (FHIR server, authorization server). */
  connectTo: string[];
  standaloneScope?: string;
  ehrScope?: string;
  port?: number;
  host?: string;
}

export interface RunningAppServer {
  server: Server;
  origin: string;
  close(): Promise<void>;
}

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const require = createRequire(import.meta.url);
const FHIR_CLIENT = require.resolve('fhirclient/build/fhir-client.min.js');

const PAGES: Record<string, string> = {
  '/': 'index.html',
  '/launch': 'launch.html',
  '/callback': 'callback.html',
  '/launch.js': 'launch.js',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

export const DEFAULT_STANDALONE_SCOPE = 'openid fhirUser launch/patient offline_access patient/*.rs';
export const DEFAULT_EHR_SCOPE = 'openid fhirUser launch patient/*.rs';

export async function startAppServer(opts: AppServerOptions): Promise<RunningAppServer> {
  const origins = [...new Set(opts.connectTo.map((u) => new URL(u).origin))].join(' ');
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${origins}`,
    `form-action 'self' ${origins}`,
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://app.invalid').pathname;
    res.setHeader('Content-Security-Policy', csp);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    const reply = async (): Promise<void> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.statusCode = 405;
        res.end();
        return;
      }
      if (path === '/favicon.ico') {
        res.statusCode = 204;
        res.end();
        return;
      }
      if (path === '/config.json') {
        res.setHeader('Content-Type', 'application/json');
        res.end(
          JSON.stringify({
            clientId: opts.clientId,
            fhirBase: opts.fhirBase,
            standaloneScope: opts.standaloneScope ?? DEFAULT_STANDALONE_SCOPE,
            ehrScope: opts.ehrScope ?? DEFAULT_EHR_SCOPE,
          }),
        );
        return;
      }
      const file = path === '/vendor/fhir-client.js' ? FHIR_CLIENT : PAGES[path] ? join(PUBLIC, PAGES[path]) : undefined;
      if (!file) {
        res.statusCode = 404;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end('Not found');
        return;
      }
      res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
      res.end(await readFile(file));
    };
    reply().catch(() => {
      res.statusCode = 500;
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  return {
    server,
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
