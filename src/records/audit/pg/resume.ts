import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import { isChainName, type ChainName } from '../chain.js';
import type { CheckpointKeys, CheckpointStore } from '../checkpoints.js';
import { streamId } from '../postings.js';
import type { AuditDatabase } from './connect.js';
import { verifyChains } from './verify.js';

export class ResumeRefusedError extends Error {
  override name = 'ResumeRefusedError';
}

/**
 * Recovery after the Redis intake lost the trail (a Redis restarted without its append-only
 * file, a new Redis) while PostgreSQL holds it: every chain continues from PostgreSQL's head
 * instead of starting a new trail that would collide with the stored one.
 *
 * Refuses unless the intake holds no chain and every chain verifies in PostgreSQL. Then, per chain:
 * signs a `ship-cut` checkpoint at PostgreSQL's head (Redis verifies from there, and PostgreSQL
 * stores it too), sets the chain head and the shipper's watermark in Redis to it; finally the
 * intake takes PostgreSQL's trail id. What the intake held and had not shipped when it was lost is
 * gone; verify cannot see it, so the operator's incident record has to (docs/audit-postgres.md).
 */
export async function resumeIntake(deps: {
  db: AuditDatabase;
  redis: RedisClient;
  keyspace: Keyspace;
  checkpoints: CheckpointStore;
  keys: CheckpointKeys;
  every: number;
}): Promise<Array<{ chain: ChainName; seq: number }>> {
  const { db, redis, keyspace, checkpoints } = deps;
  const chains = (await db.store.chains()).filter(isChainName);
  for (const chain of chains) {
    if (await redis.exists(keyspace.auditHead(chain), keyspace.auditStream(chain))) {
      throw new ResumeRefusedError(`the Redis intake still holds the ${chain} chain: resume is only for an intake that lost the trail`);
    }
  }
  const { rows } = await db.store.pool.query<{ id: string }>('SELECT id FROM audit.trail_identity');
  const trailId = rows[0]?.id;
  if (!trailId) throw new ResumeRefusedError('the audit database holds no trail yet: nothing to resume');
  const reports = await verifyChains(db.store, { keys: deps.keys, every: deps.every });
  const bad = reports.find((r) => !r.ok);
  if (bad)
    throw new ResumeRefusedError(`the ${bad.chain} chain does not verify in PostgreSQL, so nothing was resumed: ${bad.problem!.message}`);

  const resumed: Array<{ chain: ChainName; seq: number }> = [];
  for (const chain of chains) {
    const seq = await db.store.highestSeq(chain);
    if (!seq) continue;
    const [last] = await db.store.entries(chain, seq - 1, 1);
    if (!last || last.seq !== seq)
      throw new ResumeRefusedError(
        `the ${chain} chain's head (seq ${seq}) is not in PostgreSQL any more (retention dropped it): nothing to continue from`,
      );
    const signed = await checkpoints.writeAt(chain, { seq, hash: last.hash, sid: streamId(seq) }, 'ship-cut');
    await db.store.insertCheckpoint(signed.jws);
    const multi = redis.multi();
    multi.hset(keyspace.auditHead(chain), 'seq', String(seq), 'hash', last.hash, 't', String(last.t));
    multi.hset(keyspace.auditShipped(chain), 'seq', String(seq), 't', String(last.t), 'at', String(Date.now()));
    await multi.exec();
    if (chain !== 'main' && chain !== 'archive') await redis.sadd(keyspace.auditShards(), chain);
    resumed.push({ chain, seq });
  }
  await redis.set(keyspace.auditTrailId(), trailId);
  return resumed;
}
