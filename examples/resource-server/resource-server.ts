import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decide, type Interaction } from './access.js';
import { RESOURCES, SEARCH_PARAMS, compartmentOf, matches, type Resource } from './data.js';

/**
 * A tiny FHIR R4 resource server protected by the authorization server: every request's bearer
 * token is checked by calling `/introspect` (as a registered `resource_server` client), then the
 * token's scopes and patient decide what it may read or search. Nothing is cached, so a revoked
 * token or a withdrawn consent stops working on the very next request.
 *
 *   GET /fhir/metadata                          CapabilityStatement (public)
 *   GET /fhir/.well-known/smart-configuration   the authorization server's SMART discovery (public)
 *   GET /fhir/Patient/:id, /fhir/Encounter/:id  read
 *   GET /fhir/Patient?…, /fhir/Encounter?…      search (Bundle)
 */

export interface ResourceServerOptions {
  /** The authorization server's issuer URL. A function lets a test start this server first. */
  issuer: string | (() => string);
  clientId: string;
  clientSecret: string;
  /** Path of the FHIR base on this server. */
  basePath?: string;
  /** For an issuer whose TLS certificate Node does not trust by default (a test CA). */
  fetch?: typeof fetch;
  /** Called with each request's outcome (tests and the console log read it). */
  onRequest?: (line: { method: string; path: string; status: number; client?: string | undefined }) => void;
}

export interface RunningResourceServer {
  server: Server;
  port: number;
  /** The FHIR base URL as clients should use it (http://localhost:PORT/fhir). */
  base: string;
  close(): Promise<void>;
}

interface Introspection {
  active: boolean;
  scope?: string;
  patient?: string;
  client_id?: string;
  aud?: string | string[];
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

class FhirError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly diagnostics: string,
    readonly authenticate?: string,
  ) {
    super(diagnostics);
  }
}

function outcome(code: string, diagnostics: string): object {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

function send(res: ServerResponse, status: number, body: object, contentType = FHIR_JSON): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
}

export function createResourceServer(opts: ResourceServerOptions): {
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  setBase(base: string): void;
} {
  const basePath = (opts.basePath ?? '/fhir').replace(/\/+$/, '');
  const doFetch = opts.fetch ?? globalThis.fetch;
  const issuer = () => (typeof opts.issuer === 'function' ? opts.issuer() : opts.issuer).replace(/\/+$/, '');
  let publicBase = '';
  let discovery: Promise<Record<string, unknown>> | undefined;

  function smartConfiguration(): Promise<Record<string, unknown>> {
    discovery ??= (async () => {
      const res = await doFetch(`${issuer()}/.well-known/smart-configuration`, { headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`SMART discovery answered ${res.status}`);
      return (await res.json()) as Record<string, unknown>;
    })().catch((err: unknown) => {
      discovery = undefined;
      throw err;
    });
    return discovery;
  }

  async function introspect(token: string): Promise<Introspection> {
    const config = await smartConfiguration();
    const endpoint = typeof config.introspection_endpoint === 'string' ? config.introspection_endpoint : `${issuer()}/introspect`;
    const res = await doFetch(endpoint, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${encodeURIComponent(opts.clientId)}:${encodeURIComponent(opts.clientSecret)}`).toString('base64')}`,
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
      },
      body: new URLSearchParams({ token }),
    });
    if (!res.ok) throw new Error(`introspection answered ${res.status}`);
    return (await res.json()) as Introspection;
  }

  /** The bearer's introspection, or a 401 for a missing, unknown, expired or revoked token. */
  async function authorize(req: IncomingMessage): Promise<Introspection> {
    const match = /^Bearer +([\x21-\x7e]+)$/i.exec(req.headers.authorization ?? '');
    if (!match) throw new FhirError(401, 'login', 'A bearer access token is required.', 'Bearer');
    let info: Introspection;
    try {
      info = await introspect(match[1]!);
    } catch (err) {
      throw new FhirError(503, 'transient', `The authorization server could not be asked about the token (${(err as Error).message}).`);
    }
    if (!info.active)
      throw new FhirError(401, 'login', 'The access token is not active (unknown, expired or revoked).', 'Bearer error="invalid_token"');
    // Introspection only answers for tokens addressed to this server's FHIR bases; checked again
    // here so a misconfigured client registration cannot widen what is accepted.
    const aud = Array.isArray(info.aud) ? info.aud : info.aud ? [info.aud] : [];
    if (publicBase && aud.length && !aud.includes(publicBase)) {
      throw new FhirError(401, 'login', 'The access token is for another FHIR server.', 'Bearer error="invalid_token"');
    }
    return info;
  }

  function forbid(reason: string): never {
    throw new FhirError(403, 'forbidden', `Access denied: ${reason}.`, 'Bearer error="insufficient_scope"');
  }

  async function handleFhir(req: IncomingMessage, url: URL): Promise<{ status: number; body: object; client?: string }> {
    const path = url.pathname.slice(basePath.length);
    if (path === '/metadata') return { status: 200, body: capabilityStatement(publicBase, issuer()) };
    if (path === '/.well-known/smart-configuration') return { status: 200, body: await smartConfiguration() };
    const match = /^\/([A-Z][A-Za-z]{0,63})(?:\/([A-Za-z0-9.-]{1,64}))?\/?$/.exec(path);
    if (!match) throw new FhirError(404, 'not-found', `No FHIR endpoint at ${url.pathname}.`);
    const [, type, id] = match as unknown as [string, string, string | undefined];
    if (!SEARCH_PARAMS[type]) throw new FhirError(404, 'not-supported', `This server does not serve ${type} resources.`);
    const info = await authorize(req);
    const interaction: Interaction = id ? 'read' : 'search';
    const decision = decide(info.scope ?? '', info.patient, type, interaction);
    if (!decision.allowed) forbid(decision.reason!);

    if (id) {
      const resource = RESOURCES.find((r) => r.resourceType === type && r.id === id);
      // Outside the compartment is refused before existence is revealed.
      if (
        decision.compartment !== undefined &&
        (!resource ? type === 'Patient' && id !== decision.compartment : compartmentOf(resource) !== decision.compartment)
      ) {
        forbid(`this token may only read the records of Patient/${decision.compartment}`);
      }
      if (!resource) throw new FhirError(404, 'not-found', `${type}/${id} is not known.`);
      return { status: 200, body: resource, client: info.client_id };
    }

    const unknown = [...url.searchParams.keys()].filter((k) => !SEARCH_PARAMS[type]!.includes(k));
    if (unknown.length) throw new FhirError(400, 'not-supported', `Search parameter(s) not supported: ${unknown.join(', ')}.`);
    const count = Math.min(Math.max(Number(url.searchParams.get('_count') ?? 50) || 50, 1), 100);
    const found = RESOURCES.filter((r) => r.resourceType === type && matches(r, url.searchParams))
      .filter((r) => decision.compartment === undefined || compartmentOf(r) === decision.compartment)
      .slice(0, count);
    return { status: 200, body: searchset(publicBase, url, found), client: info.client_id };
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // Browser apps on other origins call this API with a bearer token (no cookies).
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Accept, Content-Type');
    res.setHeader('Access-Control-Allow-Methods', 'GET, OPTIONS');
    res.setHeader('Access-Control-Expose-Headers', 'WWW-Authenticate');
    const url = new URL(req.url ?? '/', 'http://resource-server.invalid');
    const log = (status: number, client?: string) =>
      opts.onRequest?.({ method: req.method ?? '', path: url.pathname + url.search, status, client });
    if (req.method === 'OPTIONS') {
      res.statusCode = 204;
      res.setHeader('Access-Control-Max-Age', '600');
      res.end();
      return;
    }
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET, OPTIONS');
      send(res, 405, outcome('not-supported', 'This example server is read-only.'));
      log(405);
      return;
    }
    if (url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`)) {
      send(res, 404, outcome('not-found', `The FHIR base is ${basePath}.`));
      log(404);
      return;
    }
    handleFhir(req, url).then(
      ({ status, body, client }) => {
        send(res, status, body, url.pathname.endsWith('/smart-configuration') ? 'application/json; charset=utf-8' : FHIR_JSON);
        log(status, client);
      },
      (err: unknown) => {
        if (err instanceof FhirError) {
          if (err.authenticate) res.setHeader('WWW-Authenticate', err.authenticate);
          send(res, err.status, outcome(err.code, err.diagnostics));
          log(err.status);
          return;
        }
        send(res, 500, outcome('exception', 'The example server failed to answer.'));
        log(500);
      },
    );
  };
  return {
    handler,
    setBase(base) {
      publicBase = base;
    },
  };
}

function searchset(base: string, url: URL, resources: Resource[]): object {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: resources.length,
    link: [{ relation: 'self', url: `${base}${url.pathname.replace(/^\/[^/]+/, '')}${url.search}` }],
    entry: resources.map((r) => ({ fullUrl: `${base}/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } })),
  };
}

function capabilityStatement(base: string, issuer: string): object {
  const ext = (url: string, valueUri: string) => ({ url, valueUri });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    implementation: { description: 'Example FHIR server protected by the SMART authorization server', url: base },
    rest: [
      {
        mode: 'server',
        security: {
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [
                ext('authorize', `${issuer}/authorize`),
                ext('token', `${issuer}/token`),
                ext('introspect', `${issuer}/introspect`),
                ext('revoke', `${issuer}/revoke`),
              ],
            },
          ],
        },
        resource: Object.entries(SEARCH_PARAMS).map(([type, params]) => ({
          type,
          interaction: [{ code: 'read' }, { code: 'search-type' }],
          searchParam: params
            .filter((p) => !p.startsWith('_'))
            .map((name) => ({
              name,
              type: name === 'birthdate' ? 'date' : name === 'identifier' ? 'token' : name === 'name' ? 'string' : 'reference',
            })),
        })),
      },
    ],
  };
}

/**
 * Listens on `port` (0: any free one). The FHIR base is `publicBase` when given (it must be the
 * URL the authorization server lists in AUTHZ_FHIR_SERVERS: tokens carry it as `aud`), otherwise
 * http://localhost:PORT/fhir.
 */
export async function startResourceServer(
  opts: ResourceServerOptions & { port?: number; host?: string; publicBase?: string },
): Promise<RunningResourceServer> {
  const rs = createResourceServer(opts);
  const server = createServer(rs.handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const base = opts.publicBase?.replace(/\/+$/, '') ?? `http://localhost:${port}${(opts.basePath ?? '/fhir').replace(/\/+$/, '')}`;
  rs.setBase(base);
  return {
    server,
    port,
    base,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
