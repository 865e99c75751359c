import type { Logger } from 'pino';
import type { Config } from '../platform/config/schema.js';
import { connectRedis, createRedis, type RedisClient } from '../platform/redis/connection.js';
import { Keyspace } from '../platform/redis/keyspace.js';
import { ensureDevRedis, type DevRedis } from '../platform/redis/dev-redis.js';
import { KeyStore } from '../platform/keys/keystore.js';

/** What the server and the admin CLI both need: a connected Redis, the keyspace and the keys. */
export interface Runtime {
  config: Config;
  logger: Logger;
  redis: RedisClient;
  keyspace: Keyspace;
  keystore: KeyStore;
  close(): Promise<void>;
}

/** Where we tried to connect, without credentials. */
function describeRedis(settings: Config['redis']): string {
  if (settings.clusterNodes) return `cluster ${settings.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (settings.sentinels) return `sentinels ${settings.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const url = new URL(settings.url ?? 'redis://127.0.0.1:6379');
  url.username = '';
  url.password = '';
  return url.toString();
}

export class StartupError extends Error {
  override name = 'StartupError';
}

export async function openRuntime(config: Config, logger: Logger): Promise<Runtime> {
  let redisSettings = config.redis;
  let devRedis: DevRedis | undefined;
  const singleUrl = !config.redis.sentinels && !config.redis.clusterNodes;
  if (config.mode === 'development' && config.devRedis && singleUrl) {
    devRedis = await ensureDevRedis({ url: config.redis.url ?? 'redis://127.0.0.1:6379', dataDir: config.dataDir, logger });
    if (devRedis) redisSettings = { ...config.redis, url: devRedis.url };
  }
  const redis = createRedis(redisSettings);
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError = err;
    logger.warn({ err: { message: err.message } }, 'redis connection problem');
  });
  try {
    await connectRedis(redis);
  } catch (err) {
    redis.disconnect();
    await devRedis?.stop();
    throw new StartupError(`cannot connect to Redis at ${describeRedis(redisSettings)}: ${(lastError ?? (err as Error)).message}`);
  }
  const keyspace = new Keyspace(config.redis.prefix);
  const keystore = new KeyStore(redis, keyspace, { encryptionSecret: config.keyEncryptionSecret });
  return {
    config,
    logger,
    redis,
    keyspace,
    keystore,
    async close() {
      await redis.quit().catch(() => undefined);
      // QUIT closes the connection to Redis but not, with Sentinel, the failover detector's
      // subscriptions to the sentinels: without this a CLI command never exits.
      redis.disconnect();
      await devRedis?.stop();
    },
  };
}
