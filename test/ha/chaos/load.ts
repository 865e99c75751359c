import { randomUUID } from 'node:crypto';
import { signAssertion, type BackendKey } from '../../support/backend-client.js';

/**
 * The load of the chaos suite and the load balancer in front of the server instances.
 *
 * Each worker loops: a backend-service token (client_credentials, private_key_jwt), then one
 * introspection of it by the resource server, each sent to the next instance in rotation; every
 * eighth token's client assertion is also replayed to another instance, which must refuse it.
 * Every answer is kept with its time, so the checks afterwards can say what was acknowledged,
 * what was lost, and when errors happened.
 *
 * The balancer does what a production one does, no more: it probes `/readyz` on every instance
 * (fresh connection, short deadline) and routes to those that answered 200; when none did (Redis is
 * down for all of them) it routes to every instance still accepting connections, so the servers'
 * own answers (503 + Retry-After) reach the client. A token's introspection goes to another
 * instance than the one that issued it when another one is ready. A connection refused is never
 * delivered, so it is retried on another instance (like nginx' `proxy_next_upstream error`); a
 * connection lost with a request in flight is not retried (the request is not idempotent) and
 * counts as a failure.
 */

export const ISSUER = 'http://localhost:3000';
export const TOKEN_URL = `${ISSUER}/token`;

export type Kind = 'token' | 'introspect' | 'replay';

export interface Answer {
  kind: Kind;
  /** 0: no HTTP answer (connection refused, reset, or the client's deadline). */
  status: number;
  /** Instance index. */
  instance: number;
  /** ms since the load started, when the answer came. */
  at: number;
  ms: number;
  retryAfter?: string | null;
  error?: string;
}

export interface Acknowledged {
  token: string;
  instance: number;
  at: number;
}

export interface LoadResult {
  answers: Answer[];
  /** Tokens answered 200 by /token. */
  acknowledged: Acknowledged[];
  /** Acknowledged tokens whose introspection right after answered 200 but inactive. */
  inactiveAtOnce: string[];
  /** Replayed client assertions answered 200 (must be 0). */
  replaysAccepted: number;
  replaysSent: number;
  /** Wall-clock start of the load (Date.now()). */
  started: number;
  elapsedMs: number;
}

export interface Balancer {
  urls: string[];
  /** Next routable instance, or undefined when every instance refuses connections. */
  pick(avoid?: number): number | undefined;
  /** An instance's connection was refused: out of rotation until its probe answers again. */
  refused(i: number): void;
  stop(): void;
}

const PROBE_EVERY_MS = 200;
const PROBE_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 15_000;

export function balancer(urls: string[]): Balancer {
  /** 'ready' (readyz 200), 'unready' (answers, but not 200), 'down' (no connection). */
  const state: Array<'ready' | 'unready' | 'down'> = urls.map(() => 'ready');
  let next = 0;
  let stopped = false;
  const probe = async (i: number) => {
    while (!stopped) {
      try {
        const res = await fetch(`${urls[i]}/readyz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), headers: { connection: 'close' } });
        await res.arrayBuffer().catch(() => undefined);
        state[i] = res.status === 200 ? 'ready' : 'unready';
      } catch (err) {
        // A probe that timed out means the instance is slow (a loaded machine), not gone.
        state[i] = connectionCode(err) === 'timeout' ? 'unready' : 'down';
      }
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
  };
  urls.forEach((_, i) => void probe(i));
  return {
    urls,
    pick(avoid) {
      // Ready instances first (another than `avoid` if there is one), only then any that accepts connections.
      const all = urls.map((_, i) => i);
      const prefer = (pool: number[]) => (pool.some((i) => i !== avoid) ? pool.filter((i) => i !== avoid) : pool);
      let pool = prefer(all.filter((i) => state[i] === 'ready'));
      if (!pool.length) pool = prefer(all.filter((i) => state[i] !== 'down'));
      if (!pool.length) return undefined;
      return pool[next++ % pool.length];
    },
    refused(i) {
      state[i] = 'down';
    },
    stop() {
      stopped = true;
    },
  };
}

/** The kind of connection failure behind a fetch error. */
export function connectionCode(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'timeout';
  return e?.cause?.code ?? e?.name ?? 'error';
}

export interface LoadOptions {
  lb: Balancer;
  workers: number;
  clientId: string;
  key: BackendKey;
  rs: { id: string; secret: string };
  /** The load runs until this says stop (checked before each iteration). */
  stop: (elapsedMs: number, r: LoadResult) => boolean;
}

/** Sends one request through the balancer; a refused connection is retried on another instance. */
async function send(
  o: LoadOptions,
  r: LoadResult,
  kind: Kind,
  path: string,
  init: RequestInit,
  avoid?: number,
): Promise<{ instance: number; status: number; body?: Record<string, unknown> }> {
  for (let attempt = 0; ; attempt++) {
    const instance = o.lb.pick(avoid);
    if (instance === undefined) {
      // Nothing accepts connections (every instance is gone): what a client would see is a failure.
      await new Promise((res) => setTimeout(res, 50));
      r.answers.push({ kind, status: 0, instance: -1, at: Date.now() - r.started, ms: 0, error: 'no instance' });
      return { instance: -1, status: 0 };
    }
    const t0 = Date.now();
    try {
      const res = await fetch(`${o.lb.urls[instance]}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      r.answers.push({
        kind,
        status: res.status,
        instance,
        at: Date.now() - r.started,
        ms: Date.now() - t0,
        retryAfter: res.headers.get('retry-after'),
        ...(res.status >= 400 ? { error: String(body.error ?? body.detail ?? '') } : {}),
      });
      return { instance, status: res.status, body };
    } catch (err) {
      const code = connectionCode(err);
      if (code === 'ECONNREFUSED' && attempt < 3) {
        o.lb.refused(instance);
        continue;
      }
      r.answers.push({ kind, status: 0, instance, at: Date.now() - r.started, ms: Date.now() - t0, error: code });
      return { instance, status: 0 };
    }
  }
}

/** Starts the load; `result` fills as it goes (read it live), `finished` resolves once every worker stopped. */
export function startLoad(o: LoadOptions): { result: LoadResult; finished: Promise<LoadResult> } {
  const r: LoadResult = {
    answers: [],
    acknowledged: [],
    inactiveAtOnce: [],
    replaysAccepted: 0,
    replaysSent: 0,
    started: Date.now(),
    elapsedMs: 0,
  };
  const basic = `Basic ${Buffer.from(`${o.rs.id}:${o.rs.secret}`).toString('base64')}`;
  const worker = async () => {
    for (let i = 0; !o.stop(Date.now() - r.started, r); i++) {
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'system/*.rs',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await signAssertion(o.key, o.clientId, TOKEN_URL, { jti: randomUUID() }),
      });
      const token = await send(o, r, 'token', '/token', { method: 'POST', body: form });
      if (token.status === 503 || token.status === 0) {
        // A client honours Retry-After, within reason: a short pause keeps the load bounded.
        await new Promise((res) => setTimeout(res, 50));
        continue;
      }
      const access = token.status === 200 ? (token.body?.access_token as string | undefined) : undefined;
      if (!access) continue;
      r.acknowledged.push({ token: access, instance: token.instance, at: Date.now() - r.started });
      const intro = await send(
        o,
        r,
        'introspect',
        '/introspect',
        { method: 'POST', headers: { authorization: basic }, body: new URLSearchParams({ token: access }) },
        token.instance,
      );
      if (intro.status === 200 && intro.body?.active !== true) r.inactiveAtOnce.push(access);
      if (i % 8 === 0) {
        // The same client assertion again, to another instance: its jti was used, so it must be refused.
        r.replaysSent++;
        const replay = await send(o, r, 'replay', '/token', { method: 'POST', body: form }, token.instance);
        if (replay.status === 200) r.replaysAccepted++;
      }
    }
  };
  const finished = Promise.all(Array.from({ length: o.workers }, worker)).then(() => {
    r.elapsedMs = Date.now() - r.started;
    return r;
  });
  return { result: r, finished };
}
