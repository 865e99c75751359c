import supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

describe('operations endpoints and HTTP hygiene', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ AUTHZ_BODY_LIMIT: '1kb' });
  });
  afterAll(() => t.close());

  test('/healthz and /readyz', async () => {
    expect((await t.request.get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await t.request.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', redis: 'ok' });
  });

  test('/metrics exposes request, token and error counters', async () => {
    await t.request.post('/token').type('form').send({ grant_type: 'client_credentials', client_id: 'nobody' });
    const res = await t.request.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/http_requests_total\{method="POST",route="token",status="401"\} 1/);
    expect(res.text).toMatch(/http_request_duration_seconds_bucket\{le="[0-9.]+",method="GET",route="\/healthz"\}/);
    expect(res.text).toMatch(/oauth_errors_total\{route="token",error="invalid_client"\} 1/);
    expect(res.text).toContain('# TYPE oauth_tokens_issued_total counter');
  });

  test('security headers on every response', async () => {
    for (const path of ['/healthz', '/.well-known/openid-configuration', '/no-such-page']) {
      const res = await t.request.get(path);
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test('HSTS only over https (behind a declared proxy)', async () => {
    const proxied = await createTestApp({ AUTHZ_PROXY: 'true' });
    try {
      const res = await proxied.request.get('/healthz').set('X-Forwarded-Proto', 'https');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=31536000/);
      expect((await proxied.request.get('/healthz')).headers['strict-transport-security']).toBeUndefined();
    } finally {
      await proxied.close();
    }
  });

  test('unknown routes: JSON 404 for programs, an HTML page for browsers, never a hang', async () => {
    const api = await t.request.get('/nope').set('Accept', 'application/json');
    expect(api.status).toBe(404);
    expect(api.body.error).toBe('not_found');
    const page = await t.request.get('/nope').set('Accept', 'text/html');
    expect(page.status).toBe(404);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('Page not found');
    expect(page.text).not.toMatch(/at .*\.ts:\d+/);
  });

  test('error pages escape what the request put in them', async () => {
    const res = await t.request
      .get('/authorize')
      .query({ client_id: '<script>alert(1)</script>', response_type: 'code' })
      .set('Accept', 'text/html');
    expect(res.status).toBe(400);
    expect(res.text).not.toContain('<script>alert(1)</script>');
    expect(res.text).not.toMatch(/node_modules|at Object\./);
  });

  test('bodies over the configured limit are refused with 413', async () => {
    const res = await t.request
      .post('/token')
      .type('form')
      .send({ grant_type: 'client_credentials', pad: 'x'.repeat(4096) });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('request_too_large');
  });
});

describe('Redis outage', () => {
  let redis: RedisServerHandle;
  let t: TestApp;
  beforeAll(async () => {
    redis = await startRedisServer();
    t = await createTestApp({}, { redisUrl: redis.url });
  });
  afterAll(async () => {
    await t.close();
    await redis.stop();
  });

  test('answers 503 while Redis is down and recovers when it returns', async () => {
    const request = supertest(t.app.callback());
    expect((await request.get('/.well-known/openid-configuration')).status).toBe(200);
    await redis.stop();
    await new Promise((r) => setTimeout(r, 200));

    const started = Date.now();
    const token = await request.post('/token').type('form').send({ grant_type: 'client_credentials', client_id: 'x', client_secret: 'y' });
    expect(token.status).toBe(503);
    expect(token.body.error).toBe('temporarily_unavailable');
    expect(token.headers['retry-after']).toBe('5');
    expect(Date.now() - started).toBeLessThan(3000);
    const ready = await request.get('/readyz');
    expect(ready.status).toBe(503);
    expect((await request.get('/healthz')).status).toBe(200);
    const page = await request.get('/interaction/abc').set('Accept', 'text/html');
    expect(page.status).toBe(503);
    expect(page.headers['content-type']).toMatch(/text\/html/);

    await redis.restart();
    const deadline = Date.now() + 10_000;
    while ((await request.get('/readyz')).status !== 200) {
      if (Date.now() > deadline) throw new Error('did not recover');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(
      (await request.post('/token').type('form').send({ grant_type: 'client_credentials', client_id: 'x', client_secret: 'y' })).status,
    ).toBe(401);
  });
});
