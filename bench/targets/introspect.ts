// Benchmark targets, run as a child process so the load generator does not share its event loop:
// a bare Koa endpoint doing one Redis GET (the baseline) and the real app's /introspect, with and
// without introspection auditing.
import Koa from 'koa';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/platform/config/load.js';
import { createLogger } from '../../src/platform/ops/logger.js';
import { Metrics } from '../../src/platform/ops/metrics.js';
import { connectRedis, createRedis } from '../../src/platform/redis/connection.js';
import { Keyspace } from '../../src/platform/redis/keyspace.js';
import { KeyStore } from '../../src/platform/keys/keystore.js';
import { buildApp } from '../../src/app/app.js';
import { clientRegistryFor } from '../../src/oauth/clients/wiring.js';
import { removePrefix } from '../lib/target-ipc.js';

// Event validation off, as in production (AUTHZ_AUDIT_VALIDATE_EVENTS defaults to false there).
const config = loadConfig({
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  AUTHZ_REDIS_PREFIX: `bench-${randomUUID().slice(0, 8)}:`,
  AUTHZ_LOG_LEVEL: 'silent',
  AUTHZ_AUDIT_VALIDATE_EVENTS: 'false',
});
const redis = createRedis(config.redis);
await connectRedis(redis);
const keyspace = new Keyspace(config.redis.prefix);
const keystore = new KeyStore(redis, keyspace);
const { jwks } = await keystore.ensureKeys();
const build = (c: typeof config) =>
  buildApp({
    config: c,
    logger: createLogger('silent'),
    redis,
    keyspace,
    metrics: new Metrics({ defaultMetrics: false }),
    jwks,
    cookieKeys: ['bench-cookie-key-000000000000000000000000'],
  });
const app = build(config);
// The same app with introspection auditing switched off (AUTHZ_AUDIT_INTROSPECTION=false), so
// the benchmark can measure what auditing costs in the same run, on the same Redis.
const unaudited = build({ ...config, audit: { ...config.audit, introspection: false } });
const registry = clientRegistryFor(app, redis, keyspace);
await registry.upsert({ client_id: 'bench-rs', smart_client_kind: 'resource_server', client_secret: 'bench-rs-secret' });
await registry.upsert({
  client_id: 'bench-ehr',
  smart_client_kind: 'ehr_launcher',
  client_secret: 'bench-ehr-secret',
  smart_scopes: ['launch'],
});

await redis.set(keyspace.key('bench', 'baseline'), JSON.stringify({ active: true, scope: 'launch' }));
const baseline = new Koa();
// Same HTTP shape as introspection (a form POST whose body is read), then one Redis GET.
baseline.use(async (ctx) => {
  await new Promise<void>((resolve) => {
    ctx.req.on('data', () => {});
    ctx.req.once('end', () => resolve());
  });
  ctx.body = await redis.get(keyspace.key('bench', 'baseline'));
  ctx.type = 'json';
});

const listen = (handler: Parameters<typeof createServer>[1]) =>
  new Promise<number>((resolve) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

const appPort = await listen(app.callback());
const unauditedPort = await listen(unaudited.callback());
const basePort = await listen(baseline.callback());

const tokenRes = await fetch(`http://127.0.0.1:${appPort}/token`, {
  method: 'POST',
  headers: {
    authorization: `Basic ${Buffer.from('bench-ehr:bench-ehr-secret').toString('base64')}`,
    'content-type': 'application/x-www-form-urlencoded',
  },
  body: 'grant_type=client_credentials&scope=launch',
});
const { access_token: token } = (await tokenRes.json()) as { access_token: string };
process.send?.({ appPort, unauditedPort, basePort, token });
// Leave nothing behind in a shared Redis: the audited runs append hundreds of thousands of entries.
const cleanup = () => removePrefix(redis, config.redis.prefix);
process.on('message', (m) => {
  if (m === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpu: user + system });
  }
});
process.on('SIGTERM', () => {
  void cleanup().finally(() => process.exit(0));
});
