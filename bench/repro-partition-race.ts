// Reproduction (not a benchmark): two writers insert the first entries of a month that has no
// partition yet, on two chains, at the same time — as two shippers do at a month boundary, or one
// shipper per chain. One of them fails with 42P07 `relation "entries_YYYYMM" already exists`:
// audit.ensure_partitions checks to_regclass() again after taking its advisory lock, but that
// lookup is answered from the backend's catalog cache, which has not yet taken in the other
// transaction's CREATE TABLE (an advisory lock does not process invalidation messages).
// Usage: node --import tsx bench/repro-partition-race.ts   (starts and removes its own PostgreSQL)
import { startPrivatePostgres } from '../test/support/private-postgres.js';
import { PgAuditStore, type PgEntry } from '../src/audit/pg/store.js';
import { prepareEvent } from '../src/audit/trail.js';
import { GENESIS_HASH, entryHash } from '../src/audit/chain.js';
import { introspectionRecord } from '../src/audit/forms/introspection.js';

/** A valid chain of 200 entries in the month of `at` (each round a month no partition exists for yet). */
function chain(name: string, at: number): PgEntry[] {
  let prev = GENESIS_HASH;
  return Array.from({ length: 200 }, (_, k) => {
    const p = prepareEvent(introspectionRecord('https://authz.example', { callerId: 'rs', ip: '::1', active: false, value: `v${k}` }, new Date(at + k)), false);
    const entry: PgEntry = { chain: name, seq: k + 1, prev, hash: entryHash(k + 1, prev, p.json), id: p.id, event: p.json, t: p.score };
    prev = entry.hash;
    return entry;
  });
}

const server = await startPrivatePostgres();
let failures = 0;
const ROUNDS = 5;
try {
  for (let round = 0; round < ROUNDS; round++) {
    const at = Date.UTC(2031 + round, 4, 10);
    const a = new PgAuditStore(server.appUrl);
    const b = new PgAuditStore(server.appUrl);
    const results = await Promise.allSettled([a.insert(chain(`main-${2 * round + 1}`, at)), b.insert(chain(`main-${2 * round + 2}`, at))]);
    for (const r of results) {
      if (r.status === 'rejected') {
        failures += 1;
        console.log(`round ${round}: ${(r.reason as Error).message} (SQLSTATE ${(r.reason as { code?: string }).code})`);
      }
    }
    await a.close();
    await b.close();
  }
  console.log(`${failures} of ${ROUNDS} rounds: a writer failed where both should have succeeded`);
} finally {
  await server.stop();
}
process.exitCode = failures ? 1 : 0;
