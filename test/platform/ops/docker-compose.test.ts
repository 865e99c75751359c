import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// Docker is usually absent where the suite runs, so the files are checked structurally; when a
// docker CLI with the compose plugin exists, compose itself validates the file as well.

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Healthcheck {
  test?: string[] | string;
}
interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  profiles?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition?: string }>;
  ports?: string[];
  healthcheck?: Healthcheck;
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8')) as ComposeFile;
const dockerfile = readFileSync(`${root}Dockerfile`, 'utf8');
const words = (v: string[] | string | undefined) => (Array.isArray(v) ? v : (v ?? '').split(/\s+/));

describe('docker-compose.yml', () => {
  test('defines redis, postgres and authz by default; the rest only in the ha profile', () => {
    const byDefault = Object.entries(compose.services).filter(([, s]) => !s.profiles);
    expect(byDefault.map(([name]) => name).sort()).toEqual(['authz', 'postgres', 'redis']);
    for (const [name, s] of Object.entries(compose.services))
      if (s.profiles) expect({ name, profiles: s.profiles }).toEqual({ name, profiles: ['ha'] });
  });

  test('ha profile: a master, a replica and three sentinels that refuse writes without a replica, and the server waiting for one', () => {
    const nodes = ['redis-ha-1', 'redis-ha-2'].map((n) => words(compose.services[n]?.command));
    for (const command of nodes) {
      const arg = (flag: string) => command[command.indexOf(flag) + 1];
      expect([arg('--appendonly'), arg('--appendfsync'), arg('--min-replicas-to-write'), arg('--min-replicas-max-lag')]).toEqual([
        'yes',
        'everysec',
        '1',
        '10',
      ]);
    }
    expect(nodes[1]!.join(' ')).toContain('--replicaof redis-ha-1 6379');
    for (const n of ['sentinel-1', 'sentinel-2', 'sentinel-3'])
      expect(words(compose.services[n]?.entrypoint).join(' ')).toMatch(/sentinel monitor authz redis-ha-1 6379 2[\s\S]*--sentinel/);
    expect(compose.services['authz-ha']?.environment).toMatchObject({
      AUTHZ_REDIS_SENTINELS: 'sentinel-1:26379,sentinel-2:26379,sentinel-3:26379',
      AUTHZ_REDIS_SENTINEL_NAME: 'authz',
      AUTHZ_REDIS_MIN_REPLICAS: '1',
    });
    expect(compose.services['authz-ha']?.environment).not.toHaveProperty('REDIS_URL');
  });

  test('redis persists with AOF on a named volume and has a ping healthcheck', () => {
    const redis = compose.services.redis!;
    expect(redis.image).toMatch(/^redis:7/);
    const command = words(redis.command);
    expect(command[command.indexOf('--appendonly') + 1]).toBe('yes');
    const volume = redis.volumes?.find((v) => v.endsWith(':/data'));
    expect(volume).toBeDefined();
    expect(compose.volumes).toHaveProperty(volume!.split(':')[0]!);
    expect(words(redis.healthcheck?.test)).toEqual(expect.arrayContaining(['redis-cli', 'ping']));
  });

  test('postgres keeps the audit trail on a named volume, with an owner and an append-only application role', () => {
    const postgres = compose.services.postgres!;
    expect(postgres.image).toMatch(/^postgres:1[5-9]/);
    expect(postgres.environment).toMatchObject({ POSTGRES_USER: 'authz_owner', POSTGRES_DB: 'audit' });
    expect(postgres.volumes?.some((v) => v.endsWith(':/var/lib/postgresql/data'))).toBe(true);
    expect(postgres.volumes?.some((v) => v.startsWith('./deploy/postgres/create-roles.sh:/docker-entrypoint-initdb.d/'))).toBe(true);
    expect(words(postgres.healthcheck?.test)).toEqual(expect.arrayContaining(['pg_isready']));
    const authz = compose.services.authz!;
    expect(authz.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(authz.environment?.AUTHZ_AUDIT_DATABASE_URL).toMatch(/^postgres:\/\/authz_app:.*@postgres:5432\/audit$/);
    expect(authz.environment?.AUTHZ_AUDIT_DATABASE_OWNER_URL).toMatch(/^postgres:\/\/authz_owner:.*@postgres:5432\/audit$/);
    expect(compose.services['authz-ha']?.environment?.AUTHZ_AUDIT_DATABASE_URL).toMatch(/\/audit_ha$/);
  });

  test('authz is built here, waits for a healthy redis and checks /healthz', () => {
    const authz = compose.services.authz!;
    expect(authz.build).toBe('.');
    expect(authz.depends_on?.redis?.condition).toBe('service_healthy');
    expect(authz.environment).toMatchObject({ REDIS_URL: 'redis://redis:6379', AUTHZ_DEV_REDIS: 'false' });
    expect(authz.environment?.AUTHZ_MODE).toBe('${AUTHZ_MODE:-development}');
    expect(authz.environment?.AUTHZ_ISSUER).toBe('${AUTHZ_ISSUER:-http://localhost:3000}');
    expect(authz.ports).toContain('3000:3000');
    expect(words(authz.healthcheck?.test).join(' ')).toContain('/healthz');
  });

  test('compose accepts the file when docker compose is installed', () => {
    const probe = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    if (probe.status !== 0) return; // no docker CLI or no compose plugin here
    const check = spawnSync('docker', ['compose', '-f', `${root}docker-compose.yml`, 'config', '-q'], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('Dockerfile', () => {
  test('runs on Node 22 as the unprivileged node user with a /healthz healthcheck', () => {
    expect(dockerfile).toMatch(/^FROM node:22[-.\w]*\s*$/m);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev\b/m);
    expect(dockerfile).toMatch(/^USER node\s*$/m);
    expect(dockerfile).toMatch(/^EXPOSE 3000\s*$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
    expect(dockerfile).toMatch(/^CMD \["node", "--import", "tsx", "src\/main\.ts"\]\s*$/m);
  });

  test('the start command matches npm start', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
      scripts: Record<string, string>;
      dependencies: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe('node --import tsx src/main.ts');
    // --omit=dev drops devDependencies, so tsx must be a runtime dependency.
    expect(pkg.dependencies).toHaveProperty('tsx');
  });

  test('.dockerignore keeps local state and secrets out of the image', () => {
    const ignored = readFileSync(`${root}.dockerignore`, 'utf8')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'var', '.git', '.env', 'coverage', 'artifacts']));
  });
});
