import { writeFileSync, mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../src/platform/config/load.js';
import { workerCount } from '../../../src/platform/config/schema.js';

const key = 'k'.repeat(40);

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  test('zero configuration gives a working development setup', () => {
    const c = loadConfig({});
    expect(c.mode).toBe('development');
    expect(c.issuer).toBe('http://localhost:3000');
    expect(c.port).toBe(3000);
    expect(c.fhirServers).toEqual([{ base: 'http://localhost:8080/fhir', accessTokenFormat: 'opaque' }]);
    expect(c.demoData).toBe(true);
    expect(c.ttl.authorizationCode).toBe(60);
  });

  test('environment variables are typed and applied', () => {
    const c = loadConfig({
      AUTHZ_ISSUER: 'https://auth.example.org/',
      PORT: '8443',
      AUTHZ_PROXY: 'true',
      AUTHZ_FHIR_SERVERS: 'https://fhir.example.org/r4/, east=https://east.example.org/fhir',
      AUTHZ_TTL_ACCESS_TOKEN: '600',
      AUTHZ_REDIS_SENTINELS: 's1:26379,s2:26379',
      AUTHZ_REDIS_SENTINEL_NAME: 'authz',
      AUTHZ_FRAME_ANCESTORS: "'self' https://ehr.example.org",
    });
    expect(c.issuer).toBe('https://auth.example.org');
    expect(c.port).toBe(8443);
    expect(c.proxy).toBe(true);
    expect(c.fhirServers.map((s) => [s.tenant, s.base])).toEqual([
      [undefined, 'https://fhir.example.org/r4'],
      ['east', 'https://east.example.org/fhir'],
    ]);
    expect(c.ttl.accessToken).toBe(600);
    expect(c.redis.sentinels).toEqual([
      { host: 's1', port: 26379 },
      { host: 's2', port: 26379 },
    ]);
    expect(c.http.frameAncestors).toEqual(["'self'", 'https://ehr.example.org']);
  });

  test('a JSON config file is read and the environment overrides it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ port: 4000, issuer: 'http://localhost:4000', ttl: { accessToken: 900 } }));
    const c = loadConfig({ AUTHZ_CONFIG: file, PORT: '5000' });
    expect(c.port).toBe(5000);
    expect(c.issuer).toBe('http://localhost:4000');
    expect(c.ttl.accessToken).toBe(900);
    expect(c.ttl.refreshToken).toBe(90 * 24 * 3600);
  });

  test.each([
    [{ PORT: 'abc' }, /PORT must be a whole number/],
    [{ AUTHZ_PORT: '70000' }, /AUTHZ_PORT \(port\)/],
    [{ AUTHZ_ISSUER: 'not a url' }, /AUTHZ_ISSUER \(issuer\) must be an absolute URL/],
    [{ AUTHZ_ISSUER: 'https://auth.example.org/tenant' }, /AUTHZ_ISSUER \(issuer\) must not have a path/],
    [{ AUTHZ_PROXY: 'maybe' }, /AUTHZ_PROXY must be true or false/],
    [{ AUTHZ_FHIR_SERVERS: 'ftp://x.example.org' }, /AUTHZ_FHIR_SERVERS \(fhirServers\.0\.base\) must use http: or https:/],
    [{ AUTHZ_FHIR_SERVERS: 'https://a.example.org,https://a.example.org/' }, /fhirServers\.1\.base\) is listed twice/],
    [{ REDIS_URL: 'http://redis' }, /REDIS_URL \(redis\.url\) must start with redis:\/\//],
    [{ AUTHZ_REDIS_SENTINELS: 'nohostport' }, /AUTHZ_REDIS_SENTINELS must be a comma-separated list of host:port/],
    [{ AUTHZ_COOKIE_KEYS: 'short' }, /AUTHZ_COOKIE_KEYS \(cookieKeys\.0\) each cookie key needs at least 32 characters/],
    [{ AUTHZ_LOG_LEVEL: 'loud' }, /AUTHZ_LOG_LEVEL \(log\.level\)/],
    [{ AUTHZ_CLIENT_AUTH_ALGS: 'RS256' }, /must include RS384 or ES384/],
    [{ AUTHZ_TTL_AUTHORIZATION_CODE: '3600' }, /AUTHZ_TTL_AUTHORIZATION_CODE \(ttl\.authorizationCode\)/],
    [{ AUTHZ_WORKERS: 'two' }, /^config error: AUTHZ_WORKERS must be a whole number, got "two"$/],
    [{ AUTHZ_WORKERS: '0' }, /^config error: AUTHZ_WORKERS \(workers\) must be at least 1$/],
    [{ AUTHZ_WORKERS: '65', AUTHZ_AUDIT_STORE: 'redis' }, /^config error: AUTHZ_WORKERS \(workers\) must be at most 64$/],
    [{ AUTHZ_WORKERS: '2' }, /AUTHZ_WORKERS \(workers\) above 1 in development needs the audit trail named/],
    [{ AUTHZ_CONFIG: '/nonexistent/config.json' }, /AUTHZ_CONFIG file \/nonexistent\/config\.json cannot be read \(ENOENT\)/],
  ])('%j is refused with one line naming the setting', (env, pattern) => {
    expect(errorOf(env as Record<string, string>)).toMatch(pattern);
  });

  test('one server process in development unless AUTHZ_WORKERS says otherwise', () => {
    expect(workerCount(loadConfig({}))).toBe(1);
    expect(workerCount(loadConfig({ AUTHZ_WORKERS: '3', AUTHZ_AUDIT_STORE: 'redis' }))).toBe(3);
    expect(loadConfig({ AUTHZ_WORKERS: '1' }).workers).toBe(1);
  });

  test('a config file that is not JSON is refused clearly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ port: ');
    expect(errorOf({ AUTHZ_CONFIG: file })).toMatch(/is not a JSON object/);
  });

  describe('production mode', () => {
    const base = {
      AUTHZ_MODE: 'production',
      AUTHZ_COOKIE_KEYS: key,
      AUTHZ_PROXY: 'true',
      AUTHZ_ISSUER: 'https://auth.example.org',
      AUTHZ_KEY_ENCRYPTION_SECRET: 's'.repeat(40),
      AUTHZ_AUDIT_ANCHOR_DIR: '/var/lib/smart-authz/anchor',
      AUTHZ_AUDIT_DATABASE_URL: 'postgres://authz@db.example.org/audit',
    };

    test('a complete production configuration is accepted and disables demo data and dev Redis', () => {
      const c = loadConfig({ ...base, AUTHZ_DEMO_DATA: 'true', AUTHZ_DEV_REDIS: 'true' });
      expect(c.mode).toBe('production');
      expect(c.demoData).toBe(false);
      expect(c.devRedis).toBe(false);
    });

    test('the audit trail needs a PostgreSQL in production, unless Redis is chosen on purpose', () => {
      const { AUTHZ_AUDIT_DATABASE_URL: _url, ...rest } = base;
      expect(errorOf(rest)).toMatch(/AUTHZ_AUDIT_DATABASE_URL \(audit\.databaseUrl\) is required in production .*AUTHZ_AUDIT_STORE=redis/);
      expect(loadConfig({ ...rest, AUTHZ_AUDIT_STORE: 'redis' }).audit.store).toBe('redis');
      expect(errorOf({ ...base, AUTHZ_AUDIT_DATABASE_URL: 'mysql://db.example.org/audit' })).toMatch(
        /must be a postgres:\/\/ or postgresql:\/\/ URL/,
      );
      expect(loadConfig(base).audit.databaseUrl).toBe('postgres://authz@db.example.org/audit');
    });

    test('production runs one worker per available core unless AUTHZ_WORKERS says otherwise', () => {
      expect(workerCount(loadConfig(base))).toBe(Math.min(64, availableParallelism()));
      expect(workerCount(loadConfig({ ...base, AUTHZ_WORKERS: '1' }))).toBe(1);
    });

    test('NODE_ENV=production selects production mode', () => {
      expect(errorOf({ NODE_ENV: 'production' })).toMatch(/cookieKeys|issuer/);
    });

    test('refuses an http issuer unless behind a declared proxy', () => {
      expect(errorOf({ ...base, AUTHZ_PROXY: 'false', AUTHZ_ISSUER: 'http://auth.example.org' })).toMatch(
        /AUTHZ_ISSUER \(issuer\) must be https in production unless behind a declared proxy/,
      );
      expect(loadConfig({ ...base, AUTHZ_ISSUER: 'http://auth.internal' }).issuer).toBe('http://auth.internal');
    });

    test('refuses an https issuer with neither TLS files nor a proxy', () => {
      expect(errorOf({ ...base, AUTHZ_PROXY: 'false' })).toMatch(/AUTHZ_TLS_CERT \(tls\) an https issuer needs a TLS certificate/);
      expect(loadConfig({ ...base, AUTHZ_PROXY: 'false', AUTHZ_TLS_CERT: '/c.pem', AUTHZ_TLS_KEY: '/k.pem' }).tls).toEqual({
        certFile: '/c.pem',
        keyFile: '/k.pem',
      });
    });

    test('refuses missing cookie keys', () => {
      const { AUTHZ_COOKIE_KEYS: _omit, ...rest } = base;
      expect(errorOf(rest)).toMatch(/AUTHZ_COOKIE_KEYS \(cookieKeys\) is required in production/);
    });

    test('refuses signing keys stored unencrypted', () => {
      const { AUTHZ_KEY_ENCRYPTION_SECRET: _omit, ...rest } = base;
      expect(errorOf(rest)).toMatch(/AUTHZ_KEY_ENCRYPTION_SECRET \(keyEncryptionSecret\) is required in production/);
    });
  });
});
