import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { canonicalJson, entryHash, GENESIS_HASH } from '../../../src/records/audit/chain.js';
import { introspectionRecord } from '../../../src/records/audit/forms/introspection.js';
import { LegacyTrailError, migrateTrail, requireCurrentLayout } from '../../../src/records/audit/migrate.js';
import { search } from '../../../src/records/audit/search.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';

/**
 * A trail as the previous version wrote it (Redis-assigned stream ids, sorted-set indexes, the
 * location as "<chain> <stream id>") is detected, refused at start-up, and migrated in place.
 */

let f: AuditFixture;
const ids: string[] = [];

beforeEach(async () => {
  f = await auditFixture();
  ids.length = 0;
  const items = [
    ...[1, 2, 3].map((i) => ({
      ...sampleEvent({ patient: 'legacy-p', recorded: new Date(Date.UTC(2026, 0, i)).toISOString() }),
      id: `legacy-${i}`,
    })),
    introspectionRecord(
      'http://localhost:3000',
      {
        callerId: 'rs',
        ip: '10.0.0.1',
        active: true,
        value: 'v',
        token: { format: 'jwt', id: 'jti-1', kind: 'AccessToken', clientId: 'app', extra: { patient: 'legacy-p' } },
      },
      new Date(Date.UTC(2026, 0, 4)),
    ),
  ];
  let prev = GENESIS_HASH;
  let sid = '';
  for (const [n, item] of items.entries()) {
    const seq = n + 1;
    const json = canonicalJson(item);
    const hash = entryHash(seq, prev, json);
    sid = (await f.redis.xadd(
      f.keyspace.auditStream('main'),
      '*',
      'seq',
      String(seq),
      'prev',
      prev,
      'hash',
      hash,
      'id',
      item.id!,
      'event',
      json,
    ))!;
    await f.redis.hset(f.keyspace.auditLocation('main'), item.id!, `main ${sid}`);
    await f.redis.zadd(f.keyspace.key('{audit}:idx:patient:Patient/legacy-p'), Date.parse(item.recorded!), item.id!);
    ids.push(item.id!);
    prev = hash;
  }
  await f.redis.hset(f.keyspace.auditHead('main'), 'seq', String(items.length), 'hash', prev, 'sid', sid);
});
afterEach(async () => {
  await f.close();
});

test('a legacy trail is refused at start-up with the command that fixes it', async () => {
  await expect(requireCurrentLayout(f.store)).rejects.toThrow(LegacyTrailError);
  await expect(requireCurrentLayout(f.store)).rejects.toThrow(/smart-authz audit migrate/);
});

test('migration keeps every entry and hash, indexes it anew, and the trail goes on from there', async () => {
  expect(await migrateTrail(f.store)).toEqual({ main: 4, archive: 0 });
  await expect(requireCurrentLayout(f.store)).resolves.toBeUndefined();
  expect(await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).toMatchObject({ ok: true, entries: 4, lastSeq: 4 });
  expect((await f.store.entries('main', undefined, 10)).map((e) => e.sid)).toEqual(['1-0', '2-0', '3-0', '4-0']);

  // Found by the new index and by id; the old sorted sets are gone, the old stream kept aside.
  const found = await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/legacy-p'] }], count: 10, sort: 'date' });
  expect(found.events.map((e) => e.id)).toEqual(ids);
  expect((await search(f.store, { clauses: [], count: 10, dateFrom: Date.UTC(2026, 0, 2), dateTo: Date.UTC(2026, 0, 3) })).total).toBe(2);
  expect((await f.store.event('legacy-2'))?.id).toBe('legacy-2');
  expect(await f.redis.exists(f.keyspace.key('{audit}:idx:patient:Patient/legacy-p'))).toBe(0);
  expect(await f.redis.xlen(`${f.keyspace.auditStream('main')}:legacy`)).toBe(4);

  await f.trail.record(sampleEvent({ patient: 'legacy-p' }));
  expect(await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).toMatchObject({ ok: true, entries: 5 });
  expect((await search(f.store, { clauses: [{ param: 'patient', values: ['Patient/legacy-p'] }], count: 10 })).total).toBe(5);

  // Running it again is harmless.
  expect(await migrateTrail(f.store)).toEqual({ main: 0, archive: 0 });
});

test('a migration does not start while a purge (or another migration) holds the maintenance lock', async () => {
  await f.redis.set(f.keyspace.auditPurgeLock(), 'a purge elsewhere', 'EX', 60);
  await expect(migrateTrail(f.store)).rejects.toThrow(/a purge or another migration is running/);
  await expect(requireCurrentLayout(f.store)).rejects.toThrow(LegacyTrailError);
  // The other holder's lock is left alone.
  expect(await f.redis.get(f.keyspace.auditPurgeLock())).toBe('a purge elsewhere');
});
