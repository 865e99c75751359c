import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SignJWT, importJWK, type JWK } from 'jose';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

/**
 * A hung Redis (SIGSTOP: the TCP connection stays open, nothing answers) must give fast, honest
 * 503s with Retry-After in every wire format, never a slow 500 or oidc-provider's "oops!", and the
 * service must come back by itself when Redis does (SIGCONT). Real redis-server, real server process.
 */

const ISSUER = 'http://localhost:3000';
const FHIR = 'http://localhost:8080/fhir';

/** HA_FIGURES=1 prints the measured latencies (docs/operations.md "Redis failures"). */
function figures(data: unknown): void {
  if (process.env.HA_FIGURES === '1') process.stdout.write(`fail-fast figures: ${JSON.stringify(data)}\n`);
}

interface Answer {
  name: string;
  status: number;
  ms: number;
  type: string;
  retryAfter: string | null;
  body: string;
}

describe('a hung Redis', () => {
  let redis: RedisServerHandle;
  let server: ServerProcess;
  let backendKey: JWK;
  let interaction: { path: string; cookie: string };
  const prefix = `ff-${randomUUID().slice(0, 8)}:`;

  beforeAll(async () => {
    redis = await startRedisServer();
    server = await startServerProcess({
      REDIS_URL: redis.url,
      AUTHZ_REDIS_PREFIX: prefix,
      AUTHZ_DEV_REDIS: 'false',
      AUTHZ_FHIR_SERVERS: FHIR,
      AUTHZ_LOG_LEVEL: 'info',
      AUTHZ_SHUTDOWN_DRAIN_MS: '0',
      AUTHZ_AUDIT_ANCHOR_DIR: mkdtempSync(join(tmpdir(), 'ff-anchor-')),
    });
    const direct = new Redis(redis.url);
    backendKey = JSON.parse((await direct.get(`${prefix}dev:demo-backend-private-jwk`))!) as JWK;
    direct.disconnect();
    interaction = await startInteraction(server.url);
  }, 40_000);

  afterAll(async () => {
    redis?.signal('SIGCONT');
    server?.proc.kill('SIGKILL');
    await server?.exited;
    await redis?.stop();
  });

  async function tokenRequest(): Promise<Response> {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({
      iss: 'demo-backend',
      sub: 'demo-backend',
      aud: `${ISSUER}/token`,
      jti: randomUUID(),
      iat: now,
      exp: now + 240,
    })
      .setProtectedHeader({ alg: 'ES384', kid: backendKey.kid!, typ: 'JWT' })
      .sign(await importJWK(backendKey, 'ES384'));
    return fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'system/*.rs',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }),
    });
  }

  /** One request per area, each timed; all sent at once. */
  function wave(): Promise<Answer[]> {
    const bearer = { authorization: `Bearer ${randomBytes(32).toString('base64url')}` };
    const requests: Record<string, () => Promise<Response>> = {
      token: tokenRequest,
      introspect: () =>
        fetch(`${server.url}/introspect`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from('demo-fhir-server:demo-fhir-server-secret').toString('base64')}`,
          },
          body: new URLSearchParams({ token: randomBytes(32).toString('base64url') }),
        }),
      interaction: () =>
        fetch(`${server.url}${interaction.path}`, { headers: { accept: 'text/html', cookie: interaction.cookie }, redirect: 'manual' }),
      scim: () => fetch(`${server.url}/scim/v2/Users`, { headers: { ...bearer, accept: 'application/scim+json' } }),
      auditEvent: () => fetch(`${server.url}/fhir/AuditEvent?_count=1`, { headers: { ...bearer, accept: 'application/fhir+json' } }),
      readyz: () => fetch(`${server.url}/readyz`),
    };
    return Promise.all(
      Object.entries(requests).map(async ([name, send]) => {
        const started = performance.now();
        const res = await send();
        const body = await res.text();
        return {
          name,
          status: res.status,
          ms: performance.now() - started,
          type: res.headers.get('content-type') ?? '',
          retryAfter: res.headers.get('retry-after'),
          body,
        };
      }),
    );
  }

  function expectFastHonest503s(answers: Answer[], budgetMs: number): void {
    const byName = Object.fromEntries(answers.map((a) => [a.name, a]));
    for (const a of answers) {
      expect({ name: a.name, status: a.status }).toEqual({ name: a.name, status: 503 });
      expect(a.body).not.toMatch(/oops|server_error/);
      expect({ name: a.name, fast: a.ms < (a.name === 'readyz' ? 500 : budgetMs) }).toEqual({ name: a.name, fast: true });
      if (a.name !== 'readyz')
        expect({ name: a.name, retryAfter: /^[1-9]\d*$/.test(a.retryAfter ?? '') }).toEqual({ name: a.name, retryAfter: true });
    }
    expect(JSON.parse(byName.token!.body)).toMatchObject({ error: 'temporarily_unavailable' });
    expect(JSON.parse(byName.introspect!.body)).toMatchObject({ error: 'temporarily_unavailable' });
    expect(byName.interaction!.type).toMatch(/^text\/html/);
    expect(byName.interaction!.body).toMatch(/temporarily unavailable/i);
    expect(byName.scim!.type).toMatch(/^application\/scim\+json/);
    expect(JSON.parse(byName.scim!.body)).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });
    expect(byName.auditEvent!.type).toMatch(/^application\/fhir\+json/);
    expect(JSON.parse(byName.auditEvent!.body)).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
    expect(JSON.parse(byName.readyz!.body)).toMatchObject({ status: 'unavailable' });
  }

  test('answers 503 + Retry-After in well under a second in every wire format, then recovers by itself', async () => {
    // Working before: each area answers on its own terms.
    expect((await tokenRequest()).status).toBe(200);
    const before = await wave();
    expect(Object.fromEntries(before.map((a) => [a.name, a.status]))).toEqual({
      token: 200,
      introspect: 200,
      interaction: 200,
      scim: 401,
      auditEvent: 401,
      readyz: 200,
    });

    redis.signal('SIGSTOP');
    // The first requests find Redis hung while the client still counts as ready: each waits at
    // most one command budget (500 ms).
    const first = await wave();
    expectFastHonest503s(first, 1_000);
    // From then on the breaker is open: 503 without waiting for Redis at all.
    const second = await wave();
    expectFastHonest503s(second, 250);

    redis.signal('SIGCONT');
    const resumed = Date.now();
    for (;;) {
      if ((await fetch(`${server.url}/readyz`)).status === 200) break;
      if (Date.now() - resumed > 5_000) throw new Error('the service did not resume after SIGCONT');
      await new Promise((r) => setTimeout(r, 20));
    }
    figures({
      first: first.map((a) => `${a.name} ${a.status} ${Math.round(a.ms)} ms`),
      open: second.map((a) => `${a.name} ${a.status} ${Math.round(a.ms)} ms`),
      readyAgainMs: Date.now() - resumed,
    });
    expect((await tokenRequest()).status).toBe(200);
    expect(server.stdout()).toMatch(/"msg":"Redis is not answering: requests get 503 until a PING succeeds"/);
    expect(server.stdout()).toMatch(/"msg":"Redis answers again"/);
    // Reported as the store being unavailable, never as a bug.
    expect(server.stdout()).not.toMatch(/unhandled error|oidc-provider server error|request failed/);
  }, 30_000);
});

/** GET /authorize as the demo app; returns the interaction page it redirects to and its cookies. */
async function startInteraction(base: string): Promise<{ path: string; cookie: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: 'demo-app',
    redirect_uri: 'http://localhost:4000/callback',
    scope: 'openid fhirUser launch/patient patient/*.rs',
    state: randomBytes(16).toString('base64url'),
    aud: FHIR,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const res = await fetch(`${base}/authorize?${query}`, { redirect: 'manual', headers: { accept: 'text/html' } });
  const location = res.headers.get('location');
  if (!location?.includes('/interaction/')) throw new Error(`expected a redirect to an interaction, got ${res.status} ${location}`);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  return { path: new URL(location, base).pathname, cookie };
}
