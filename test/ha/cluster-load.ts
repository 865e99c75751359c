import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { TestApp } from '../support/test-app.js';
import { signAssertion, type BackendKey } from '../support/backend-client.js';

/**
 * A bounded load like an operator's go-live check: workers each loop "get a backend token with
 * client_credentials, introspect it once", over real HTTP against a listening server, and record
 * every answer with its time so a test can say what was acknowledged and when errors happened.
 */

export const TOKEN_URL = 'http://localhost:3000/token';

export interface Answer {
  kind: 'token' | 'introspect' | 'scim';
  status: number;
  /** ms since the load started, at the answer. */
  at: number;
  ms: number;
  /** Retry-After on a 503. */
  retryAfter?: string | null;
  error?: string;
}

export interface LoadResult {
  answers: Answer[];
  /** Tokens answered 200 by the token endpoint. */
  issued: string[];
  /** Of those, the ones whose introspection answered 200 with active: true. */
  introspectedActive: string[];
  /** Introspections answered 200 but inactive (a token the store lost). */
  introspectedInactive: string[];
  /** SCIM users answered 201. */
  scimCreated: string[];
  elapsedMs: number;
}

export interface LoadOptions {
  workers: number;
  durationMs: number;
  maxRequests?: number;
  clientId: string;
  key: BackendKey;
  rs: { id: string; secret: string };
  /** Bearer token with the scim scope; every `scimEvery`th iteration of worker 0 creates a user. */
  scim?: { token: string; every: number };
  /** Called once per iteration with ms since start (to inject a fault at a point). */
  onTick?: (elapsedMs: number) => void;
}

export async function listen(t: TestApp): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(t.app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function timed(
  kind: Answer['kind'],
  started: number,
  answers: Answer[],
  send: () => Promise<Response>,
): Promise<{ res?: Response; body?: Record<string, unknown> }> {
  const t0 = Date.now();
  try {
    const res = await send();
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    answers.push({
      kind,
      status: res.status,
      at: Date.now() - started,
      ms: Date.now() - t0,
      retryAfter: res.headers.get('retry-after'),
      ...(res.status >= 400 ? { error: String(body.error ?? body.detail ?? '') } : {}),
    });
    return { res, body };
  } catch (err) {
    answers.push({ kind, status: 0, at: Date.now() - started, ms: Date.now() - t0, error: (err as Error).message });
    return {};
  }
}

export async function runLoad(baseUrl: string, o: LoadOptions): Promise<LoadResult> {
  const answers: Answer[] = [];
  const out: LoadResult = { answers, issued: [], introspectedActive: [], introspectedInactive: [], scimCreated: [], elapsedMs: 0 };
  const started = Date.now();
  const basic = `Basic ${Buffer.from(`${o.rs.id}:${o.rs.secret}`).toString('base64')}`;
  let sent = 0;
  const more = () => Date.now() - started < o.durationMs && (o.maxRequests === undefined || sent < o.maxRequests);

  const worker = async (n: number) => {
    for (let i = 0; more(); i++) {
      o.onTick?.(Date.now() - started);
      sent++;
      const assertion = await signAssertion(o.key, o.clientId, TOKEN_URL);
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'system/*.rs',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      });
      const token = await timed('token', started, answers, () => fetch(`${baseUrl}/token`, { method: 'POST', body: form }));
      const access = token.res?.status === 200 ? (token.body?.access_token as string | undefined) : undefined;
      if (access) {
        out.issued.push(access);
        sent++;
        const intro = await timed('introspect', started, answers, () =>
          fetch(`${baseUrl}/introspect`, {
            method: 'POST',
            headers: { authorization: basic },
            body: new URLSearchParams({ token: access }),
          }),
        );
        if (intro.res?.status === 200) (intro.body?.active === true ? out.introspectedActive : out.introspectedInactive).push(access);
      }
      if (n === 0 && o.scim && i % o.scim.every === 0) {
        const userName = `load-${randomUUID().slice(0, 8)}`;
        sent++;
        const scim = await timed('scim', started, answers, () =>
          fetch(`${baseUrl}/scim/v2/Users`, {
            method: 'POST',
            headers: { authorization: `Bearer ${o.scim!.token}`, 'content-type': 'application/scim+json' },
            body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName }),
          }),
        );
        if (scim.res?.status === 201) out.scimCreated.push(String(scim.body?.id));
      }
    }
  };
  await Promise.all(Array.from({ length: o.workers }, (_, n) => worker(n)));
  out.elapsedMs = Date.now() - started;
  return out;
}

/** Counts by kind and status, and latency percentiles, for the report and failure messages. */
export function summarize(r: LoadResult): Record<string, unknown> {
  const byStatus: Record<string, number> = {};
  for (const a of r.answers)
    byStatus[`${a.kind} ${a.status}${a.error ? ` ${a.error}` : ''}`] =
      (byStatus[`${a.kind} ${a.status}${a.error ? ` ${a.error}` : ''}`] ?? 0) + 1;
  const ms = r.answers.map((a) => a.ms).sort((a, b) => a - b);
  const pct = (p: number) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))] ?? 0;
  // Per second of the run: answered requests, and how many of them were errors.
  const timeline: string[] = [];
  for (const a of r.answers) {
    const s = Math.floor(a.at / 1000);
    const [ok, bad] = (timeline[s] ?? '0/0').split('/').map(Number) as [number, number];
    timeline[s] = a.status === 200 || a.status === 201 ? `${ok + 1}/${bad}` : `${ok}/${bad + 1}`;
  }
  return {
    requests: r.answers.length,
    timeline: Array.from(timeline, (x) => x ?? '0/0').join(' '),
    perSecond: Math.round((r.answers.length / r.elapsedMs) * 1000),
    p50: pct(50),
    p95: pct(95),
    p99: pct(99),
    max: ms[ms.length - 1] ?? 0,
    byStatus,
  };
}
