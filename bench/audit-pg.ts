// Capacity of the PostgreSQL audit store (docs/audit-postgres.md): bytes per event for realistic
// token-issued events and introspection records, insert throughput through PgAuditStore.insert
// in batches of 100 and 500, and search latency (p50/p99) at N generated events.
// Usage: node --import tsx bench/audit-pg.ts [--events 1000000] [--samples 40] [--keep]
// Needs the machine's PostgreSQL (PG_ADMIN_URL, default postgres://postgres@127.0.0.1:5432/postgres);
// works in a database of its own, dropped at the end unless --keep.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createPgTestDatabase } from '../test/support/postgres.js';
import { PgAuditStore, type PgEntry } from '../src/records/audit/pg/store.js';
import { termsOf } from '../src/records/audit/pg/terms.js';
import { ensurePartitions } from '../src/records/audit/pg/partitions.js';
import { tokenIssued } from '../src/records/audit/events/token-events.js';
import { introspectionRecord } from '../src/records/audit/forms/introspection.js';
import { prepareEvent } from '../src/records/audit/trail.js';
import { GENESIS_HASH, entryHash } from '../src/records/audit/chain.js';
import { parseAuditSearch, type Query } from '../src/records/audit/search-params.js';
import type { Recordable } from '../src/records/audit/stored-event.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    samples: { type: 'string', default: '40' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(args.events);
const SAMPLES = Number(args.samples);
const ISSUER = 'https://authz.example-hospital.org';

const MONTH = (y: number, m: number) => Date.UTC(y, m - 1, 1);

function tokenEvent(i: number, at: number): Recordable {
  const patient = `pt-${i % 20_000}`;
  return tokenIssued(
    { issuer: ISSUER, now: new Date(at) },
    {
      client: { clientId: `app-${i % 50}`, name: `Clinical App ${i % 50}`, ip: `10.1.${(i >> 8) & 255}.${i & 255}` },
      grantType: 'authorization_code',
      user: { accountId: `u-${i % 2000}`, fhirUser: `Practitioner/dr-${i % 2000}`, ip: `10.2.${(i >> 8) & 255}.${i & 255}` },
      patient,
      consentId: `consent-${i % 20_000}`,
      grantId: `grant-${i}`,
      accessToken: {
        name: { jti: `jti-${i}-${at}` },
        kind: 'AccessToken',
        format: 'jwt',
        scope: 'launch/patient openid fhirUser patient/*.rs',
        expiresIn: 3600,
        audience: 'https://fhir.example-hospital.org/r4',
      },
      refreshToken: {
        name: { opaqueValue: `rt-${i}-${at}` },
        kind: 'RefreshToken',
        scope: 'launch/patient openid fhirUser patient/*.rs offline_access',
      },
    },
  );
}

function introspection(i: number, at: number): Recordable {
  return introspectionRecord(
    ISSUER,
    {
      callerId: `fhir-server-${i % 3}`,
      ip: '10.3.0.1',
      active: true,
      value: 'v',
      token: {
        format: 'jwt',
        id: `jti-${i}-${at}`,
        kind: 'AccessToken',
        clientId: `app-${i % 50}`,
        accountId: `u-${i % 2000}`,
        scope: 'launch/patient patient/*.rs',
        extra: { patient: `pt-${i % 20_000}`, fhirUser: `Practitioner/dr-${i % 2000}` },
      },
    },
    new Date(at),
  );
}

function chain(name: string, items: Recordable[]): PgEntry[] {
  let prev = GENESIS_HASH;
  let t = 0;
  return items.map((item, k) => {
    const p = prepareEvent(item, false);
    t = Math.max(t, p.score);
    const hash = entryHash(k + 1, prev, p.json);
    const e: PgEntry = { chain: name, seq: k + 1, prev, hash, id: p.id, event: p.json, t };
    prev = hash;
    return e;
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

async function sizeOf(c: pg.Client, partitions: string[]): Promise<number> {
  const { rows } = await c.query<{ n: string }>(
    "SELECT sum(pg_total_relation_size(format('audit.%I', p)::regclass)) AS n FROM unnest($1::text[]) AS p",
    [partitions],
  );
  return Number(rows[0]!.n);
}

const started = Date.now();
const db = await createPgTestDatabase();
const store = new PgAuditStore(db.appUrl, { max: 4, statementTimeoutMs: 600_000 });
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
try {
  console.log(
    `# PostgreSQL audit store — ${new Date().toISOString()}, ${(await owner.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version}`,
  );

  // 1. Insert throughput and bytes per event through the real insert path (hash checks, links, terms).
  const PER = 10_000;
  const runs: Array<{ kind: string; batch: number; month: number; make: (i: number, at: number) => Recordable }> = [
    { kind: 'token-issued', batch: 100, month: MONTH(2024, 1), make: tokenEvent },
    { kind: 'token-issued', batch: 500, month: MONTH(2024, 2), make: tokenEvent },
    { kind: 'introspection', batch: 100, month: MONTH(2024, 3), make: introspection },
    { kind: 'introspection', batch: 500, month: MONTH(2024, 4), make: introspection },
  ];
  console.log('\n## insert (PgAuditStore.insert, one call per batch, one chain, sequential)\n');
  console.log('| events | batch | events/s | ms per batch |');
  console.log('|---|---|---|---|');
  const bytes = new Map<string, { size: number; n: number; text: number; terms: number }>();
  for (const run of runs) {
    const entries = chain(
      `main-${runs.indexOf(run)}`,
      Array.from({ length: PER }, (_, i) => run.make(i, run.month + 1000 + i * 60_000)),
    );
    await ensurePartitions(store.pool, [run.month]);
    const t0 = performance.now();
    for (let i = 0; i < entries.length; i += run.batch) await store.insert(entries.slice(i, i + run.batch));
    const ms = performance.now() - t0;
    console.log(`| ${run.kind} | ${run.batch} | ${Math.round((PER / ms) * 1000)} | ${fmt(ms / (PER / run.batch))} |`);
    await owner.query('VACUUM ANALYZE audit.entries, audit.entry_values');
    const suffix = new Date(run.month).toISOString().slice(0, 7).replace('-', '');
    const b = bytes.get(run.kind) ?? { size: 0, n: 0, text: 0, terms: 0 };
    b.size += await sizeOf(owner, [`entries_${suffix}`, `entry_values_${suffix}`]);
    b.n += PER;
    b.text += entries.reduce((s, e) => s + Buffer.byteLength(e.event), 0);
    b.terms += entries.reduce((s, e) => s + termsOf(e.event).length, 0);
    bytes.set(run.kind, b);
  }
  console.log('\n## bytes per event (pg_total_relation_size of the month partitions, tables + indexes + TOAST, after VACUUM)\n');
  console.log('| event | canonical JSON (B) | search values | bytes per event in PostgreSQL |');
  console.log('|---|---|---|---|');
  for (const [kind, b] of bytes)
    console.log(`| ${kind} | ${Math.round(b.text / b.n)} | ${(b.terms / b.n).toFixed(1)} | ${Math.round(b.size / b.n)} |`);

  // 2. N generated events (half token-issued, half introspection, over 12 months) for search latency.
  // Generated in SQL from one template of each kind: the texts are realistic, the hashes are not
  // (search does not read them). Values vary as in a hospital: 20,000 patients, 50 apps, 2,000 users.
  console.log(`\n## search at ${N.toLocaleString('en')} generated events\n`);
  const from = MONTH(2025, 1);
  const span = MONTH(2026, 1) - from;
  await ensurePartitions(
    store.pool,
    Array.from({ length: 12 }, (_, m) => MONTH(2025, m + 1)),
  );
  const templates = [prepareEvent(tokenEvent(0, from), false), prepareEvent(introspection(0, from), false)].map((p) => {
    // Placeholders the SQL replaces per row.
    const text = p.json
      .replaceAll('pt-0', 'PTXQ')
      .replaceAll('app-0', 'APPXQ')
      .replaceAll('u-0', 'UXQ')
      .replaceAll('dr-0', 'DRXQ')
      .replaceAll(p.id, 'IDXQ');
    return { text, terms: termsOf(text) };
  });
  const g0 = performance.now();
  await owner.query('SET synchronous_commit = off');
  const step = 100_000;
  for (let lo = 0; lo < N; lo += step) {
    const hi = Math.min(N, lo + step) - 1;
    for (const [k, tpl] of templates.entries()) {
      const sub = (col: string) =>
        `replace(replace(replace(replace(replace(${col}, 'PTXQ', 'pt-' || (i % 20000)), 'APPXQ', 'app-' || (i % 50)), 'UXQ', 'u-' || (i % 2000)), 'DRXQ', 'dr-' || (i % 2000)), 'IDXQ', 'gen-' || i)`;
      const rows = `SELECT i, audit.ms_to_ts(${from} + (i * ${span}::bigint / ${N})) AS t FROM generate_series(${lo}, ${hi}) AS i WHERE i % 2 = ${k}`;
      await owner.query(
        `INSERT INTO audit.entries (chain, seq, t, prev, hash, id, event)
         SELECT 'main', i + 1, t, sha256(int8send(i)), sha256(int8send(i + 1)), 'gen-' || i, ${sub('$1::text')} FROM (${rows}) r`,
        [tpl.text],
      );
      await owner.query(
        `INSERT INTO audit.entry_values (term, t, chain, seq) SELECT DISTINCT ${sub('term')}, t, 'main', i + 1 FROM (${rows}) r, unnest($1::text[]) AS term`,
        [tpl.terms],
      );
    }
  }
  const loadMs = performance.now() - g0;
  const v0 = performance.now();
  await owner.query('VACUUM ANALYZE audit.entries, audit.entry_values');
  const vacuumMs = performance.now() - v0;
  const total = await owner.query<{ e: string; v: string }>(
    "SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid WHERE h.inhparent = 'audit.entries'::regclass) AS e, (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid WHERE h.inhparent = 'audit.entry_values'::regclass) AS v",
  );
  console.log(
    `generated in ${(loadMs / 1000).toFixed(0)} s (INSERT … SELECT generate_series, as the owner), VACUUM ANALYZE ${(vacuumMs / 1000).toFixed(0)} s; entries ${(Number(total.rows[0]!.e) / 2 ** 30).toFixed(2)} GiB, entry_values ${(Number(total.rows[0]!.v) / 2 ** 30).toFixed(2)} GiB (all months incl. section 1)\n`,
  );

  const asOf = MONTH(2026, 1);
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const month = () => {
    const m = rnd(12) + 1;
    return `2025-${String(m).padStart(2, '0')}`;
  };
  const cases: Array<[string, () => Query]> = [
    ['patient (≈50 matches)', () => ({ patient: `pt-${rnd(20_000)}` })],
    ['agent = an app (≈N/50 matches)', () => ({ agent: `app-${rnd(50)}` })],
    ['agent = a user, one month', () => ({ agent: `Practitioner/dr-${rnd(2000)}`, date: month() })],
    ['type + one month (≈N/24)', () => ({ subtype: 'token-issued', date: month() })],
    ['patient + subtype (AND)', () => ({ patient: `pt-${rnd(20_000)}`, subtype: 'token-introspected' })],
    ['agent = an app + subtype (AND, ≈N/100)', () => ({ agent: `app-${rnd(50)}`, subtype: 'token-introspected' })],
    ['no filter, first page', () => ({})],
    ['no filter, one day', () => ({ date: `${month()}-1${rnd(9)}` })],
    [
      'agent = an app, page at offset 5,000',
      () => ({ agent: `app-${rnd(50)}`, _cursor: Buffer.from(JSON.stringify([5000, asOf])).toString('base64url') }),
    ],
    ['no filter, page at offset 100,000', () => ({ _cursor: Buffer.from(JSON.stringify([100_000, asOf])).toString('base64url') })],
  ];
  console.log(`| query (_count=50, total counted) | p50 ms | p99 ms | total (last) |`);
  console.log('|---|---|---|---|');
  for (const [name, make] of cases) {
    const times: number[] = [];
    let last = 0;
    for (let s = 0; s < SAMPLES + 3; s++) {
      const q = { ...parseAuditSearch({ _count: '50', ...make() }), asOf };
      const t0 = performance.now();
      const r = await store.search(q);
      if (s >= 3) times.push(performance.now() - t0);
      last = r.total;
    }
    times.sort((a, b) => a - b);
    console.log(`| ${name} | ${fmt(pct(times, 50))} | ${fmt(pct(times, 99))} | ${last.toLocaleString('en')} |`);
  }
  console.log(`\n${SAMPLES} samples per query after 3 warm-up; whole run ${((Date.now() - started) / 1000).toFixed(0)} s.`);
} finally {
  await owner.end();
  await store.close();
  if (args.keep) console.log(`kept: ${db.ownerUrl}`);
  else await db.drop();
}
