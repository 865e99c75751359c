import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import supertest from 'supertest';
import type Provider from 'oidc-provider';
import { loadConfig } from '../../src/platform/config/load.js';
import type { Config } from '../../src/platform/config/schema.js';
import { createLogger, type Logger } from '../../src/platform/ops/logger.js';
import { Metrics } from '../../src/platform/ops/metrics.js';
import { connectRedis, createRedis, type RedisClient } from '../../src/platform/redis/connection.js';
import { Keyspace } from '../../src/platform/redis/keyspace.js';
import { KeyStore } from '../../src/platform/keys/keystore.js';
import { buildApp } from '../../src/app/app.js';
import { resolveCookieKeys } from '../../src/platform/keys/cookie-keys.js';
import { clientRegistryFor } from '../../src/oauth/clients/wiring.js';
import type { ClientRegistry } from '../../src/oauth/clients/registry.js';

export interface TestApp {
  config: Config;
  app: Provider;
  redis: RedisClient;
  keyspace: Keyspace;
  keystore: KeyStore;
  registry: ClientRegistry;
  metrics: Metrics;
  request: ReturnType<typeof supertest>;
  close(): Promise<void>;
}

/**
 * A fully assembled app on the suite's real Redis, isolated by its own key prefix. Pass `prefix`
 * to build a second "instance" sharing the first one's data, `logger` to capture its log lines.
 */
export async function createTestApp(
  env: Record<string, string> = {},
  opts: { prefix?: string; redisUrl?: string; logger?: Logger } = {},
): Promise<TestApp> {
  const prefix = opts.prefix ?? `t-${randomUUID().slice(0, 8)}:`;
  const config = loadConfig({
    REDIS_URL: opts.redisUrl ?? process.env.REDIS_URL!,
    AUTHZ_REDIS_PREFIX: prefix,
    AUTHZ_LOG_LEVEL: 'silent',
    AUTHZ_FHIR_SERVERS: 'http://localhost:8080/fhir',
    // Checkpoint anchors go to the OS temp dir, not the checkout's var/ (one file per prefix).
    AUTHZ_AUDIT_ANCHOR_DIR: join(tmpdir(), 'smart-authz-test-anchors'),
    ...env,
  });
  const logger = opts.logger ?? createLogger(config.log.level);
  const redis = createRedis(config.redis);
  redis.on('error', () => {});
  await connectRedis(redis);
  const keyspace = new Keyspace(config.redis.prefix);
  const keystore = new KeyStore(redis, keyspace, { encryptionSecret: config.keyEncryptionSecret });
  await keystore.ensureKeys();
  const metrics = new Metrics({ defaultMetrics: false });
  const cookieKeys = await resolveCookieKeys(config, redis, keyspace);
  const app = buildApp({ config, logger, redis, keyspace, metrics, jwks: await keystore.providerJwks(), cookieKeys });
  const registry = clientRegistryFor(app, redis, keyspace);
  return {
    config,
    app,
    redis,
    keyspace,
    keystore,
    registry,
    metrics,
    request: supertest(app.callback()),
    async close() {
      redis.disconnect();
    },
  };
}
