import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { createPgTestDatabase, type PgTestDatabase, tamper } from '../../../support/postgres.js';
import { PgAuditStore, type PgEntry } from '../../../../src/records/audit/pg/store.js';
import { verifyChains } from '../../../../src/records/audit/pg/verify.js';
import { signCheckpoint, type CheckpointKeys } from '../../../../src/records/audit/checkpoints.js';
import { entryHash } from '../../../../src/records/audit/chain.js';
import { sampleEvent } from '../support.js';
import { chainOf } from './entries.js';

let db: PgTestDatabase;
let store: PgAuditStore;
let keys: CheckpointKeys;
let otherKeys: CheckpointKeys;

async function keyPair(kid: string): Promise<CheckpointKeys> {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const priv: JWK = { ...(await exportJWK(privateKey)), kid };
  const pub: JWK = { ...(await exportJWK(publicKey)), kid };
  return { signingKey: async () => ({ jwk: priv, alg: 'ES384' }), verificationKeys: async () => [pub] };
}

const events = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    ...sampleEvent({ patient: `p-${i % 4}`, recorded: new Date(Date.UTC(2026, 0, 20) + i * 3_600_000).toISOString() }),
    id: `${tag}-${i}`,
  }));

/** A chain of `n` entries with a signed checkpoint every 5 entries, stored. */
async function storedChain(chain: 'main' | 'archive', n: number): Promise<PgEntry[]> {
  const entries = chainOf(chain, events(chain, n));
  await store.insert(entries);
  for (const e of entries) {
    if (e.seq % 5 === 0)
      await store.insertCheckpoint(
        await signCheckpoint(keys, { iss: 'test', chain, seq: e.seq, hash: e.hash, iat: 1_767_225_600 + e.seq, reason: 'cadence' }),
      );
  }
  return entries;
}

let main: PgEntry[];

beforeAll(async () => {
  db = await createPgTestDatabase();
  store = new PgAuditStore(db.appUrl);
  keys = await keyPair('k1');
  otherKeys = await keyPair('k2');
  main = await storedChain('main', 23);
  await storedChain('archive', 7);
  // A chain named as the sharded intake names them (no signed checkpoints: verifyCheckpoint knows main and archive only).
  await store.insert(chainOf('main-1', events('m1', 4)));
});
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const reportOf = async (chain: string, page = 4) =>
  (await verifyChains(store, { keys, every: chain === 'main-1' ? undefined : 5, chains: [chain], page }))[0]!;

test('an intact trail verifies, every chain, signatures and cadence included (in small pages)', async () => {
  const reports = await verifyChains(store, { keys, page: 4 });
  expect(reports.map((r) => [r.chain, r.ok, r.entries, r.lastSeq, r.checkpoints])).toEqual([
    ['archive', true, 7, 7, 1],
    ['main', true, 23, 23, 4],
    ['main-1', true, 4, 4, 0],
  ]);
});

test('an edited event is reported at its seq', async () => {
  await tamper(
    db,
    'UPDATE audit.entries SET event = replace(event, \'"outcome":"0"\', \'"outcome":"8"\') WHERE chain = \'main\' AND seq = 9',
  );
  expect(await reportOf('main')).toMatchObject({
    ok: false,
    entries: 9,
    lastSeq: 8,
    problem: { kind: 'altered', seq: 9, message: expect.stringMatching(/does not match its hash/) },
  });
  // A rewrite that re-hashes the edited entry is caught at the next link.
  const edited = main[8]!.event.replace('"outcome":"0"', '"outcome":"8"');
  await tamper(db, "UPDATE audit.entries SET hash = decode($1, 'hex') WHERE chain = 'main' AND seq = 9", [
    entryHash(9, main[8]!.prev, edited),
  ]);
  expect(await reportOf('main')).toMatchObject({
    ok: false,
    problem: { kind: 'altered', seq: 9, message: expect.stringMatching(/seq 9 was rewritten/) },
  });
  // Restore.
  await tamper(db, "UPDATE audit.entries SET event = $1, hash = decode($2, 'hex') WHERE chain = 'main' AND seq = 9", [
    main[8]!.event,
    main[8]!.hash,
  ]);
  expect((await reportOf('main')).ok).toBe(true);
});

test('a rewrite that re-hashes every later entry is caught by the signed checkpoint', async () => {
  const forged = chainOf('main', events('forged', 23).slice(11), { seq: 11, hash: main[10]!.hash, t: main[10]!.t });
  // Replace entries 12.. with a different, self-consistent continuation.
  for (const e of forged)
    await tamper(
      db,
      "UPDATE audit.entries SET event = $1, hash = decode($2, 'hex'), prev = decode($3, 'hex'), id = $4 WHERE chain = 'main' AND seq = $5",
      [e.event, e.hash, e.prev, e.id, e.seq],
    );
  expect(await reportOf('main')).toMatchObject({
    ok: false,
    problem: { kind: 'altered', seq: 15, message: expect.stringMatching(/differs from the checkpoint/) },
  });
  for (const e of main.slice(11))
    await tamper(
      db,
      "UPDATE audit.entries SET event = $1, hash = decode($2, 'hex'), prev = decode($3, 'hex'), id = $4 WHERE chain = 'main' AND seq = $5",
      [e.event, e.hash, e.prev, e.id, e.seq],
    );
  expect((await reportOf('main')).ok).toBe(true);
});

test('a missing seq is reported as removed, in the middle and at the end', async () => {
  await tamper(db, "DELETE FROM audit.entries WHERE chain = 'main' AND seq IN (13, 14)");
  expect(await reportOf('main')).toMatchObject({
    ok: false,
    problem: { kind: 'removed', seq: 13, message: expect.stringMatching(/seq 13–14 are missing/) },
  });
  await store.insert(main.slice(12, 14));
  expect((await reportOf('main')).ok).toBe(true);
  // The tail after the last checkpoint-signed seq is cut back: the checkpoint at 20 shows it.
  await tamper(db, "DELETE FROM audit.entries WHERE chain = 'main' AND seq >= 19");
  expect(await reportOf('main')).toMatchObject({ ok: false, lastSeq: 18, problem: { kind: 'removed', seq: 19 } });
  await store.insert(main.slice(18));
  expect((await reportOf('main')).ok).toBe(true);
});

test('a checkpoint that signs another hash, one with a bad signature, and a missing cadence checkpoint are reported', async () => {
  await store.insertCheckpoint(
    await signCheckpoint(keys, { iss: 'test', chain: 'archive', seq: 3, hash: 'b'.repeat(64), iat: 1_767_300_000, reason: 'manual' }),
  );
  expect(await reportOf('archive')).toMatchObject({
    ok: false,
    problem: { kind: 'altered', seq: 3, message: expect.stringMatching(/differs from the checkpoint/) },
  });
  await tamper(db, "DELETE FROM audit.checkpoints WHERE chain = 'archive' AND seq = 3");

  const archive = await store.entries('archive', 0, 10);
  await store.insertCheckpoint(
    await signCheckpoint(otherKeys, {
      iss: 'test',
      chain: 'archive',
      seq: 6,
      hash: archive[5]!.hash,
      iat: 1_767_300_000,
      reason: 'manual',
    }),
  );
  expect(await reportOf('archive')).toMatchObject({
    ok: false,
    problem: { kind: 'checkpoint', seq: 6, message: expect.stringMatching(/not in the key set/) },
  });
  // Without keys only (seq, hash) are compared: that one matches.
  expect((await verifyChains(store, { chains: ['archive'] }))[0]!.ok).toBe(true);
  await tamper(db, "DELETE FROM audit.checkpoints WHERE chain = 'archive' AND seq = 6");

  await tamper(db, "DELETE FROM audit.checkpoints WHERE chain = 'main' AND seq = 10");
  expect(await reportOf('main')).toMatchObject({
    ok: false,
    problem: { kind: 'checkpoint', seq: 10, message: expect.stringMatching(/required every 5/) },
  });
});

test('a moved trail time is reported (search would file the entry elsewhere)', async () => {
  await tamper(db, "UPDATE audit.entries SET t = t + interval '1 minute' WHERE chain = 'main-1' AND seq = 2");
  expect(await reportOf('main-1')).toMatchObject({
    ok: false,
    problem: { kind: 'altered', seq: 2, message: expect.stringMatching(/trail time/) },
  });
});
