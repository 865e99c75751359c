import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { startSentinelGroup, type SentinelGroup } from '../support/redis-sentinel.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { introspect, registerResourceServer, RS } from '../support/fixtures.js';
import { readTrail } from '../records/audit/trail-reader.js';
import { localCode, tokenIdentifiers } from '../records/audit/events-support.js';
import { AuditStore } from '../../src/records/audit/store.js';
import { keyStoreCheckpointKeys } from '../../src/records/audit/checkpoints.js';
import { verifyChain, verifyPolicy } from '../../src/records/audit/verify.js';
import { anchorDirOf, readAnchor } from '../../src/records/audit/anchor.js';

/*
 * A planned Sentinel failover (`SENTINEL FAILOVER`) in the middle of bounded token load. Between
 * +switch-master and the old master's demotion the old master still accepts writes, and it drops
 * them when it resyncs from the new one: a server that keeps writing there hands out tokens that
 * are gone a few seconds later. With AUTHZ_REDIS_MIN_REPLICAS=1 every request that wrote waits
 * for a replica's acknowledgement (WAIT) before it answers, so what was answered with 200 is on
 * the node that becomes master; what could not be acknowledged is answered 503.
 */

const TOKEN_URL = 'http://localhost:3000/token';
const WORKERS = 16;
/**
 * Load before the failover; after the sentinels report the new master, until requests succeed
 * again (at most RECOVERY_MS: the old master is demoted ~10 s later), then AFTER_MS more.
 */
const BEFORE_MS = 4_000;
const RECOVERY_MS = 30_000;
const AFTER_MS = 2_000;

let group: SentinelGroup;
let t: TestApp;
let key: BackendKey;

beforeAll(async () => {
  group = await startSentinelGroup();
  // No REDIS_URL: the app finds the master through the sentinels.
  t = await createTestApp(
    {
      AUTHZ_REDIS_SENTINELS: group.sentinels,
      AUTHZ_REDIS_SENTINEL_NAME: group.name,
      AUTHZ_REDIS_MIN_REPLICAS: '1',
      AUTHZ_REDIS_WAIT_TIMEOUT_MS: '500',
    },
    { redisUrl: '' },
  );
  key = await backendKey('ES384');
  await registerBackend(t, 'ha-backend', [key]);
  await registerResourceServer(t, RS, { fhir_servers: ['http://localhost:8080/fhir'] });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await group?.stop();
});

const sha256 = (v: string) => createHash('sha256').update(v).digest('base64url');

/** Runs `one` on `workers` concurrent loops until `stop()` says so. */
async function load(workers: number, one: () => Promise<void>, stop: () => boolean): Promise<void> {
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!stop()) await one();
    }),
  );
}

/** Runs `fn` over `items` with at most `workers` at once. */
async function each<T>(items: T[], workers: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe('Sentinel failover under load', () => {
  test('SENTINEL FAILOVER mid-load: every token answered with 200 is still active and audited, the chain verifies, errors are 503 only', async () => {
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    const errorTimes: number[] = [];
    const otherErrors: string[] = [];
    let without503RetryAfter = 0;
    let lastOk = 0;
    let done = false;
    const issue = async () => {
      const res = await tokenRequest(t, await signAssertion(key, 'ha-backend', TOKEN_URL));
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) {
        acknowledged.push(res.body.access_token as string);
        lastOk = Date.now();
      } else {
        errorTimes.push(Date.now());
        if (res.status === 503 && !res.headers['retry-after']) without503RetryAfter++;
        if (res.status !== 503) otherErrors.push(`${res.status} ${JSON.stringify(res.body)}`);
      }
    };
    const running = load(WORKERS, issue, () => done);
    await new Promise((r) => setTimeout(r, BEFORE_MS));
    const started = Date.now();
    const switched = await group.failover();
    const switchedAfterMs = Date.now() - started;
    // Until writes are confirmed again (the old master resynced as the new one's replica), and a bit.
    const deadline = Date.now() + RECOVERY_MS;
    while (Date.now() < deadline && !(lastOk > (errorTimes.at(-1) ?? 0) + 1_000)) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, AFTER_MS));
    done = true;
    await running;

    // Each acknowledged token introspected once, against whatever is master now.
    const inactive: string[] = [];
    const introspectionErrors = new Map<number, number>();
    await each(acknowledged, WORKERS, async (token) => {
      const res = await introspect(t, token);
      if (res.status !== 200) introspectionErrors.set(res.status, (introspectionErrors.get(res.status) ?? 0) + 1);
      else if (res.body.active !== true) inactive.push(token);
    });

    const issuedEvents = new Set<string>();
    for (const e of await readTrail(t)) {
      if (localCode(e) !== 'token-issued') continue;
      for (const id of tokenIdentifiers(e)) if (id.value) issuedEvents.add(id.value);
    }
    const unaudited = acknowledged.filter((token) => !issuedEvents.has(sha256(token)));

    const window = errorTimes.length
      ? `${errorTimes.length} non-2xx over ${errorTimes[errorTimes.length - 1]! - errorTimes[0]!} ms`
      : 'no non-2xx';
    console.info(
      `sentinel failover ${switched.from} -> ${switched.to} (reported after ${switchedAfterMs} ms): ${acknowledged.length} tokens acknowledged, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${window}; lost ${inactive.length}, unaudited ${unaudited.length}`,
    );

    expect(switched.to).not.toBe(switched.from);
    expect(acknowledged.length).toBeGreaterThan(100);
    expect({
      inactive: inactive.length,
      unaudited: unaudited.length,
      introspectionErrors: Object.fromEntries(introspectionErrors),
    }).toEqual({
      inactive: 0,
      unaudited: 0,
      introspectionErrors: {},
    });
    expect(otherErrors.slice(0, 5)).toEqual([]);
    expect(without503RetryAfter).toBe(0);

    const anchorDir = anchorDirOf(t.config)!;
    const anchor = await readAnchor(anchorDir, t.config.redis.prefix).catch(() => undefined);
    const report = await verifyChain(
      new AuditStore(t.redis, t.keyspace),
      keyStoreCheckpointKeys(t.redis, t.keyspace, undefined),
      'main',
      verifyPolicy(t.config, { anchor }),
    );
    expect(report).toMatchObject({ ok: true });
  }, 85_000);
});
