import { createTestApp, type TestApp } from '../support/test-app.js';
import { loadConfig } from '../../src/platform/config/load.js';
import { metricsAccessFor } from '../../src/platform/http/health.js';

// /metrics names routes, clients' error rates and token volumes: production must not serve it to
// whoever asks. Before this change it was open in every mode.
describe('/metrics access', () => {
  const TOKEN = 'metrics-scraper-token-0123456789abcdef';
  let guarded: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    guarded = await createTestApp({ AUTHZ_METRICS_TOKEN: TOKEN });
    off = await createTestApp({ AUTHZ_METRICS_OPEN: 'false' });
  });
  afterAll(async () => {
    await guarded.close();
    await off.close();
  });

  test('with a token, a scrape without it or with another one is refused', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer ${TOKEN.slice(0, -1)}`]) {
      const req = guarded.request.get('/metrics');
      const res = await (authorization ? req.set('Authorization', authorization) : req);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(res.text).not.toContain('http_requests_total');
    }
  });

  test('with a token, the scraper that sends it reads the metrics', async () => {
    const res = await guarded.request.get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.text).toContain('http_requests_total');
  });

  test('off: /metrics answers 404 and says how to turn it on', async () => {
    const res = await off.request.get('/metrics');
    expect(res.status).toBe(404);
    expect(res.body.error_description).toContain('AUTHZ_METRICS_TOKEN');
    expect(res.text).not.toContain('http_requests_total');
  });

  test('production without a token or an explicit open setting serves no metrics', () => {
    const base = {
      AUTHZ_MODE: 'production',
      AUTHZ_ISSUER: 'https://authz.example.org',
      AUTHZ_PROXY: 'true',
      AUTHZ_COOKIE_KEYS: 'k'.repeat(32),
      AUTHZ_KEY_ENCRYPTION_SECRET: 's'.repeat(40),
      AUTHZ_AUDIT_ANCHOR_DIR: '/var/lib/smart-authz/anchor',
      AUTHZ_AUDIT_DATABASE_URL: 'postgres://authz@db.example.org/audit',
    };
    expect(metricsAccessFor(loadConfig(base).metrics, 'production')).toEqual({ open: false });
    expect(metricsAccessFor(loadConfig({ ...base, AUTHZ_METRICS_OPEN: 'true' }).metrics, 'production')).toEqual({ open: true });
    expect(metricsAccessFor(loadConfig({ ...base, AUTHZ_METRICS_TOKEN: TOKEN }).metrics, 'production')).toEqual({ token: TOKEN });
    expect(metricsAccessFor(loadConfig({}).metrics, 'development')).toEqual({ open: true });
  });

  test('a short token is a configuration error', () => {
    expect(() => loadConfig({ AUTHZ_METRICS_TOKEN: 'short' })).toThrow(/AUTHZ_METRICS_TOKEN.*32/);
  });
});
