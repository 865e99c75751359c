import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

/**
 * SIGTERM under load: for the drain period /readyz answers 503 and responses carry
 * `Connection: close` while the port still accepts, so a load balancer takes the instance out
 * without a single refused connection; requests in flight when the listener closes finish; the
 * process exits 0. Real server process, 8 keep-alive workers.
 */

const DRAIN_MS = 2_000;
const WORKERS = 8;
const INTROSPECTOR = `Basic ${Buffer.from('demo-fhir-server:demo-fhir-server-secret').toString('base64')}`;

interface Outcome {
  startedAt: number;
  status?: number;
  connection?: string;
  error?: string;
}

function send(
  url: string,
  agent: Agent | false,
  opts: { method?: string; headers?: Record<string, string>; body?: string; trickleMs?: number } = {},
): Promise<Outcome> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', agent, headers: opts.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ startedAt, status: res.statusCode, connection: String(res.headers.connection ?? '') }));
      res.on('error', (err) => resolve({ startedAt, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    });
    req.on('error', (err) => resolve({ startedAt, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    if (opts.body && opts.trickleMs) {
      // The body arrives in two halves, the second after the listener has closed: in flight then.
      const half = Math.floor(opts.body.length / 2);
      req.write(opts.body.slice(0, half));
      setTimeout(() => req.end(opts.body!.slice(half)), opts.trickleMs);
    } else req.end(opts.body);
  });
}

function introspection(url: string, agent: Agent | false, trickleMs?: number): Promise<Outcome> {
  const body = new URLSearchParams({ token: randomBytes(32).toString('base64url') }).toString();
  return send(`${url}/introspect`, agent, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length), authorization: INTROSPECTOR },
    body,
    ...(trickleMs ? { trickleMs } : {}),
  });
}

describe('shutdown under load', () => {
  let server: ServerProcess;

  afterAll(async () => {
    if (server?.proc.exitCode === null) server.proc.kill('SIGKILL');
  });

  test('drains: /readyz 503, Connection: close, no refused or reset request, exit 0', async () => {
    server = await startServerProcess({
      REDIS_URL: process.env.REDIS_URL!,
      AUTHZ_REDIS_PREFIX: `dr-${randomUUID().slice(0, 8)}:`,
      AUTHZ_DEV_REDIS: 'false',
      AUTHZ_LOG_LEVEL: 'info',
      AUTHZ_SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
      AUTHZ_AUDIT_ANCHOR_DIR: mkdtempSync(join(tmpdir(), 'drain-anchor-')),
    });
    const { url } = server;
    let stopLoad = false;
    const outcomes: Outcome[] = [];
    const probes: Outcome[] = [];

    // What a load balancer does: keep-alive traffic, and a readiness probe on fresh connections.
    const workers = Array.from({ length: WORKERS }, async (_, i) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      while (!stopLoad) {
        outcomes.push(await (i % 2 ? introspection(url, agent) : send(`${url}/.well-known/smart-configuration`, agent)));
      }
      agent.destroy();
    });
    const prober = (async () => {
      while (!stopLoad) {
        probes.push(await send(`${url}/readyz`, false));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    await new Promise((r) => setTimeout(r, 1_000));
    const termAt = Date.now();
    server.proc.kill('SIGTERM');
    // A request whose body is still arriving when the drain ends and the listener closes.
    await new Promise((r) => setTimeout(r, DRAIN_MS - 300));
    const inFlight = introspection(url, false, 800);
    // The load balancer has long stopped routing here by the end of the drain.
    await new Promise((r) => setTimeout(r, 200));
    stopLoad = true;
    await Promise.all([...workers, prober]);
    const slow = await inFlight;
    const code = await server.exited;

    if (process.env.HA_FIGURES === '1') {
      const during = outcomes.filter((o) => o.startedAt >= termAt);
      process.stdout.write(
        `drain figures: ${JSON.stringify({ requests: outcomes.length, duringDrain: during.length, failed: outcomes.filter((o) => o.error || o.status !== 200).length, firstReadyz503AfterMs: (probes.find((p) => p.startedAt >= termAt && p.status === 503)?.startedAt ?? NaN) - termAt, inFlightAtClose: slow.status, exitCode: code })}\n`,
      );
    }
    const failed = outcomes.filter((o) => o.error || o.status !== 200);
    expect(failed).toEqual([]);
    expect(outcomes.filter((o) => o.startedAt >= termAt).length).toBeGreaterThan(20);
    // Every answer after SIGTERM tells keep-alive clients to reconnect (elsewhere).
    const late = outcomes.filter((o) => o.startedAt >= termAt + 100);
    expect(late.every((o) => o.connection === 'close')).toBe(true);

    expect(probes.filter((p) => p.error)).toEqual([]);
    expect(probes.filter((p) => p.startedAt < termAt).every((p) => p.status === 200)).toBe(true);
    const firstUnready = probes.find((p) => p.startedAt >= termAt && p.status === 503);
    expect(firstUnready).toBeDefined();
    expect(firstUnready!.startedAt - termAt).toBeLessThan(300);
    expect(probes.filter((p) => p.startedAt >= termAt + 100).every((p) => p.status === 503)).toBe(true);

    expect(slow).toMatchObject({ status: 200 });
    expect(code).toBe(0);
    expect(server.stdout()).toMatch(/"msg":"stopped"/);
  }, 30_000);
});
