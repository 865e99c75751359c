// Sign-ins per second: the whole password check of the sign-in page (network rate limit, account
// lookup, lock-out, argon2id verify at the configured cost), on one core and on every core, against
// Keycloak's published sizing of about 15 password logins per second per vCPU (its default hashing
// is PBKDF2 with 5 × 10⁵ rounds; ours is argon2id at OWASP's minimum unless configured higher).
//
// Usage: npm run bench:signin -- [--seconds 5]
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../src/platform/config/load.js';
import { createLogger } from '../src/platform/ops/logger.js';
import { connectRedis, createRedis } from '../src/platform/redis/connection.js';
import { Keyspace } from '../src/platform/redis/keyspace.js';
import { createUserStore } from '../src/records/directory/user-store.js';
import { LoginLockout } from '../src/records/directory/lockout.js';
import { SMART_USER_SCHEMA } from '../src/records/directory/model.js';
import { PasswordLogin } from '../src/smart/interaction/login/password-login.js';
import { IpRateLimiter } from '../src/smart/interaction/login/ip-limiter.js';
import { removePrefix } from './lib/target-ipc.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
const seconds = Number(values.seconds);
const KEYCLOAK_PER_VCPU = 15;

const config = loadConfig({
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  AUTHZ_REDIS_PREFIX: `bench-signin-${randomUUID().slice(0, 8)}:`,
  AUTHZ_LOG_LEVEL: 'silent',
});
const redis = createRedis(config.redis);
await connectRedis(redis);
const keyspace = new Keyspace(config.redis.prefix);
const lockout = new LoginLockout(redis, keyspace, config.login);
const users = createUserStore(config, redis, keyspace, lockout);
const password = 'correct horse battery staple 42';
await users.create({
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', SMART_USER_SCHEMA],
  userName: 'bench-clinician',
  password,
  [SMART_USER_SCHEMA]: { fhirUser: 'Practitioner/bench-1' },
});
const login = new PasswordLogin({
  users,
  lockout,
  // Each attempt from its own address: the per-network limit is not what is measured.
  ipLimiter: new IpRateLimiter(redis, keyspace, config.login.maxAttemptsPerIpPerMinute),
  passwords: config.passwords,
  logger: createLogger('silent'),
});

let address = 0;
async function signIns(concurrency: number): Promise<{ perSecond: number; p99: number }> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const started = performance.now();
        address++;
        const outcome = await login.attempt({
          username: 'bench-clinician',
          password,
          ip: `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address & 255}`,
        });
        if (!outcome.ok) throw new Error(`sign-in refused: ${outcome.reason}`);
        latencies.push(performance.now() - started);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / seconds, p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0 };
}

try {
  const cores = availableParallelism();
  const { memoryKiB, timeCost, parallelism } = config.passwords;
  console.log(`argon2id m=${memoryKiB} KiB, t=${timeCost}, p=${parallelism}; ${cores} cores; ${seconds} s per run`);
  await signIns(1); // warm-up
  const one = await signIns(1);
  const all = await signIns(cores);
  console.log('');
  console.log('| sign-in (password check) | per second | p99 | per core | Keycloak sizing |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| one at a time (one core) | ${one.perSecond.toFixed(1)} | ${one.p99.toFixed(0)} ms | ${one.perSecond.toFixed(1)} | ${KEYCLOAK_PER_VCPU}/s per vCPU |`,
  );
  console.log(
    `| ${cores} at a time (every core) | ${all.perSecond.toFixed(1)} | ${all.p99.toFixed(0)} ms | ${(all.perSecond / cores).toFixed(1)} | ${KEYCLOAK_PER_VCPU * cores}/s for ${cores} vCPUs |`,
  );
} finally {
  await removePrefix(redis, config.redis.prefix);
  redis.disconnect();
}
