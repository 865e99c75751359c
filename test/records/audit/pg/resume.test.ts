import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from '../support.js';
import { createPgTestDatabase, type PgTestDatabase } from '../../../support/postgres.js';
import { cliLines } from '../../../support/cli.js';
import { PgAuditStore } from '../../../../src/records/audit/pg/store.js';
import { pgHome } from '../../../../src/records/audit/pg/home.js';
import { bindTrail } from '../../../../src/records/audit/pg/connect.js';
import { verifyChains } from '../../../../src/records/audit/pg/verify.js';
import { AuditStore } from '../../../../src/records/audit/store.js';
import { AuditShipper } from '../../../../src/records/audit/shipper.js';
import { createAuditTrail } from '../../../../src/records/audit/trail.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';

/*
 * The Redis intake loses the trail (a Redis restarted without its append-only file) after
 * PostgreSQL took it: `smart-authz audit db resume` continues every chain from PostgreSQL's head,
 * so new events extend the stored chains instead of colliding with them, and verify passes over
 * both. It refuses while the intake still holds a chain.
 */

let f: AuditFixture;
let db: PgTestDatabase;
let pg: PgAuditStore;
const saved = { ...process.env };

beforeAll(async () => {
  f = await auditFixture({ AUTHZ_AUDIT_CHAINS: '2', AUTHZ_AUDIT_MAX_BATCH: '10' });
  db = await createPgTestDatabase();
  pg = new PgAuditStore(db.appUrl);
  await bindTrail({ store: pg, home: pgHome(pg), ownerUrl: db.ownerUrl, close: () => pg.close() }, f.redis, f.keyspace);
  Object.assign(process.env, {
    AUTHZ_REDIS_PREFIX: f.config.redis.prefix,
    AUTHZ_AUDIT_STORE: 'postgres',
    AUTHZ_AUDIT_DATABASE_URL: db.appUrl,
    AUTHZ_AUDIT_DATABASE_OWNER_URL: db.ownerUrl,
    AUTHZ_AUDIT_CHAINS: '2',
    AUTHZ_AUDIT_ANCHOR_DIR: f.config.audit.anchorDir!,
    AUTHZ_LOG_LEVEL: 'silent',
  });
}, 60_000);

afterAll(async () => {
  process.env = saved;
  await f?.close();
  await pg?.close();
  await db?.drop();
});

function shipper(store: AuditStore, checkpoints: AuditFixture['trail']['checkpoints']): AuditShipper {
  return new AuditShipper({
    redis: f.redis,
    keyspace: f.keyspace,
    store,
    pg,
    checkpoints,
    logger: createLogger('silent'),
    options: { trimDelayMs: 0, trimEveryMs: 0 },
  });
}

describe('smart-authz audit db resume', () => {
  test('refused while the intake holds the trail; after the intake lost it, the chains continue from PostgreSQL', async () => {
    await Promise.all(Array.from({ length: 60 }, (_, i) => f.trail.record(sampleEvent({ patient: `resume-${i % 3}` }))));
    const store = new AuditStore(f.redis, f.keyspace, 2, pgHome(pg));
    const first = shipper(store, f.trail.checkpoints);
    expect(await first.drain()).toBe(60);
    await first.stop();
    await expect(cliLines('audit', 'db', 'resume')).rejects.toThrow(/still holds the main chain/);

    // The intake loses every audit key (its signing keys survive: see docs/audit-postgres.md "Recovery").
    await f.trail.close();
    const lost = await f.redis.keys(`${f.config.redis.prefix}{audit*`);
    expect(lost.length).toBeGreaterThan(3);
    await f.redis.del(...lost);

    const lines = await cliLines('audit', 'db', 'resume');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^main: continues after seq \d+ \(signed ship-cut checkpoint\)$/),
        expect.stringMatching(/^main-1: continues after seq \d+/),
      ]),
    );

    const trail = createAuditTrail({
      config: f.config,
      redis: f.redis,
      keyspace: f.keyspace,
      logger: createLogger('silent'),
      checkpointKeys: f.keys,
      intake: true,
    });
    try {
      await trail.settled();
      await Promise.all(Array.from({ length: 30 }, () => trail.record(sampleEvent({ patient: 'after-resume' }))));
      const second = shipper(new AuditStore(f.redis, f.keyspace, 2, pgHome(pg)), trail.checkpoints);
      expect(await second.drain()).toBe(30);
      await second.stop();
    } finally {
      await trail.close();
    }
    const reports = await verifyChains(pg, { keys: f.keys, every: f.config.audit.checkpointEvery });
    expect(reports.map((r) => ({ chain: r.chain, ok: r.ok, problem: r.problem }))).toEqual([
      { chain: 'main', ok: true, problem: undefined },
      { chain: 'main-1', ok: true, problem: undefined },
    ]);
    expect(reports.reduce((n, r) => n + r.entries, 0)).toBe(90);
    const verified = await cliLines('audit', 'verify');
    expect(verified.filter((l) => l.includes('FAILED'))).toEqual([]);
  }, 60_000);
});
