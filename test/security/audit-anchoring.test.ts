import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { cliLines as cli } from '../support/cli.js';
import { auditFixture, sampleEvent, type AuditFixture } from '../records/audit/support.js';
import { removeAndRenumber, truncateFrom } from '../records/audit/tamper.js';
import { verifyChain, verifyPolicy } from '../../src/records/audit/verify.js';
import { verifyCheckpoint } from '../../src/records/audit/checkpoints.js';
import { disclosedPatients } from '../../src/records/audit/disclosure.js';
import { parseEvent } from '../../src/records/audit/chain.js';
import { search } from '../../src/records/audit/search.js';
import { createAuditTrail } from '../../src/records/audit/trail.js';
import { createLogger } from '../../src/platform/ops/logger.js';
import { Metrics } from '../../src/platform/ops/metrics.js';
import { loadConfig } from '../../src/platform/config/load.js';
import type { AnchorLine } from '../../src/records/audit/anchor.js';

/**
 * Issue 14, item 4: with write access to Redis, removing one disclosure event, renumbering and
 * rehashing the rest, fixing the locations, posting lists and head, and deleting the checkpoints
 * after it used to leave `smart-authz audit verify` printing OK. Now verify requires a signed
 * checkpoint every AUTHZ_AUDIT_CHECKPOINT_EVERY entries and a recent newest one, and the
 * checkpoints are anchored outside Redis, where `audit verify --anchor` compares them.
 */

const EVERY = 10;
const saved = { ...process.env };
let f: AuditFixture;
let anchorDir: string;

beforeEach(async () => {
  anchorDir = mkdtempSync(join(tmpdir(), 'anchor-attack-'));
  const prefix = `anchor-${randomUUID().slice(0, 8)}:`;
  const env = {
    REDIS_URL: process.env.REDIS_URL!,
    AUTHZ_REDIS_PREFIX: prefix,
    AUTHZ_LOG_LEVEL: 'silent',
    AUTHZ_AUDIT_CHECKPOINT_EVERY: String(EVERY),
    AUTHZ_AUDIT_ANCHOR_DIR: anchorDir,
  };
  // The CLI reads the same configuration from the environment, as an operator's shell would.
  Object.assign(process.env, env);
  f = await auditFixture(env, prefix);
  await f.trail.settled();
  // 25 events, every third one a disclosure (a token issued for a patient).
  for (let i = 1; i <= 25; i++)
    await f.trail.record(sampleEvent({ patient: `p${i}`, subtype: i % 3 === 1 ? 'token-issued' : 'login-failed' }));
  await f.trail.settled();
});
afterEach(async () => {
  process.env = { ...saved };
  process.exitCode = 0;
  await f.close();
});

const anchorLines = (): AnchorLine[] =>
  readdirSync(anchorDir)
    .flatMap((n) => readFileSync(join(anchorDir, n), 'utf8').split('\n'))
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AnchorLine);

describe('audit anchoring: tamper evidence that survives Redis-level access', () => {
  test('a clean trail verifies with and without the anchor; the anchor holds one signed JSON line per checkpoint', async () => {
    const lines = anchorLines();
    expect(lines.map((l) => `${l.seq}:${l.reason}`)).toEqual(expect.arrayContaining(['0:interval', '10:cadence', '20:cadence']));
    const keys = await f.keys.verificationKeys();
    for (const line of lines)
      expect(await verifyCheckpoint(line.jws, keys)).toMatchObject({ seq: line.seq, hash: line.hash, chain: line.chain });

    const plain = await cli('audit', 'verify');
    expect(plain[0]).toMatch(/^main: OK, 25 entries \(seq 1–25, from the genesis\), 3 signed checkpoints$/);
    expect(process.exitCode ?? 0).toBe(0);
    const anchored = await cli('audit', 'verify', '--anchor', anchorDir);
    expect(anchored[0]).toMatch(/^main: OK, 25 entries .*, matches 3 anchored checkpoints$/);
    expect(process.exitCode ?? 0).toBe(0);
  });

  test('THE attack: one disclosure removed, the rest renumbered and rehashed, locations, postings and head fixed, later checkpoints deleted', async () => {
    const before = await f.store.entries('main', undefined, 100);
    const victim = before.find((e) => e.seq === 13)!;
    const next = before.find((e) => e.seq === 14)!;
    expect(disclosedPatients(parseEvent(victim))).toEqual(['Patient/p13']);
    await removeAndRenumber(f, 'main', 13);

    // The rewrite is complete at the level of the chain: every link and hash is consistent, the
    // disclosure is gone from search, and the checks that existed before pass.
    expect(await verifyChain(f.store, f.keys, 'main', { every: Number.POSITIVE_INFINITY })).toMatchObject({ ok: true, lastSeq: 24 });
    expect((await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/p13'] }], count: 10 })).total).toBe(0);
    expect(
      (await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/p14'] }], count: 10 })).events.map((e) => e.id),
    ).toEqual([next.id]);
    expect(await f.redis.hget(f.keyspace.auditLocation('main'), next.id)).toBe('13');

    // Redis alone: the signed checkpoint required at seq 20 is gone, and cannot be re-signed.
    const plain = await cli('audit', 'verify', '--chain', 'main');
    expect(plain).toEqual([
      'main: FAILED: checkpoint entry at seq 20 (stream id 20-0): no signed checkpoint at seq 20, where one is required every 10 entries: entries seq 11–20 (or later) were rewritten or removed, or the checkpoint was deleted',
    ]);
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;

    // Against the anchor: the first anchored checkpoint Redis no longer has, and where the rewrite lies.
    const anchored = await cli('audit', 'verify', '--chain', 'main', '--anchor', anchorDir);
    expect(anchored).toHaveLength(1);
    expect(anchored[0]).toMatch(
      /^main: FAILED: checkpoint entry at seq 20 \(stream id 20-0\): the anchored checkpoint at seq 20 \(cadence, [^)]+\) is missing from Redis: the chain was rewritten or cut back between seq 11 and seq 20$/,
    );
    expect(process.exitCode).toBe(1);
  });

  test('deleting every checkpoint (forging nothing) fails, with and without the anchor', async () => {
    await f.redis.del(f.keyspace.auditCheckpoints('main'));
    expect(await cli('audit', 'verify', '--chain', 'main')).toEqual([
      expect.stringMatching(/^main: FAILED: checkpoint entry at seq 10 .*no signed checkpoint at seq 10/),
    ]);
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
    expect(await cli('audit', 'verify', '--chain', 'main', '--anchor', anchorDir)).toEqual([
      expect.stringMatching(
        /^main: FAILED: checkpoint entry at seq 0 .*the anchored checkpoint at seq 0 \(interval, .*\) is missing from Redis/,
      ),
    ]);
    expect(process.exitCode).toBe(1);
  });

  test('a rewind of the tail below the last cadence checkpoint is caught by the anchor (the head is behind it)', async () => {
    // The interval timer signs the head of a quiet trail; here at seq 25.
    await f.trail.checkpoint('interval');
    await f.trail.settled();
    await truncateFrom(f, 'main', 23);
    const anchored = await cli('audit', 'verify', '--chain', 'main', '--anchor', anchorDir);
    expect(anchored).toEqual([
      expect.stringMatching(
        /^main: FAILED: checkpoint entry at seq 25 .*the anchored checkpoint at seq 25 \(interval, .*\) is missing from Redis: the chain was rewritten or cut back between seq 21 and seq 25$/,
      ),
    ]);
    expect(process.exitCode).toBe(1);
  });

  test('a newest checkpoint older than the interval plus grace fails verification (later ones were deleted, or no server ran)', async () => {
    const policy = verifyPolicy(f.config);
    const later = Date.now() + (f.config.audit.checkpointIntervalSeconds + f.config.audit.checkpointGraceSeconds + 5) * 1000;
    const report = await verifyChain(f.store, f.keys, 'main', { ...policy, now: later });
    expect(report.ok).toBe(false);
    expect(report.problem).toMatchObject({ kind: 'checkpoint' });
    expect(report.problem!.message).toMatch(/the newest signed checkpoint \(seq \d+, .*\) is \d+ s old, more than the 600 s allowed/);
    expect((await verifyChain(f.store, f.keys, 'main', policy)).ok).toBe(true);
  });

  test('a trail shorter than one cadence verifies on its interval checkpoint; instances sharing a trail write one interval checkpoint between them', async () => {
    const g = await auditFixture({ AUTHZ_AUDIT_CHECKPOINT_EVERY: '1000' });
    const other = createAuditTrail({
      config: g.config,
      redis: g.redis,
      keyspace: g.keyspace,
      logger: createLogger('silent'),
      checkpointKeys: g.keys,
    });
    try {
      for (let i = 0; i < 3; i++) await g.trail.record(sampleEvent());
      await Promise.all([g.trail.settled(), other.settled()]);
      expect(await verifyChain(g.store, g.keys, 'main', verifyPolicy(g.config))).toMatchObject({ ok: true, lastSeq: 3, checkpoints: 1 });
    } finally {
      await other.close();
      await g.close();
    }
  });

  test('checkpoints also go to an HTTP collector; a failing one is logged and counted, never in the way', async () => {
    const received: AnchorLine[] = [];
    let fail = false;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (fail) return void res.writeHead(503).end();
        received.push(JSON.parse(body) as AnchorLine);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const config = loadConfig({ ...process.env, AUTHZ_AUDIT_ANCHOR_URL: `http://127.0.0.1:${port}/siem` });
    const metrics = new Metrics({ defaultMetrics: false });
    const trail = createAuditTrail({
      config,
      redis: f.redis,
      keyspace: f.keyspace,
      logger: createLogger('silent'),
      metrics,
      checkpointKeys: f.keys,
      intervalCheckpoints: false,
    });
    try {
      await trail.checkpoint('manual');
      await trail.settled();
      expect(received).toEqual([expect.objectContaining({ chain: 'main', seq: 25, reason: 'manual', jws: expect.stringMatching(/^ey/) })]);
      fail = true;
      await trail.checkpoint('manual');
      await trail.settled();
      const counted = (await metrics.registry.getSingleMetricAsString('audit_anchor_writes_total')).split('\n');
      expect(counted).toEqual(
        expect.arrayContaining([
          'audit_anchor_writes_total{sink="http",result="ok"} 1',
          'audit_anchor_writes_total{sink="http",result="error"} 1',
        ]),
      );
      // The file anchor got both.
      expect(anchorLines().filter((l) => l.reason === 'manual')).toHaveLength(2);
    } finally {
      await trail.close();
      server.close();
    }
  });

  test('production refuses to start without an anchor directory', () => {
    const production = {
      AUTHZ_MODE: 'production',
      AUTHZ_COOKIE_KEYS: 'k'.repeat(40),
      AUTHZ_PROXY: 'true',
      AUTHZ_ISSUER: 'https://auth.example.org',
      AUTHZ_KEY_ENCRYPTION_SECRET: 's'.repeat(40),
      AUTHZ_AUDIT_DATABASE_URL: 'postgres://authz@db.example.org/audit',
    };
    expect(() => loadConfig(production)).toThrow(/AUTHZ_AUDIT_ANCHOR_DIR \(audit\.anchorDir\) is required in production/);
    expect(loadConfig({ ...production, AUTHZ_AUDIT_ANCHOR_DIR: '/var/lib/smart-authz/anchor' }).audit.anchorDir).toBe(
      '/var/lib/smart-authz/anchor',
    );
  });
});
