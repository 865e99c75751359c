// User lookup by userName as the directory grows: inserts users through the store (no passwords,
// so hashing does not dominate) and measures findByUserName latency at 1k, 10k and 100k users.
// Usage: REDIS_URL=redis://127.0.0.1:6379 npm run bench:scim [-- --lookups 5000 --sizes 1000,10000,100000]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connectRedis, createRedis } from '../src/platform/redis/connection.js';
import { Keyspace } from '../src/platform/redis/keyspace.js';
import { UserStore } from '../src/records/directory/user-store.js';

const { values } = parseArgs({
  options: { lookups: { type: 'string', default: '5000' }, sizes: { type: 'string', default: '1000,10000,100000' } },
});
const lookups = Number(values.lookups);
const sizes = values.sizes.split(',').map(Number);

const redis = createRedis({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: 'bench:' });
await connectRedis(redis);
const keyspace = new Keyspace(`bench-scim-${randomUUID().slice(0, 8)}:`);
const store = new UserStore({
  redis,
  keyspace,
  passwords: { memoryKiB: 19_456, timeCost: 2, parallelism: 1 },
  limits: { maxFilterScan: 10_000, maxPageSize: 200 },
});

const userName = (i: number) => `User.${i}@Hospital.Example.org`;

async function insert(from: number, to: number): Promise<void> {
  const CONCURRENCY = 256;
  let next = from;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < to) {
        const i = next++;
        await store.create({
          userName: userName(i),
          externalId: `ext-${i}`,
          name: { givenName: `Given${i}`, familyName: `Family${i % 997}` },
          emails: [{ value: `user.${i}@hospital.example.org`, type: 'work', primary: true }],
          'urn:smart-authz:params:scim:schemas:extension:smart:2.0:User': {
            fhirUser: `Practitioner/p${i}`,
            clearance: 'N',
            purposesOfUse: ['TREAT'],
          },
        });
      }
    }),
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(size: number): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  // Warm-up, then one lookup at a time: latency, not throughput. Names in another case than stored.
  for (let i = 0; i < 1000; i++) await store.findByUserName(userName(Math.floor(Math.random() * size)).toLowerCase());
  for (let i = 0; i < lookups; i++) {
    const n = Math.floor(Math.random() * size);
    const started = process.hrtime.bigint();
    const user = await store.findByUserName(userName(n).toUpperCase());
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (user?.externalId !== `ext-${n}`) throw new Error(`lookup of user ${n} failed`);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const memoryBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
const results: Array<{ size: number; p50: number; p99: number; insertSeconds: number }> = [];
let inserted = 0;
for (const size of sizes) {
  const started = Date.now();
  await insert(inserted, size);
  inserted = size;
  const insertSeconds = (Date.now() - started) / 1000;
  const { p50, p99 } = await measure(size);
  results.push({ size, p50, p99, insertSeconds });
  console.log(
    `${size.toLocaleString('en')} users (inserted in ${insertSeconds.toFixed(1)} s): findByUserName p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`,
  );
}
const memoryAfter = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
const first = results[0]!;
for (const r of results.slice(1)) {
  console.log(
    `${r.size.toLocaleString('en')} vs ${first.size.toLocaleString('en')}: p50 x${(r.p50 / first.p50).toFixed(2)}, p99 x${(r.p99 / first.p99).toFixed(2)}`,
  );
}
console.log(`Redis memory: about ${Math.round((memoryAfter - memoryBefore) / inserted)} bytes per user (record and indexes)`);

let cursor = '0';
do {
  const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${keyspace.prefix}*`, 'COUNT', 1000);
  cursor = nextCursor;
  if (keys.length) await redis.unlink(...keys);
} while (cursor !== '0');
redis.disconnect();
