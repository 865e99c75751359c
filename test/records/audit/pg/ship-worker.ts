/*
 * A shipper in a process of its own, so that a test can SIGKILL it mid-batch (intake.test.ts).
 * Configured by the environment: REDIS_URL, AUTHZ_REDIS_PREFIX, AUTHZ_AUDIT_DATABASE_URL,
 * AUTHZ_AUDIT_CHAINS; SHIP_TRIM_MS sets the trim delay and interval.
 */
import { loadConfig } from '../../../../src/platform/config/load.js';
import { connectRedis, createRedis } from '../../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../../src/platform/redis/keyspace.js';
import { AuditStore } from '../../../../src/records/audit/store.js';
import { CheckpointStore, keyStoreCheckpointKeys } from '../../../../src/records/audit/checkpoints.js';
import { PgAuditStore } from '../../../../src/records/audit/pg/store.js';
import { pgHome } from '../../../../src/records/audit/pg/home.js';
import { AuditShipper } from '../../../../src/records/audit/shipper.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const redis = createRedis(config.redis);
  redis.on('error', () => {});
  await connectRedis(redis);
  const keyspace = new Keyspace(config.redis.prefix);
  const pg = new PgAuditStore(config.audit.databaseUrl!);
  const keys = keyStoreCheckpointKeys(redis, keyspace, undefined);
  const trimMs = Number(process.env.SHIP_TRIM_MS ?? 300);
  const shipper = new AuditShipper({
    redis,
    keyspace,
    store: new AuditStore(redis, keyspace, config.audit.chains, pgHome(pg)),
    pg,
    checkpoints: new CheckpointStore(redis, keyspace, keys, config.issuer),
    logger: createLogger(process.env.SHIP_LOG ?? 'silent'),
    options: { trimDelayMs: trimMs, trimEveryMs: trimMs, idleMs: 20, leaseMs: 1500, retryMs: 200 },
  });
  shipper.start();
  process.stdout.write('shipping\n');
}

void main();
