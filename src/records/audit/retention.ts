import type { Config } from '../../platform/config/schema.js';
import type { AuditEvent } from './audit-event.js';
import { ChainAppender } from './append.js';
import { parseEvent, type ChainEntry } from './chain.js';
import { signCadence, type CheckpointStore, type CheckpointKeys } from './checkpoints.js';
import { disclosedPatients } from './disclosure.js';
import type { AuditStore } from './store.js';
import type { AuditTrail } from './trail.js';
import { prepareEvent } from './trail.js';
import { dropPrefix } from './drop-prefix.js';
import { withMaintenanceLock } from './maintenance-lock.js';
import type { Recordable } from './stored-event.js';
import { trailPurged, type PurgeFacts, type TrailActor } from './trail-events.js';
import { verifyChain, verifyPolicy, type VerifyReport } from './verify.js';

/**
 * Retention. A hash chain cannot lose entries in the middle and stay verifiable, so a purge only
 * ever removes a *prefix* of a chain, and signs a checkpoint at the cut first: `verify` then
 * starts from that checkpoint (the oldest one left) instead of the genesis.
 *
 * Disclosure events must outlive the general retention (audit.disclosureRetentionDays, for the
 * patient's accounting of disclosures). Keeping them in place would pin the whole prefix behind
 * them, so before the prefix goes they are copied, in order, into a second chain, the disclosure
 * archive, which has its own hashes, head and signed checkpoints and is verified the same way.
 * Its own prefix is purged once disclosures pass their retention. Search and read look in both
 * chains (the event id → location hashes), so an archived disclosure stays findable.
 *
 * Steps (each batch of at most BATCH entries): verify both chains (a purge must not destroy the
 * evidence of tampering), checkpoint the head (`purge-before`), copy kept disclosures to the
 * archive (idempotent: ids already archived are skipped, so a purge interrupted anywhere can simply
 * run again), checkpoint the cut, drop the removed seqs from the posting lists and the locations, XTRIM
 * the prefix, drop checkpoints before the cut; then the same for the archive; finally an
 * AuditEvent records the purge and a `purge-after` checkpoint anchors it.
 */

const DAY_MS = 86_400_000;
const BATCH = 1000;

export interface PurgeDeps {
  config: Config;
  store: AuditStore;
  checkpoints: CheckpointStore;
  keys: CheckpointKeys;
  trail: AuditTrail & { checkpoint?(reason: string): Promise<unknown> };
  actor: TrailActor;
  now?: Date;
}

export class PurgeRefusedError extends Error {
  override name = 'PurgeRefusedError';
  constructor(
    message: string,
    readonly report?: VerifyReport,
  ) {
    super(message);
  }
}

export interface PurgeResult extends PurgeFacts {
  event: AuditEvent;
}

export async function purge(deps: PurgeDeps): Promise<PurgeResult> {
  const { config, store, checkpoints } = deps;
  const { redis, keyspace } = store;
  const now = (deps.now ?? new Date()).getTime();
  const cutoff = now - config.audit.retentionDays * DAY_MS;
  const disclosureCutoff = now - config.audit.disclosureRetentionDays * DAY_MS;
  return withMaintenanceLock(
    redis,
    keyspace,
    () => new PurgeRefusedError('another purge or a migration is running (or was interrupted less than an hour ago)'),
    async () => {
      const shards = await store.shards();
      for (const chain of [...shards, 'archive'] as const) {
        const report = await verifyChain(store, deps.keys, chain, verifyPolicy(config));
        if (!report.ok)
          throw new PurgeRefusedError(`the ${chain} chain does not verify; nothing was purged: ${report.problem!.message}`, report);
      }
      const archiver = new ChainAppender(redis, keyspace, 'archive');
      let removed = 0;
      let archived = 0;
      let cutSeq = 0;

      // Each shard: the prefix of entries recorded before the cutoff.
      for (const chain of shards) {
        if (chain !== 'main' && !(await redis.exists(keyspace.auditHead(chain)))) continue;
        await checkpoints.write(chain, 'purge-before');
        for (;;) {
          const batch = await store.entries(chain, undefined, BATCH);
          const prefix = takePrefix(batch, cutoff);
          if (!prefix.length) break;
          const keep = prefix.filter(({ event }) => Date.parse(event.recorded) >= disclosureCutoff && disclosedPatients(event).length > 0);
          if (keep.length) {
            // The stored form is copied as it is, so a compact record stays compact in the archive.
            const copied = await archiver.append(
              keep.map(({ entry }) => prepareEvent(JSON.parse(entry.event) as Recordable, true, { mayRepeat: true })),
            );
            // The archive is held to the same cadence as the shards (verify.ts).
            await signCadence(checkpoints, 'archive', copied, config.audit.checkpointEvery);
            archived += keep.length;
          }
          const last = prefix[prefix.length - 1]!.entry;
          await checkpoints.writeAt(chain, { seq: last.seq, hash: last.hash, sid: last.sid }, 'purge-cut');
          await dropPrefix(
            store,
            chain,
            prefix.map((p) => p.entry),
          );
          if (chain === 'main') cutSeq = last.seq;
          removed += prefix.length - keep.length;
          if (prefix.length < batch.length) break;
        }
      }
      if (archived) await checkpoints.write('archive', 'archive');

      // Archive: disclosures past their own retention.
      let archiveRemoved = 0;
      for (;;) {
        const batch = await store.entries('archive', undefined, BATCH);
        const prefix = takePrefix(batch, disclosureCutoff);
        if (!prefix.length) break;
        const last = prefix[prefix.length - 1]!.entry;
        await checkpoints.writeAt('archive', { seq: last.seq, hash: last.hash, sid: last.sid }, 'purge-cut');
        await dropPrefix(
          store,
          'archive',
          prefix.map((p) => p.entry),
        );
        archiveRemoved += prefix.length;
        if (prefix.length < batch.length) break;
      }

      const facts: PurgeFacts = {
        removed,
        archived,
        archiveRemoved,
        cutSeq,
        cutoff: new Date(cutoff).toISOString(),
        disclosureCutoff: new Date(disclosureCutoff).toISOString(),
      };
      const event = trailPurged(config.issuer, { actor: deps.actor, facts });
      await deps.trail.record(event);
      for (const chain of shards)
        if (chain === 'main' || (await redis.exists(keyspace.auditHead(chain)))) await checkpoints.write(chain, 'purge-after');
      return { ...facts, event };
    },
  );
}

interface Parsed {
  entry: ChainEntry;
  event: AuditEvent;
}

/** The leading entries recorded before `cutoff` (stream order; stops at the first newer one). */
function takePrefix(batch: ChainEntry[], cutoff: number): Parsed[] {
  const out: Parsed[] = [];
  for (const entry of batch) {
    const event = parseEvent(entry);
    if (!(Date.parse(event.recorded) < cutoff)) break;
    out.push({ entry, event });
  }
  return out;
}
