import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { createAuditTrail } from '../../../src/records/audit/trail.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';
import { GENESIS_HASH, canonicalJson, entryHash } from '../../../src/records/audit/chain.js';
import { auditEventProblems, auditEventSchema } from '../../../src/records/audit/audit-event.js';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { connectRedis, createRedis } from '../../../src/platform/redis/connection.js';

describe('audit trail: append', () => {
  let f: AuditFixture;
  beforeAll(async () => {
    f = await auditFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  test('record fills id and recorded, appends canonical JSON with a hash chain from the genesis', async () => {
    const event = sampleEvent({ patient: 'p1' });
    const { recorded: _r, ...withoutRecorded } = event;
    await f.trail.record(withoutRecorded as typeof event);
    await f.trail.record(sampleEvent({ patient: 'p2' }));
    const entries = await f.store.entries('main', undefined, 10);
    expect(entries).toHaveLength(2);
    const [a, b] = entries as [(typeof entries)[0], (typeof entries)[0]];
    expect(a.seq).toBe(1);
    expect(a.prev).toBe(GENESIS_HASH);
    expect(a.hash).toBe(entryHash(1, GENESIS_HASH, a.event));
    expect(b.prev).toBe(a.hash);
    const stored = JSON.parse(a.event) as Record<string, unknown>;
    expect(stored.id).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    expect(typeof stored.recorded).toBe('string');
    expect(canonicalJson(stored)).toBe(a.event);
    expect(auditEventSchema.safeParse(stored).success).toBe(true);
    expect(await f.store.event(String(stored.id))).toEqual(stored);
  });

  test('concurrent records in one tick go into one batch and all resolve in order', async () => {
    const before = Number(await f.redis.hget(f.keyspace.auditHead('main'), 'seq'));
    await Promise.all(Array.from({ length: 300 }, (_, i) => f.trail.record(sampleEvent({ patient: `batch-${i}` }))));
    const head = Number(await f.redis.hget(f.keyspace.auditHead('main'), 'seq'));
    expect(head - before).toBe(300);
    expect((await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).ok).toBe(true);
  });

  test('an invalid event is refused and nothing is written', async () => {
    const before = await f.redis.xlen(f.keyspace.auditStream('main'));
    const bad = { ...sampleEvent(), agent: [] };
    await expect(f.trail.record(bad)).rejects.toThrow(/agent/);
    await expect(f.trail.record({ ...sampleEvent(), outcome: '3' as never })).rejects.toThrow(/outcome/);
    expect(await f.redis.xlen(f.keyspace.auditStream('main'))).toBe(before);
  });

  test('recording the same event id twice appends it once (retries are idempotent)', async () => {
    const event = { ...sampleEvent(), id: 'fixed-id-1' };
    await f.trail.record(event);
    await f.trail.record(event);
    await Promise.all([f.trail.record(event), f.trail.record(sampleEvent())]);
    const ids = (await f.store.entries('main', undefined, 10_000)).map((e) => e.id).filter((id) => id === 'fixed-id-1');
    expect(ids).toHaveLength(1);
    expect((await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).ok).toBe(true);
  });

  test('two trails (instances) on one prefix appending concurrently make one valid chain', async () => {
    const redis2 = createRedis(f.config.redis);
    redis2.on('error', () => {});
    await connectRedis(redis2);
    const other = createAuditTrail({
      config: f.config,
      redis: redis2,
      keyspace: f.keyspace,
      logger: createLogger('silent'),
      checkpointKeys: f.keys,
    });
    const before = Number(await f.redis.hget(f.keyspace.auditHead('main'), 'seq'));
    const writes: Array<Promise<void>> = [];
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 10; i++) {
        writes.push(f.trail.record(sampleEvent({ clientId: 'one' })));
        writes.push(other.record(sampleEvent({ clientId: 'two' })));
      }
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(writes);
    await other.close();
    redis2.disconnect();
    expect(Number(await f.redis.hget(f.keyspace.auditHead('main'), 'seq')) - before).toBe(400);
    const report = await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config));
    expect(report).toMatchObject({ ok: true, lastSeq: before + 400 });
  });

  test('a checkpoint is signed every N events', async () => {
    const g = await auditFixture({ AUTHZ_AUDIT_CHECKPOINT_EVERY: '5' });
    try {
      for (let i = 0; i < 12; i++) await g.trail.record(sampleEvent());
      await new Promise((r) => setTimeout(r, 200));
      const checkpoints = await g.redis.zrange(g.keyspace.auditCheckpoints('main'), '0', '-1', 'WITHSCORES');
      expect(checkpoints.length).toBeGreaterThanOrEqual(4);
      expect(checkpoints[0]).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
      expect((await verifyChain(g.store, g.keys, 'main', verifyPolicy(g.config))).checkpoints).toBeGreaterThanOrEqual(2);
    } finally {
      await g.close();
    }
  });

  test('the schema enforces R4 rules: requestor, observer, sev-1, codes', () => {
    const ok = sampleEvent();
    expect(auditEventProblems(ok)).toEqual([]);
    expect(auditEventProblems({ ...ok, source: {} })).not.toEqual([]);
    expect(auditEventProblems({ ...ok, agent: [{ who: { display: 'x' } }] })).not.toEqual([]);
    expect(auditEventProblems({ ...ok, action: 'X' })).not.toEqual([]);
    expect(auditEventProblems({ ...ok, recorded: '2026-01-01' })).not.toEqual([]);
    expect(auditEventProblems({ ...ok, entity: [{ name: 'a', query: 'YWJj' }] })).toEqual([
      'entity.0: sev-1: either a name or a query (not both)',
    ]);
    expect(auditEventProblems({ ...ok, entity: [{ query: 'YWJj' }] })).toEqual([]);
  });
});
