import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { rewriteStream } from './tamper.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';
import { purge, PurgeRefusedError } from '../../../src/records/audit/retention.js';
import { CheckpointStore, verifyCheckpoint } from '../../../src/records/audit/checkpoints.js';
import { search } from '../../../src/records/audit/search.js';
import { decodePostings } from '../../../src/records/audit/postings.js';

const DAY = 86_400_000;
const daysAgo = (n: number) => new Date(Date.now() - n * DAY).toISOString();
const operator = { operator: { display: 'smart-authz CLI (test@host)' } };

describe('audit purge (retention) keeps the chains verifiable', () => {
  let f: AuditFixture;
  let checkpoints: CheckpointStore;
  beforeEach(async () => {
    f = await auditFixture({ AUTHZ_AUDIT_RETENTION_DAYS: '30', AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS: '365' });
    checkpoints = new CheckpointStore(f.redis, f.keyspace, f.keys, f.config.issuer);
    // Oldest first, as a real trail is written: 3 events older than both retentions, then 6 older
    // than the general retention (2 of them disclosures), then 4 recent.
    for (let i = 0; i < 3; i++) await f.trail.record(sampleEvent({ patient: `ancient-${i}`, recorded: daysAgo(400 - i) }));
    for (let i = 0; i < 6; i++) {
      const disclosure = i % 3 === 0;
      await f.trail.record(
        sampleEvent({ patient: `old-${i}`, subtype: disclosure ? 'token-issued' : 'login-failed', recorded: daysAgo(100 - i) }),
      );
    }
    for (let i = 0; i < 4; i++) await f.trail.record(sampleEvent({ patient: `recent-${i}`, recorded: daysAgo(5 - i) }));
  });
  afterEach(async () => {
    await f.close();
  });

  test('removes the old prefix, archives kept disclosures, checkpoints the cut, and audits itself', async () => {
    const result = await purge({ config: f.config, store: f.store, checkpoints, keys: f.keys, trail: f.trail, actor: operator });
    // 3 ancient disclosures (past both retentions) and 4 old non-disclosures go; 2 old disclosures move.
    expect(result).toMatchObject({ removed: 7, archived: 2, archiveRemoved: 0, cutSeq: 9 });
    const main = await f.store.entries('main', undefined, 100);
    expect(main.map((e) => e.seq)).toEqual([10, 11, 12, 13, 14]);
    const purgeEvent = JSON.parse(main.at(-1)!.event) as {
      subtype: Array<{ code: string }>;
      entity: Array<{ detail?: Array<{ type: string; valueString: string }> }>;
    };
    expect(purgeEvent.subtype[0]!.code).toBe('audit-purged');
    expect(purgeEvent.entity[0]!.detail).toEqual(
      expect.arrayContaining([
        { type: 'removed', valueString: '7' },
        { type: 'archived', valueString: '2' },
      ]),
    );

    const archive = await f.store.entries('archive', undefined, 100);
    expect(
      archive.map((e) => (JSON.parse(e.event) as { entity: Array<{ what?: { reference: string } }> }).entity[0]!.what!.reference),
    ).toEqual(['Patient/old-0', 'Patient/old-3']);

    // Both chains verify, the main one from the signed cut.
    expect(await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).toMatchObject({ ok: true, anchorSeq: 9, lastSeq: 14 });
    expect(await verifyChain(f.store, f.keys, 'archive', verifyPolicy(f.config))).toMatchObject({ ok: true, anchorSeq: 0, lastSeq: 2 });
    const cps = await checkpoints.list('main');
    expect(cps[0]!.seq).toBe(9);
    expect((await verifyCheckpoint(cps[0]!.jws, await f.keys.verificationKeys())).reason).toBe('purge-cut');

    // Archived disclosures stay searchable; purged events are gone from the indexes.
    expect((await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/old-0'] }], count: 10 })).total).toBe(1);
    expect((await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/old-1'] }], count: 10 })).total).toBe(0);
    expect((await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/ancient-0'] }], count: 10 })).total).toBe(0);

    // The removed seqs are gone from every posting list of the main chain.
    for (const key of await f.redis.keys(`${f.keyspace.auditPostings('main', 'patient', '')}*`)) {
      expect(decodePostings((await f.redis.get(key))!).every((seq) => seq > 9)).toBe(true);
    }
    expect(await f.redis.exists(f.keyspace.auditPostings('main', 'patient', 'Patient/old-1'))).toBe(0);
    expect(decodePostings((await f.redis.get(f.keyspace.auditPostings('archive', 'patient', 'Patient/old-3')))!)).toEqual([2]);

    // A second purge later removes nothing new but the chain stays verifiable.
    await purge({ config: f.config, store: f.store, checkpoints, keys: f.keys, trail: f.trail, actor: operator });
    expect((await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).ok).toBe(true);
  });

  test('archived disclosures are purged once past the disclosure retention; the archive verifies from its cut', async () => {
    await purge({ config: f.config, store: f.store, checkpoints, keys: f.keys, trail: f.trail, actor: operator });
    const later = new Date(Date.now() + 300 * DAY);
    const result = await purge({
      config: f.config,
      store: f.store,
      checkpoints,
      keys: f.keys,
      trail: f.trail,
      actor: operator,
      now: later,
    });
    expect(result.archiveRemoved).toBe(2);
    // By then the 4 recent disclosures have left the main chain for the archive in their turn.
    expect(result.archived).toBe(4);
    expect(await f.redis.xlen(f.keyspace.auditStream('archive'))).toBe(4);
    expect(await verifyChain(f.store, f.keys, 'archive', verifyPolicy(f.config))).toMatchObject({ ok: true, anchorSeq: 2 });
    expect((await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).ok).toBe(true);
  });

  test('removing entries right after the cut is detected (the chain must start at the signed cut)', async () => {
    await purge({ config: f.config, store: f.store, checkpoints, keys: f.keys, trail: f.trail, actor: operator });
    await rewriteStream(f, 'main', (entries) => entries.slice(2));
    expect((await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).problem).toMatchObject({ kind: 'removed' });
  });

  test('a chain that does not verify is not purged', async () => {
    await rewriteStream(f, 'main', (entries) => entries.filter((e) => e.seq !== 11));
    await expect(purge({ config: f.config, store: f.store, checkpoints, keys: f.keys, trail: f.trail, actor: operator })).rejects.toThrow(
      PurgeRefusedError,
    );
    expect(await f.redis.xlen(f.keyspace.auditStream('main'))).toBe(12);
  });
});
