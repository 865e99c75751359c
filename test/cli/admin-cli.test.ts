import { randomUUID } from 'node:crypto';
import { cliLines as cli } from '../support/cli.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

let t: TestApp;
const env = {
  REDIS_URL: process.env.REDIS_URL!,
  AUTHZ_REDIS_PREFIX: `cli-${randomUUID().slice(0, 8)}:`,
  AUTHZ_LOG_LEVEL: 'silent',
  AUTHZ_FHIR_SERVERS: 'http://localhost:8080/fhir',
};
const saved = { ...process.env };

beforeAll(async () => {
  Object.assign(process.env, env);
  t = await createTestApp({}, { prefix: env.AUTHZ_REDIS_PREFIX });
});
afterAll(async () => {
  process.env = saved;
  await t.close();
});

describe('admin CLI', () => {
  test('keys: list, introduce, promote, remove (guarded), as the running app sees them', async () => {
    const before = (await t.keystore.list()).keys;
    expect((await cli('keys', 'list')).join('\n')).toContain(before[0]!.kid);

    const introduced = (await cli('keys', 'introduce', 'EC'))[0]!;
    const kid = /introduced (\S+)/.exec(introduced)![1]!;
    expect((await t.keystore.list()).keys.find((k) => k.kid === kid)?.status).toBe('next');

    const promoted = await cli('keys', 'promote', kid);
    expect(promoted[0]).toMatch(new RegExp(`${kid} is current; retired: \\S+`));
    const retiredKid = /retired: (\S+)/.exec(promoted[0]!)![1]!;

    await expect(cli('keys', 'remove', retiredKid)).rejects.toThrow(/retired less than \d+ s ago/);
    expect(await cli('keys', 'remove', retiredKid, '--force')).toEqual([`removed ${retiredKid}`]);
    expect((await t.keystore.list()).keys.map((k) => k.kid)).not.toContain(retiredKid);
  });

  test('registration token: a working initial access token, bound to the kinds it names', async () => {
    const [token] = await cli('registration', 'token', '--expires-in', '600', '--kinds', 'resource_server', '--scopes', '');
    const res = await t.request.post('/register').set('Authorization', `Bearer ${token}`).send({ smart_client_kind: 'resource_server' });
    expect(res.status).toBe(201);
    const [appToken] = await cli('registration', 'token');
    const refused = await t.request
      .post('/register')
      .set('Authorization', `Bearer ${appToken}`)
      .send({ smart_client_kind: 'resource_server' });
    expect(refused.status).toBe(400);
    expect(refused.body.error_description).toMatch(/smart_client_kind 'resource_server' is not allowed/);
    await expect(cli('registration', 'token', '--expires-in', 'soon')).rejects.toThrow(/positive number of seconds/);
  });

  test('demo assertion: signs for demo-backend in development mode', async () => {
    const { seedDemoData } = await import('../../src/app/demo-seed.js');
    const { createLogger } = await import('../../src/platform/ops/logger.js');
    await seedDemoData({
      config: t.config,
      registry: t.registry,
      redis: t.redis,
      keyspace: t.keyspace,
      logger: createLogger('silent'),
    } as never);
    const [assertion] = await cli('demo', 'assertion');
    const res = await t.request.post('/token').type('form').send({
      grant_type: 'client_credentials',
      scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    expect(res.status).toBe(200);
  });

  test('config check and usage', async () => {
    expect(await cli('config', 'check')).toContain('configuration is valid');
    expect((await cli('help')).join('\n')).toMatch(/Usage: smart-authz/);
  });
});

describe('admin CLI: key ids that look like options', () => {
  test('a kid starting with "-" is taken as a key id, not an option', async () => {
    await expect(cli('keys', 'promote', '-notAKidButLooksLikeOne')).rejects.toThrow(/-notAKidButLooksLikeOne/);
  });
});

describe('on a store no server has started on', () => {
  test('clients add works: the CLI makes the signing keys the first start would make', async () => {
    const fresh = `cli-fresh-${randomUUID().slice(0, 8)}:`;
    const before = process.env.AUTHZ_REDIS_PREFIX;
    process.env.AUTHZ_REDIS_PREFIX = fresh;
    try {
      const lines = await cli(
        'clients',
        'add',
        '--kind',
        'confidential_symmetric',
        '--id',
        'first-app',
        '--redirect-uri',
        'https://app.example.org/cb',
        '--scopes',
        'openid patient/*.rs',
      );
      expect(lines.join('\n')).toMatch(/first-app/);
      expect((await cli('keys', 'list')).length).toBeGreaterThan(0);
    } finally {
      process.env.AUTHZ_REDIS_PREFIX = before;
    }
  });
});
