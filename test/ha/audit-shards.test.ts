import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startRedisCluster, clusterToolsAvailable, type RedisClusterHandle } from '../support/redis-cluster.js';
import { sampleEvent } from '../records/audit/support.js';
import { loadConfig } from '../../src/platform/config/load.js';
import type { Config } from '../../src/platform/config/schema.js';
import { connectRedis, createRedis, type RedisClient } from '../../src/platform/redis/connection.js';
import { Keyspace } from '../../src/platform/redis/keyspace.js';
import { KeyStore } from '../../src/platform/keys/keystore.js';
import { circuitBreakerFor, StoreUnavailableError } from '../../src/platform/redis/circuit-breaker.js';
import { createAuditTrail } from '../../src/records/audit/trail.js';
import { AuditStore } from '../../src/records/audit/store.js';
import { keyStoreCheckpointKeys, type CheckpointKeys } from '../../src/records/audit/checkpoints.js';
import { verifyChain, verifyPolicy } from '../../src/records/audit/verify.js';
import { createLogger } from '../../src/platform/ops/logger.js';

/*
 * The audit trail spread over six chains in a 6-node Cluster (3 masters), under 12 concurrent
 * writers, while the master of the `{audit}` slot (chain `main`) is SIGKILLed. With one chain,
 * every audited request waited out the failover with 503s; with several, appends move to chains on
 * the live masters within a moment, the per-master circuit breaker refuses only commands for the
 * dead master, and afterwards every acknowledged event is in the trail exactly once and every chain
 * verifies.
 */

const haveTools = clusterToolsAvailable();
const describeCluster = haveTools ? describe : describe.skip;

const WRITERS = 12;
const BEFORE_MS = 1_500;
const AFTER_MS = 5_000;

let cluster: RedisClusterHandle;
let config: Config;
let redis: RedisClient;
let keyspace: Keyspace;
let keys: CheckpointKeys;
let trail: ReturnType<typeof createAuditTrail>;

beforeAll(async () => {
  if (!haveTools) return;
  cluster = await startRedisCluster();
  config = loadConfig({
    REDIS_URL: '',
    AUTHZ_REDIS_CLUSTER_NODES: cluster.nodesEnv,
    AUTHZ_REDIS_PREFIX: `shards-${randomUUID().slice(0, 6)}:`,
    AUTHZ_AUDIT_CHAINS: '6',
    AUTHZ_AUDIT_ANCHOR_DIR: mkdtempSync(join(tmpdir(), 'audit-anchor-')),
    AUTHZ_LOG_LEVEL: 'silent',
  });
  redis = createRedis(config.redis);
  redis.on('error', () => {});
  await connectRedis(redis);
  // The server's breaker, as main.ts installs it.
  circuitBreakerFor(redis, { commandTimeoutMs: config.http.redisCommandTimeoutMs }).available();
  keyspace = new Keyspace(config.redis.prefix);
  await new KeyStore(redis, keyspace).ensureKeys();
  keys = keyStoreCheckpointKeys(redis, keyspace, undefined);
  trail = createAuditTrail({ config, redis, keyspace, logger: createLogger('silent'), checkpointKeys: keys });
  await trail.settled();
}, 60_000);

afterAll(async () => {
  await trail?.close().catch(() => {});
  redis?.disconnect();
  await cluster?.stop();
});

interface Outcome {
  id: string;
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

describeCluster('audit trail over several chains in a Cluster, a master killed', () => {
  test('appends move to the live masters at once; nothing acknowledged is lost or doubled; every chain verifies', async () => {
    const started = Date.now();
    const outcomes: Outcome[] = [];
    let killedAt = 0;
    let stop = false;
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const id = randomUUID();
        const start = Date.now();
        try {
          await trail.record({ ...sampleEvent({ patient: `w${w}-${i % 5}` }), id });
          outcomes.push({ id, start, end: Date.now(), ok: true });
        } catch (err) {
          outcomes.push({ id, start, end: Date.now(), ok: false, error: (err as Error).message });
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });

    await new Promise((r) => setTimeout(r, BEFORE_MS));
    const dead = await cluster.masterOf(keyspace.auditHead('main'));
    // A key the dead master serves, and one a live master serves (probed by slot owner).
    let liveKey = '';
    let deadKey = '';
    for (let i = 0; !liveKey || !deadKey; i++) {
      const k = `${config.redis.prefix}probe:${i}`;
      const owner = await cluster.masterOf(k);
      if (owner === dead) deadKey ||= k;
      else liveKey ||= k;
    }
    await cluster.kill(dead);
    killedAt = Date.now();

    // While the Cluster fails over: keys on live masters answer; keys on the dead one fail fast.
    await new Promise((r) => setTimeout(r, 300));
    expect(await redis.set(liveKey, 'x')).toBe('OK');
    const t0 = Date.now();
    const deadErr = await redis.set(deadKey, 'x').then(
      () => undefined,
      (err: unknown) => err,
    );
    const deadMs = Date.now() - t0;

    await new Promise((r) => setTimeout(r, AFTER_MS));
    stop = true;
    await Promise.all(writers);
    await cluster.waitUntilOk();

    // The failover may already be over by the time of the dead-key probe; if not, it failed fast.
    if (deadErr !== undefined) {
      expect(
        deadErr instanceof StoreUnavailableError ||
          /Connection is closed|CLUSTERDOWN|Command timed out|ECONNREFUSED/.test((deadErr as Error).message),
      ).toBe(true);
      expect(deadMs).toBeLessThan(config.http.redisCommandTimeoutMs + 200);
    }

    const acknowledged = outcomes.filter((o) => o.ok);
    const failed = outcomes.filter((o) => !o.ok);
    // From 250 ms after the kill on, appends go through: the chains on live masters take them.
    const window = outcomes.filter((o) => o.start >= killedAt + 250 && o.start <= killedAt + 2_500);
    const windowOk = window.filter((o) => o.ok).length;
    const slowest = Math.max(...acknowledged.filter((o) => o.start >= killedAt + 250).map((o) => o.end - o.start));
    console.log(
      `audit shards under a master kill: ${outcomes.length} appends in ${Date.now() - started} ms, ${failed.length} refused ` +
        `(${[...new Set(failed.map((f) => f.error))].join('; ')}); from kill+250 ms to kill+2.5 s ${windowOk}/${window.length} acknowledged, slowest ${slowest} ms`,
    );
    expect(acknowledged.length).toBeGreaterThan(200);
    expect(windowOk).toBeGreaterThan(0.95 * window.length);
    expect(failed.length).toBeLessThan(0.05 * outcomes.length);
    expect(slowest).toBeLessThan(1_500);

    // Every acknowledged event is in the trail, once.
    const store = new AuditStore(redis, keyspace, 6);
    const found = new Map<string, number>();
    for (const chain of await store.shards()) for await (const e of store.walk(chain)) found.set(e.id, (found.get(e.id) ?? 0) + 1);
    expect(acknowledged.filter((o) => found.get(o.id) !== 1).map((o) => o.id)).toEqual([]);
    expect([...found.values()].filter((n) => n > 1)).toEqual([]);
    for (const chain of await store.chains()) {
      const report = await verifyChain(store, keys, chain, verifyPolicy(config));
      expect({ chain, problem: report.problem }).toEqual({ chain, problem: undefined });
    }
  }, 90_000);
});
