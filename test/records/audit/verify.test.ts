import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { rewriteStream } from './tamper.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';
import { entryHash } from '../../../src/records/audit/chain.js';
import { encodeSeq } from '../../../src/records/audit/postings.js';
import { KeyStore } from '../../../src/platform/keys/keystore.js';
import { decodeProtectedHeader } from 'jose';

describe('audit verify: chain and checkpoints on real Redis', () => {
  let f: AuditFixture;
  beforeEach(async () => {
    f = await auditFixture();
    // The trail signs its head at start (an interval checkpoint, at seq 0 here): let it land first.
    await f.trail.settled();
    for (let i = 1; i <= 20; i++) {
      await f.trail.record(sampleEvent({ patient: `p${i}` }));
      if (i === 10) await f.trail.checkpoint('manual');
    }
  });
  afterEach(async () => {
    await f.close();
  });

  const verify = () => verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config));

  test('an untouched chain verifies, then an edited event is reported at its seq', async () => {
    expect(await verify()).toMatchObject({ ok: true, entries: 20, lastSeq: 20, checkpoints: 2 });
    await rewriteStream(f, 'main', (entries) => {
      entries[6]!.event = entries[6]!.event.replace('"Patient/p7"', '"Patient/someone-else"');
      return entries;
    });
    const report = await verify();
    expect(report.ok).toBe(false);
    expect(report.problem).toMatchObject({ kind: 'altered', seq: 7 });
    expect(report.problem!.sid).toBeDefined();
  });

  test('an edited event whose hash was recomputed is still reported at its seq', async () => {
    await rewriteStream(f, 'main', (entries) => {
      const e = entries[14]!;
      e.event = e.event.replace('"outcome":"0"', '"outcome":"4"');
      e.hash = entryHash(e.seq, e.prev, e.event);
      return entries;
    });
    expect((await verify()).problem).toMatchObject({ kind: 'altered', seq: 15 });
  });

  test('rewriting every later hash too is caught by the signed checkpoint', async () => {
    await rewriteStream(f, 'main', (entries) => {
      let prev = entries[2]!.prev;
      for (let i = 2; i < entries.length; i++) {
        const e = entries[i]!;
        if (i === 2) e.event = e.event.replace('"Patient/p3"', '"Patient/x"');
        e.prev = prev;
        e.hash = entryHash(e.seq, e.prev, e.event);
        prev = e.hash;
      }
      return entries;
    });
    await f.redis.hset(f.keyspace.auditHead('main'), 'hash', (await f.store.entries('main', undefined, 100)).at(-1)!.hash);
    const report = await verify();
    expect(report.problem).toMatchObject({ kind: 'altered', seq: 10 });
    expect(report.problem!.message).toMatch(/signed checkpoint/);
  });

  test('a deleted entry is reported as removed at its seq', async () => {
    await rewriteStream(f, 'main', (entries) => entries.filter((e) => e.seq !== 12));
    expect((await verify()).problem).toMatchObject({ kind: 'removed', seq: 12 });
  });

  test('entries removed from the end are reported (the head and checkpoints remember them)', async () => {
    await rewriteStream(f, 'main', (entries) => entries.filter((e) => e.seq <= 17));
    expect((await verify()).problem).toMatchObject({ kind: 'removed', seq: 18 });
  });

  test('swapped entries are reported as reordered at the first displaced seq', async () => {
    await rewriteStream(f, 'main', (entries) => {
      [entries[4], entries[5]] = [entries[5]!, entries[4]!];
      return entries;
    });
    const report = await verify();
    expect(report.problem).toMatchObject({ kind: 'reordered', seq: 5 });
  });

  test('an entry moved backwards is reported as reordered', async () => {
    await rewriteStream(f, 'main', (entries) => {
      const [moved] = entries.splice(2, 1);
      entries.splice(8, 0, moved!);
      return entries;
    });
    expect((await verify()).problem).toMatchObject({ kind: 'reordered', seq: 3 });
  });

  test('a changed trail time or stream id (not under the hash, but what search relies on) is reported', async () => {
    await rewriteStream(f, 'main', (entries) => {
      // Moved into the past, out of reach of a date search for when it happened.
      entries[11]!.t = entries[11]!.t - 86_400_000;
      return entries;
    });
    expect((await verify()).problem).toMatchObject({ kind: 'altered', seq: 12 });
    expect((await verify()).problem!.message).toMatch(/trail time/);
  });

  test('an entry stored under another stream id than <seq>-0 is reported', async () => {
    await rewriteStream(f, 'main', (entries) => entries.map((e) => (e.seq >= 15 ? { ...e, sid: `${e.seq + 100}-0` } : e)), {
      ownSids: true,
    });
    expect((await verify()).problem).toMatchObject({ kind: 'altered', seq: 15 });
  });

  test('a forged or tampered checkpoint is reported', async () => {
    const [jws] = await f.redis.zrange(f.keyspace.auditCheckpoints('main'), '0', '0');
    const [h, p, s] = jws!.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, hash: 'f'.repeat(64) })).toString('base64url')}.${s}`;
    await f.redis.zadd(f.keyspace.auditCheckpoints('main'), 10, forged);
    expect((await verify()).problem).toMatchObject({ kind: 'checkpoint', seq: 10 });
  });

  test('checkpoints signed before a key rotation still verify (retired keys are published)', async () => {
    const store = new KeyStore(f.redis, f.keyspace);
    const next = await store.introduce('EC');
    await store.promote(next.kid);
    await f.trail.checkpoint('manual');
    const kids = (await f.redis.zrange(f.keyspace.auditCheckpoints('main'), '0', '-1')).map((jws) => decodeProtectedHeader(jws).kid);
    expect(new Set(kids).size).toBe(2);
    expect(kids.at(-1)).toBe(next.kid);
    expect(await verify()).toMatchObject({ ok: true, checkpoints: 3 });
  });

  test('the altid search index and others are written in the same script as the entry', async () => {
    await f.trail.record({ ...sampleEvent(), id: 'alt-1', agent: [{ who: { display: 'x' }, altId: 'badge-42', requestor: true }] });
    const { seq } = (await f.store.entries('main', undefined, 1_000_000)).find((e) => e.id === 'alt-1')!;
    expect(await f.redis.get(f.keyspace.auditPostings('main', 'altid', 'badge-42'))).toBe(encodeSeq(seq));
  });
});
