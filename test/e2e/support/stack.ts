import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../../support/server-process.js';
import { createPgTestDatabase } from '../../support/postgres.js';
import { freeLoopbackPort } from '../../../src/platform/ops/local-process.js';
import { startResourceServer, type RunningResourceServer } from '../../../examples/resource-server/resource-server.js';
import { startAppServer, type RunningAppServer } from '../../../examples/smart-app/app-server.js';
import { fetchTrusting, makeTestCertificate, type TestCertificate } from './tls.js';

/**
 * The whole demo landscape for a browser test: the REAL authorization server (src/main.ts as a
 * child process, development mode with its demo data, its own Redis prefix on the suite's Redis),
 * the example FHIR resource server (which introspects as demo-fhir-server and is the FHIR server
 * the practitioner's patient picker searches) and the example SMART app, each on a free port.
 */

export const APP_CLIENT_ID = 'e2e-app';
/** A second registration of the same app, for flows that need a consent nobody has given yet. */
export const SECOND_APP_CLIENT_ID = 'e2e-app-b';

export interface RsLogLine {
  method: string;
  path: string;
  status: number;
  client?: string | undefined;
}

export interface Stack {
  issuer: string;
  server: ServerProcess;
  rs: RunningResourceServer;
  app: RunningAppServer;
  /** The same app as SECOND_APP_CLIENT_ID. */
  appB: RunningAppServer;
  /** Every request the resource server answered, in order. */
  rsLog: RsLogLine[];
  tls?: TestCertificate;
  /** fetch for Node-side calls (trusts the test certificate in an https stack). */
  fetch: typeof fetch;
  close(): Promise<void>;
}

export interface StackOptions {
  https?: boolean;
  /** More clients for the clients file (AUTHZ_CLIENTS_FILE); `app` is the example app's origin. */
  clients?: (app: string) => Record<string, unknown>[];
  /** More environment for the server (e.g. the MFA policy, federation providers); `issuer` is known by then. */
  env?: (issuer: string) => Record<string, string> | Promise<Record<string, string>>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  if (!process.env.REDIS_URL) throw new Error('REDIS_URL is not set (the jest global setup starts the suite redis)');
  const tls = opts.https ? makeTestCertificate() : undefined;
  const nodeFetch = tls ? fetchTrusting(tls.pem) : globalThis.fetch;
  // The issuer must name the port before the server starts; the window in which another process
  // could take it is the few milliseconds until the child listens.
  const port = await freeLoopbackPort();
  const issuer = `${tls ? 'https' : 'http'}://localhost:${port}`;
  const rsLog: RsLogLine[] = [];
  const rs = await startResourceServer({
    issuer,
    clientId: 'demo-fhir-server',
    clientSecret: 'demo-fhir-server-secret',
    fetch: nodeFetch,
    onRequest: (l) => rsLog.push(l),
  });
  const app = await startAppServer({ clientId: APP_CLIENT_ID, fhirBase: rs.base, connectTo: [issuer, rs.base] });
  const appB = await startAppServer({ clientId: SECOND_APP_CLIENT_ID, fhirBase: rs.base, connectTo: [issuer, rs.base] });

  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-e2e-'));
  const clientsFile = join(dir, 'clients.json');
  const appClient = (clientId: string, name: string, origin: string) => ({
    client_id: clientId,
    client_name: name,
    smart_client_kind: 'public_app',
    redirect_uris: [`${origin}/callback`, `${origin}/post-callback`],
    launch_url: `${origin}/launch`,
    smart_scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs', 'user/*.rs'],
  });
  const clients = [
    appClient(APP_CLIENT_ID, 'Example SMART app (e2e)', app.origin),
    appClient(SECOND_APP_CLIENT_ID, 'Example SMART app, second registration (e2e)', appB.origin),
    ...(opts.clients?.(app.origin) ?? []),
  ];
  writeFileSync(clientsFile, JSON.stringify({ clients }));

  // The audit trail's home is a PostgreSQL database of this stack's own, migrated by the server
  // itself at start-up (as owner), with the append-only application role for everything else.
  const auditDb = await createPgTestDatabase({ migrate: false });
  const extraEnv = (await opts.env?.(issuer)) ?? {};
  let server: ServerProcess;
  try {
    server = await startServerProcess(
      {
        AUTHZ_ISSUER: issuer,
        PORT: String(port),
        AUTHZ_HOST: '127.0.0.1',
        AUTHZ_MODE: 'development',
        REDIS_URL: process.env.REDIS_URL,
        AUTHZ_REDIS_PREFIX: `e2e-${randomBytes(4).toString('hex')}:`,
        AUTHZ_DEV_REDIS: 'false',
        AUTHZ_FHIR_SERVERS: rs.base,
        AUTHZ_CLIENTS_FILE: clientsFile,
        AUTHZ_AUDIT_STORE: 'postgres',
        AUTHZ_AUDIT_DATABASE_URL: auditDb.appUrl,
        AUTHZ_AUDIT_DATABASE_OWNER_URL: auditDb.ownerUrl,
        ...(tls ? { AUTHZ_TLS_CERT: tls.certFile, AUTHZ_TLS_KEY: tls.keyFile } : {}),
        ...extraEnv,
      },
      { https: Boolean(tls) },
    );
  } catch (err) {
    await Promise.all([rs.close(), app.close(), appB.close(), auditDb.drop()]);
    throw err;
  }
  return {
    issuer,
    server,
    rs,
    app,
    appB,
    rsLog,
    ...(tls ? { tls } : {}),
    fetch: nodeFetch,
    async close() {
      server.proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([server.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      if (server.proc.exitCode === null) server.proc.kill('SIGKILL');
      await Promise.all([rs.close(), app.close(), appB.close(), auditDb.drop()]);
    },
  };
}

export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** An EHR launch context created through the launch API by the demo EHR client. */
export async function createLaunch(stack: Stack, context: Record<string, unknown>): Promise<string> {
  const res = await stack.fetch(`${stack.issuer}/api/launch`, {
    method: 'POST',
    headers: { Authorization: basic('demo-ehr', 'demo-ehr-secret'), 'Content-Type': 'application/json' },
    body: JSON.stringify(context),
  });
  const body = (await res.json()) as { launch?: string };
  if (res.status !== 201 || !body.launch) throw new Error(`POST /api/launch answered ${res.status}: ${JSON.stringify(body)}`);
  return body.launch;
}
