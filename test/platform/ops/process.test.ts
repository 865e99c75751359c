import { randomUUID } from 'node:crypto';
import { request as httpRequest, Agent } from 'node:http';
import { Redis } from 'ioredis';
import { getStatus, startServerProcess } from '../../support/server-process.js';
import { selfSignedCertificate } from '../../support/certificate.js';

const base = () => ({ REDIS_URL: process.env.REDIS_URL!, AUTHZ_REDIS_PREFIX: `p-${randomUUID().slice(0, 8)}:`, AUTHZ_LOG_LEVEL: 'info' });

describe('the server process', () => {
  test.each([
    [{ PORT: 'eighty' }, /^config error: PORT must be a whole number, got "eighty"$/],
    [
      { AUTHZ_MODE: 'production', AUTHZ_ISSUER: 'https://auth.example.org' },
      /^config error: AUTHZ_TLS_CERT \(tls\) an https issuer needs a TLS certificate/,
    ],
    [{ AUTHZ_FHIR_SERVERS: 'nope' }, /^config error: AUTHZ_FHIR_SERVERS \(fhirServers\.0\.base\) must be an absolute URL$/],
  ])('a bad setting %j stops start-up with one line and no stack trace', async (env, pattern) => {
    const server = await startServerProcess({ ...base(), ...env }, { waitReady: false });
    expect(await server.exited).toBe(1);
    const lines = server.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(server.stdout()).toBe('');
  });

  test('an unreachable Redis in production is one clear line', async () => {
    const server = await startServerProcess(
      {
        ...base(),
        AUTHZ_MODE: 'production',
        AUTHZ_PROXY: 'true',
        AUTHZ_ISSUER: 'https://auth.example.org',
        AUTHZ_COOKIE_KEYS: 'c'.repeat(40),
        AUTHZ_KEY_ENCRYPTION_SECRET: 's'.repeat(40),
        AUTHZ_AUDIT_ANCHOR_DIR: '/tmp/smart-authz-anchor',
        AUTHZ_AUDIT_STORE: 'redis',
        REDIS_URL: 'redis://127.0.0.1:1',
      },
      { waitReady: false },
    );
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split('\n')).toEqual([
      expect.stringMatching(/^cannot connect to Redis at redis:\/\/127.0.0.1:1\/?: connect ECONNREFUSED/),
    ]);
  });

  test('keys persist across a restart and SIGTERM shuts down gracefully', async () => {
    const env = base();
    const first = await startServerProcess(env);
    const kids1 = ((await (await fetch(`${first.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map(
      (k) => k.kid,
    );
    expect(kids1).toHaveLength(2);

    // A keep-alive connection that stays open must not hold shutdown hostage.
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      httpRequest(`${first.url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      })
        .on('error', reject)
        .end();
    });

    const stoppedAt = Date.now();
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(5000);
    expect(first.stdout()).toMatch(/"msg":"shutting down"/);
    expect(first.stdout()).toMatch(/"msg":"stopped"/);
    await expect(fetch(`${first.url}/healthz`)).rejects.toThrow();
    agent.destroy();

    const second = await startServerProcess(env);
    const kids2 = ((await (await fetch(`${second.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map(
      (k) => k.kid,
    );
    expect(kids2.sort()).toEqual(kids1.sort());
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    // Two full start-ups of a server process: on a busy two-core machine each can take ~15 s.
  }, 60_000);

  test('logs carry request ids and never the query string, tokens or secrets', async () => {
    const server = await startServerProcess(base());
    await fetch(`${server.url}/authorize?client_id=demo-app&code_verifier=SECRETVERIFIER&state=STATEVALUE`);
    await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from('demo-fhir-server:WRONGSECRET').toString('base64')}`,
      },
      body: 'grant_type=client_credentials&client_secret=PLAINSECRET',
    });
    server.proc.kill('SIGTERM');
    await server.exited;
    const log = server.stdout();
    expect(log).toMatch(/"requestId":"[0-9a-f-]{36}"/);
    expect(log).toMatch(/"path":"\/authorize"/);
    for (const secret of ['SECRETVERIFIER', 'STATEVALUE', 'WRONGSECRET', 'PLAINSECRET', 'demo-fhir-server-secret', 'Basic '])
      expect(log).not.toContain(secret);
  });

  test('serves HTTPS itself with a certificate, TLS 1.2 at least', async () => {
    const { certFile: cert, keyFile: key } = selfSignedCertificate('localhost');
    const server = await startServerProcess(
      { ...base(), AUTHZ_TLS_CERT: cert, AUTHZ_TLS_KEY: key, AUTHZ_ISSUER: 'https://localhost:3443' },
      { https: true },
    );
    try {
      expect(await getStatus(`${server.url}/healthz`)).toBe(200);
      expect(server.stdout()).toMatch(/"tls":true/);
      await expect(getStatus(`${server.url}/healthz`, { maxVersion: 'TLSv1.1' })).rejects.toThrow();
    } finally {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
  });

  test('a trail written by an earlier version stops start-up with one line naming the migration', async () => {
    const env = base();
    const redis = new Redis(process.env.REDIS_URL!);
    // An entry at a Redis-assigned stream id, as the earlier layout wrote them.
    await redis.xadd(
      `${env.AUTHZ_REDIS_PREFIX}{audit}:main:stream`,
      '*',
      'seq',
      '1',
      'prev',
      '0'.repeat(64),
      'hash',
      'h',
      'id',
      'x',
      'event',
      '{}',
    );
    redis.disconnect();
    const server = await startServerProcess(env, { waitReady: false });
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split('\n')).toEqual([expect.stringMatching(/earlier version .* run `smart-authz audit migrate` once$/)]);
  });

  test('a TLS file that cannot be read is one clear line', async () => {
    const server = await startServerProcess(
      { ...base(), AUTHZ_TLS_CERT: '/nonexistent/cert.pem', AUTHZ_TLS_KEY: '/nonexistent/key.pem' },
      { waitReady: false },
    );
    expect(await server.exited).toBe(1);
    expect(server.stderr().trim().split('\n')).toHaveLength(1);
    expect(server.stderr().trim()).toMatch(/^config error: AUTHZ_TLS_CERT file \/nonexistent\/cert.pem cannot be read \(ENOENT\)$/);
  });
});
