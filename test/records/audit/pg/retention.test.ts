import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { createPgTestDatabase, PG_ADMIN_URL, type PgTestDatabase, tamper, asRole } from '../../../support/postgres.js';
import { cliLines as cli } from '../../../support/cli.js';
import { auditFixture, sampleEvent, type AuditFixture } from '../support.js';
import { PgAuditStore } from '../../../../src/records/audit/pg/store.js';
import { pgHome } from '../../../../src/records/audit/pg/home.js';
import { bindTrail } from '../../../../src/records/audit/pg/connect.js';
import { verifyChains } from '../../../../src/records/audit/pg/verify.js';
import { pgPurge, PgPurgeRefusedError, type PgPurgeResult } from '../../../../src/records/audit/pg/retention.js';
import { AuditStore } from '../../../../src/records/audit/store.js';
import { AuditShipper } from '../../../../src/records/audit/shipper.js';
import { CheckpointStore, signCheckpoint, verifyCheckpoint, type CheckpointKeys } from '../../../../src/records/audit/checkpoints.js';
import { createAnchor, readAnchor, type CheckpointAnchor } from '../../../../src/records/audit/anchor.js';
import { search, searchAll } from '../../../../src/records/audit/search.js';
import { disclosureEvents } from '../../../../src/records/audit/disclosure-report.js';
import { entryHash } from '../../../../src/records/audit/chain.js';
import { codeSearchValues } from '../../../../src/records/audit/indexes.js';
import { loadConfig } from '../../../../src/platform/config/load.js';
import type { AuditEvent } from '../../../../src/records/audit/audit-event.js';
import { createLogger } from '../../../../src/platform/ops/logger.js';

/*
 * Retention in PostgreSQL, against a private database (owner and application roles) and the real
 * Redis intake: events over several months in the past, shipped; a purge drops the months past the
 * general retention but keeps their disclosures (within six years) in audit.kept under signed
 * retention cuts; search, read, the disclosure report and export still find them; verify accepts
 * the chain after the signed cut and fails when a kept entry or the cut is tampered with.
 */

const DAY = 86_400_000;
const operator = { operator: { display: 'smart-authz CLI (test@host)' } };
const logger = createLogger('silent');

let db: PgTestDatabase;
let f: AuditFixture;
let pgStore: PgAuditStore;
let store: AuditStore;
let anchor: CheckpointAnchor;
const saved = { ...process.env };

/** The first instant of the UTC month `monthsAgo` months before now, plus `day` days. */
function monthsAgo(n: number, day = 2): string {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - n, 1) + day * DAY).toISOString();
}

const ids: Record<string, string> = {};
async function record(name: string, spec: Parameters<typeof sampleEvent>[0]): Promise<void> {
  const event = { ...sampleEvent(spec), id: `ret-${name}` };
  ids[name] = event.id;
  await f.trail.record(event);
}

async function ship(): Promise<void> {
  const shipper = new AuditShipper({
    redis: f.redis,
    keyspace: f.keyspace,
    store,
    pg: pgStore,
    checkpoints: new CheckpointStore(f.redis, f.keyspace, f.keys, f.config.issuer),
    logger,
    options: { trimDelayMs: 0, trimEveryMs: 0 },
  });
  await shipper.drain();
  await shipper.stop();
}

const patientTotal = async (patient: string) =>
  (await search(store, { clauses: [{ param: 'patient', values: [`Patient/${patient}`] }], count: 10 })).total;
const verifyMain = async (keys: CheckpointKeys = f.keys) =>
  (await verifyChains(pgStore, { keys, every: f.config.audit.checkpointEvery, chains: ['main'], page: 3 }))[0]!;

beforeAll(async () => {
  db = await createPgTestDatabase();
  f = await auditFixture({ AUTHZ_AUDIT_RETENTION_DAYS: '90', AUTHZ_AUDIT_CHECKPOINT_EVERY: '4' });
  pgStore = new PgAuditStore(db.appUrl);
  const home = pgHome(pgStore);
  await bindTrail({ store: pgStore, home, ownerUrl: db.ownerUrl, close: () => pgStore.close() }, f.redis, f.keyspace);
  store = new AuditStore(f.redis, f.keyspace, f.config.audit.chains, home);
  anchor = createAnchor({ config: f.config, logger })!;

  // Oldest first, as a real trail is written.
  // 7 years ago: past both retentions: everything goes.
  await record('ancient-disclosure', { patient: 'ancient-0', recorded: monthsAgo(84) });
  await record('ancient-other', { patient: 'ancient-1', subtype: 'login-failed', recorded: monthsAgo(84, 3) });
  // 5 years ago: disclosures kept, the rest goes.
  await record('a-disclosure-0', { patient: 'a-0', recorded: monthsAgo(60) });
  await record('a-other', { patient: 'a-1', subtype: 'login-failed', recorded: monthsAgo(60, 3) });
  await record('a-disclosure-1', { patient: 'a-2', subtype: 'break-the-glass', clientId: 'ehr', recorded: monthsAgo(60, 4) });
  // 2 years ago: a failed token request is no disclosure.
  await record('b-failed', { patient: 'b-0', outcome: '4', recorded: monthsAgo(24) });
  await record('b-disclosure', { patient: 'b-1', subtype: 'token-introspected', recorded: monthsAgo(24, 5) });
  await record('b-other', { patient: 'b-2', subtype: 'login-failed', recorded: monthsAgo(24, 6) });
  // Recent: within the general retention.
  await record('recent-0', { patient: 'recent-0', recorded: new Date(Date.now() - 10 * DAY).toISOString() });
  await record('recent-1', { patient: 'a-0', recorded: new Date(Date.now() - 5 * DAY).toISOString() });
  await ship();
}, 60_000);

afterEach(() => {
  process.exitCode = 0;
});

afterAll(async () => {
  process.env = saved;
  await anchor?.close();
  await f?.close();
  await pgStore?.close();
  await db?.drop();
});

describe('audit purge with the trail in PostgreSQL', () => {
  let first: PgPurgeResult;

  test('the application role cannot run retention, nor do its steps by hand', async () => {
    await expect(pgPurge({ config: f.config, ownerUrl: db.appUrl, keys: f.keys, trail: f.trail, actor: operator })).rejects.toThrow(
      PgPurgeRefusedError,
    );
    await expect(pgPurge({ config: f.config, ownerUrl: db.appUrl, keys: f.keys, trail: f.trail, actor: operator })).rejects.toThrow(
      /owner/,
    );
    const month = monthsAgo(84).slice(0, 7).replace('-', '');
    await asRole(db.appUrl, async (c) => {
      for (const sql of [
        `ALTER TABLE audit.entries DETACH PARTITION audit.entries_${month}`,
        `DROP TABLE audit.entries_${month}`,
        "INSERT INTO audit.kept SELECT * FROM audit.entries WHERE chain = 'main'",
        `CREATE TABLE audit.kept_${month} PARTITION OF audit.kept FOR VALUES FROM ('2019-01-01') TO ('2019-02-01')`,
        "INSERT INTO audit.retention_cuts (chain, seq, hash, before) VALUES ('main', 1, '\\x00', now())",
      ]) {
        await expect(c.query(sql)).rejects.toMatchObject({ code: '42501' });
      }
    });
    expect(await pgStore.highestSeq('main')).toBeGreaterThanOrEqual(10);
    expect((await pgStore.entries('main', 0, 1))[0]!.seq).toBe(1);
  });

  test('drops the old months, keeps their disclosures findable, signs the cut, and audits itself', async () => {
    first = await pgPurge({ config: f.config, ownerUrl: db.ownerUrl, keys: f.keys, anchor, trail: f.trail, actor: operator });
    expect(first.months).toEqual([monthsAgo(84).slice(0, 7), monthsAgo(60).slice(0, 7), monthsAgo(24).slice(0, 7)]);
    // ancient 2 + a-other + b-failed + b-other go; a's two disclosures and b's one are kept.
    expect(first).toMatchObject({ removed: 5, archived: 3, archiveRemoved: 0, keptMonths: [] });
    const cut = first.cuts.main!;
    expect(first.cutSeq).toBe(cut);

    // What is left in audit.entries starts after the cut; the kept disclosures are byte-exact copies.
    const left = await pgStore.entries('main', 0, 100);
    expect(left[0]!.seq).toBe(cut + 1);
    const kept = await pgStore.kept('main', 0, 100);
    expect(kept.map((e) => e.id)).toEqual([ids['a-disclosure-0'], ids['a-disclosure-1'], ids['b-disclosure']]);
    for (const e of kept) expect(entryHash(e.seq, e.prev, e.event)).toBe(e.hash);

    // Search, read by id, the disclosure report and export find the kept disclosures, not the rest.
    expect(await patientTotal('a-0')).toBe(2); // the kept one and the recent one
    expect(await patientTotal('a-2')).toBe(1);
    expect(await patientTotal('b-1')).toBe(1);
    for (const gone of ['ancient-0', 'ancient-1', 'a-1', 'b-0', 'b-2']) expect(await patientTotal(gone)).toBe(0);
    const byAgent = await search(store, {
      clauses: [
        { param: 'agent', values: ['ehr'] },
        { param: 'subtype', values: codeSearchValues('break-the-glass') },
      ],
      count: 10,
    });
    expect(byAgent.events.map((e) => e.id)).toEqual([ids['a-disclosure-1']]);
    const read = await store.events([ids['b-disclosure']!, ids['a-other']!, ids['a-disclosure-0']!]);
    expect(read.map((e) => e.id)).toEqual([ids['b-disclosure'], ids['a-disclosure-0']]);
    expect(await store.event(ids['a-disclosure-1']!)).toMatchObject({ id: ids['a-disclosure-1'] });
    const report = await disclosureEvents(store, 'Patient/a-0');
    expect(report.events.map((e) => e.id)).toEqual([ids['recent-1'], ids['a-disclosure-0']]);
    const exported: AuditEvent[] = [];
    for await (const page of searchAll(store, { clauses: [], sort: 'date', asOf: Date.now() + 1 }, 2)) exported.push(...page);
    const named = exported.map((e) => Object.entries(ids).find(([, id]) => id === e.id)?.[0]).filter(Boolean);
    expect(named).toEqual(['a-disclosure-0', 'a-disclosure-1', 'b-disclosure', 'recent-0', 'recent-1']);
    // Newest first, across the kept and the live entries, a page at a time.
    const newest = await search(store, {
      clauses: [{ param: 'patient', values: ['Patient/a-0', 'Patient/b-1', 'Patient/recent-0'] }],
      count: 2,
      offset: 1,
    });
    expect(newest.events.map((e) => e.id)).toEqual([ids['recent-0'], ids['b-disclosure']]);

    // The purge is an AuditEvent in the trail.
    const purged = await search(store, { clauses: [{ param: 'subtype', values: codeSearchValues('audit-purged') }], count: 10 });
    expect(purged.total).toBe(1);
    expect(purged.events[0]!.entity![0]!.detail).toEqual(
      expect.arrayContaining([
        { type: 'removed', valueString: '5' },
        { type: 'archived', valueString: '3' },
        { type: 'store', valueString: 'postgres' },
      ]),
    );

    // The cut is signed (retention-cut), stored in PostgreSQL and in the anchor.
    const cps = (await pgStore.checkpoints('main')).filter((c) => c.reason === 'retention-cut');
    expect(cps.map((c) => c.seq)).toEqual([expect.any(Number), expect.any(Number), cut]);
    const signed = await verifyCheckpoint(cps[2]!.jws, await f.keys.verificationKeys());
    expect(signed).toMatchObject({ reason: 'retention-cut', seq: cut, retention: { month: monthsAgo(24).slice(0, 7), kept: 1 } });
    await anchor.flush();
    const anchored = (await readAnchor(f.config.audit.anchorDir!, f.config.redis.prefix)).filter((l) => l.reason === 'retention-cut');
    expect(anchored.map((l) => l.jws)).toEqual(cps.map((c) => c.jws));

    // Verify accepts the chain after the signed cut and checks the kept disclosures.
    expect(await verifyMain()).toMatchObject({ ok: true, startSeq: cut, kept: 3, retentionCuts: 3 });
    // Shipping goes on after the cut (the purge event).
    await ship();
    expect((await verifyChains(pgStore, { keys: f.keys, every: f.config.audit.checkpointEvery })).every((r) => r.ok)).toBe(true);
  });

  test('a kept disclosure altered, re-hashed, removed or added is caught', async () => {
    const kept = await pgStore.kept('main', 0, 100);
    const b = kept[2]!;
    const edited = b.event.replace('"outcome":"0"', '"outcome":"8"');
    await tamper(db, "UPDATE audit.kept SET event = $1 WHERE chain = 'main' AND seq = $2", [edited, b.seq]);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: { kind: 'altered', seq: b.seq, message: expect.stringMatching(/kept disclosure .* does not match its hash/) },
    });
    // Re-hashed to match: the signed digest still tells.
    await tamper(db, "UPDATE audit.kept SET hash = decode($1, 'hex') WHERE chain = 'main' AND seq = $2", [
      entryHash(b.seq, b.prev, edited),
      b.seq,
    ]);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: { kind: 'altered', message: expect.stringMatching(/not those the retention cut signed: 1 here, 1 signed; one was altered/) },
    });
    // Moved in time within its month (search would file it elsewhere).
    await tamper(
      db,
      "UPDATE audit.kept SET event = $1, hash = decode($2, 'hex'), t = t + interval '1 second' WHERE chain = 'main' AND seq = $3",
      [b.event, b.hash, b.seq],
    );
    expect(await verifyMain()).toMatchObject({ ok: false, problem: { kind: 'altered' } });
    await tamper(db, "UPDATE audit.kept SET t = t - interval '1 second' WHERE chain = 'main' AND seq = $1", [b.seq]);
    expect((await verifyMain()).ok).toBe(true);

    // Removed.
    await tamper(db, "DELETE FROM audit.kept WHERE chain = 'main' AND seq = $1", [kept[0]!.seq]);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: { kind: 'removed', message: expect.stringMatching(/1 here, 2 signed; 1 were removed/) },
    });
    await tamper(
      db,
      "INSERT INTO audit.kept SELECT chain, seq, audit.ms_to_ts($2), decode($3, 'hex'), decode($4, 'hex'), $5, $6 FROM (SELECT 'main' AS chain, $1::bigint AS seq) x",
      [kept[0]!.seq, kept[0]!.t, kept[0]!.prev, kept[0]!.hash, kept[0]!.id, kept[0]!.event],
    );
    expect((await verifyMain()).ok).toBe(true);

    // A self-consistent entry added to the kept table (a back-dated "disclosure"), in b's month.
    const forged = { ...b, seq: b.seq - 1, id: 'forged' };
    forged.hash = entryHash(forged.seq, forged.prev, forged.event);
    await tamper(db, "INSERT INTO audit.kept VALUES ('main', $1, audit.ms_to_ts($2), decode($3, 'hex'), decode($4, 'hex'), $5, $6)", [
      forged.seq,
      forged.t,
      forged.prev,
      forged.hash,
      forged.id,
      forged.event,
    ]);
    expect(await verifyMain()).toMatchObject({ ok: false, problem: { kind: 'altered', message: expect.stringMatching(/were added/) } });
    await tamper(db, "DELETE FROM audit.kept WHERE id = 'forged'");
    expect((await verifyMain()).ok).toBe(true);
  });

  test('an unsigned, removed or forged cut fails verify (and refuses a purge)', async () => {
    const cut = first.cuts.main!;
    const [newest] = (await pgStore.checkpoints('main')).filter((c) => c.reason === 'retention-cut' && c.seq === cut);
    // The signed cut removed: retention_cuts still says where the chain starts, unsigned.
    await tamper(db, "DELETE FROM audit.checkpoints WHERE chain = 'main' AND jws = $1", [newest!.jws]);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: { kind: 'checkpoint', seq: cut, message: expect.stringMatching(/no valid signed retention-cut checkpoint/) },
    });
    await expect(pgPurge({ config: f.config, ownerUrl: db.ownerUrl, keys: f.keys, trail: f.trail, actor: operator })).rejects.toThrow(
      /main chain does not verify in PostgreSQL; nothing was purged/,
    );
    // ... and the record too: the chain now starts at the previous signed cut, with entries missing.
    const [record] = (
      await asRole(PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db.database}`), (c) =>
        c.query("SELECT * FROM audit.retention_cuts WHERE chain = 'main' AND seq = $1", [cut]),
      )
    ).rows as Array<{ before: Date; at: Date; hash: Buffer }>;
    await tamper(db, "DELETE FROM audit.retention_cuts WHERE chain = 'main' AND seq = $1", [cut]);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: { message: expect.stringMatching(/kept disclosure seq \d+ is not covered by any signed retention cut/) },
    });
    // Without kept entries in the way, the entries the cut dropped show as removed.
    const reports = await verifyChains(pgStore, { keys: f.keys, chains: ['main'], keptBefore: '0000-01' });
    expect(reports[0]).toMatchObject({ ok: false, problem: { kind: 'removed', message: expect.stringMatching(/are missing/) } });
    await tamper(db, 'INSERT INTO audit.retention_cuts (chain, seq, hash, before, at) VALUES ($1, $2, $3, $4, $5)', [
      'main',
      cut,
      record!.hash,
      record!.before,
      record!.at,
    ]);
    await tamper(
      db,
      "INSERT INTO audit.checkpoints (chain, seq, hash, iat, reason, jws) VALUES ('main', $1, decode($2, 'hex'), $3, 'retention-cut', $4)",
      [cut, newest!.hash, newest!.iat, newest!.jws],
    );
    expect((await verifyMain()).ok).toBe(true);

    // A cut signed with a key the server never had (or edited after signing).
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    const priv: JWK = { ...(await exportJWK(privateKey)), kid: 'intruder' };
    const intruder: CheckpointKeys = {
      signingKey: async () => ({ jwk: priv, alg: 'ES384' }),
      verificationKeys: async () => [{ ...(await exportJWK(publicKey)), kid: 'intruder' }],
    };
    const payload = JSON.parse(Buffer.from(newest!.jws.split('.')[1]!, 'base64url').toString('utf8')) as Parameters<
      typeof signCheckpoint
    >[1];
    const forged = await signCheckpoint(intruder, { ...payload, retention: { ...payload.retention!, kept: 0 } });
    await pgStore.insertCheckpoint(forged);
    expect(await verifyMain()).toMatchObject({
      ok: false,
      problem: {
        kind: 'checkpoint',
        message: expect.stringMatching(/retention cut checkpoint at seq \d+ was signed by key intruder.*forged/),
      },
    });
    await expect(pgPurge({ config: f.config, ownerUrl: db.ownerUrl, keys: f.keys, trail: f.trail, actor: operator })).rejects.toThrow(
      PgPurgeRefusedError,
    );
    await tamper(db, 'DELETE FROM audit.checkpoints WHERE jws = $1', [forged]);
    expect((await verifyMain()).ok).toBe(true);
  });

  test('the CLI: kept disclosures past their own retention go, the rest stay, and verify says OK', async () => {
    // A shorter disclosure retention (3 years) makes the 5-year-old kept month expire.
    Object.assign(process.env, {
      REDIS_URL: process.env.REDIS_URL!,
      AUTHZ_REDIS_PREFIX: f.config.redis.prefix,
      AUTHZ_LOG_LEVEL: 'silent',
      AUTHZ_AUDIT_ANCHOR_DIR: f.config.audit.anchorDir!,
      AUTHZ_AUDIT_RETENTION_DAYS: '90',
      AUTHZ_AUDIT_CHECKPOINT_EVERY: '4',
      AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS: String(3 * 366),
      AUTHZ_AUDIT_STORE: 'postgres',
      AUTHZ_AUDIT_DATABASE_URL: db.appUrl,
      AUTHZ_AUDIT_DATABASE_OWNER_URL: db.ownerUrl,
    });
    expect(loadConfig().audit.store).toBe('postgres');
    const out = await cli('audit', 'purge');
    expect(process.exitCode ?? 0).toBe(0);
    expect(out[0]).toMatch(
      new RegExp(
        `^dropped no month .*: 0 events removed, 0 disclosures kept .*; kept disclosures of ${monthsAgo(60).slice(0, 7)} \\(2\\) removed`,
      ),
    );
    expect(out[1]).toMatch(/^main \(PostgreSQL\) now starts after the signed retention cut at seq \d+$/);
    expect((await pgStore.kept('main', 0, 100)).map((e) => e.id)).toEqual([ids['b-disclosure']]);
    expect(await patientTotal('a-2')).toBe(0);
    expect(await patientTotal('b-1')).toBe(1);
    await ship();

    const verified = await cli('audit', 'verify');
    expect(process.exitCode ?? 0).toBe(0);
    expect(verified[0]).toMatch(
      /^main \(PostgreSQL\): OK, \d+ entries \(seq \d+–\d+, from the signed retention cut at seq \d+\), \d+ signed checkpoints, 1 kept disclosures match 4 signed retention cuts$/,
    );

    // Removing the remaining kept disclosure now shows.
    const [b] = await pgStore.kept('main', 0, 1);
    await tamper(db, "DELETE FROM audit.kept WHERE chain = 'main' AND seq = $1", [b!.seq]);
    const failed = await cli('audit', 'verify');
    expect(failed[0]).toMatch(
      /^main \(PostgreSQL\): FAILED: removed entry at seq \d+: the kept disclosures of .* are not those the retention cut signed: 0 here, 1 signed/,
    );
    expect(process.exitCode).toBe(1);
  });
});
