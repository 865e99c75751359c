import { loadConfig } from '../platform/config/load.js';
import { createLogger } from '../platform/ops/logger.js';
import { openRuntime, type Runtime } from '../app/runtime.js';
import { createAuditTrail } from '../records/audit/trail.js';
import { AuditStore } from '../records/audit/store.js';
import { CheckpointStore, keyStoreCheckpointKeys, verifyCheckpoint } from '../records/audit/checkpoints.js';
import { CADENCE_START, verifyChain, verifyPolicy, type VerifyReport } from '../records/audit/verify.js';
import { AnchorReadError, createAnchor, readAnchor, type AnchorLine, type CheckpointAnchor } from '../records/audit/anchor.js';
import { LegacyTrailError, migrateTrail } from '../records/audit/migrate.js';
import { isChainName, type ChainName } from '../records/audit/chain.js';
import { AuditDatabaseError, auditDatabaseUrls, bindTrail, openAuditDatabase, type AuditDatabase } from '../records/audit/pg/connect.js';
import { redactUrl } from '../platform/ops/local-process.js';
import { migrateAuditDatabase } from '../records/audit/pg/migrate.js';
import { AuditShipper } from '../records/audit/shipper.js';
import { ResumeRefusedError, resumeIntake } from '../records/audit/pg/resume.js';
import { verifyChains } from '../records/audit/pg/verify.js';
import { purge, PurgeRefusedError } from '../records/audit/retention.js';
import { pgPurge, PgPurgeRefusedError } from '../records/audit/pg/retention.js';
import { parseAuditSearch } from '../records/audit/search-params.js';
import { searchAll } from '../records/audit/search.js';
import { trailExported } from '../records/audit/trail-events.js';
import { cliOperator } from './cli-audit.js';
import { FhirError } from '../domain/fhir/errors.js';
import { parseCommandArgs } from './args.js';
import { CliUsageError } from './errors.js';
import type { Out } from './clients.js';

export const AUDIT_USAGE = `Usage: smart-authz audit <command>
  verify [--chain NAME] [--anchor DIR|FILE]
                                      check the hash chains and signed checkpoints (one required every
                                      AUTHZ_AUDIT_CHECKPOINT_EVERY entries, the newest one recent), and with
                                      --anchor against the checkpoints anchored outside Redis; exit code 1 and
                                      the first altered, removed or reordered entry when they do not verify
  export [--since DATE] [--until DATE] [--patient ID]
                                      every event (oldest first) as NDJSON on stdout; the export is audited
  purge                               remove events past the retention (AUTHZ_AUDIT_RETENTION_DAYS); keep
                                      disclosures (AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS) in the archive chain;
                                      with PostgreSQL, drop whole months as its owner (AUTHZ_AUDIT_DATABASE_OWNER_URL),
                                      keeping their disclosures in audit.kept under signed retention cuts
  checkpoint                          sign the current chain heads now
  db resume                           after the Redis intake lost the trail (e.g. a Redis without its
                                      append-only file): continue every chain from PostgreSQL's head
  db migrate                          create or update the PostgreSQL audit schema as its owner
                                      (AUTHZ_AUDIT_DATABASE_OWNER_URL) and grant the application role
                                      (AUTHZ_AUDIT_DATABASE_URL) read and append rights only
  migrate                             rewrite a trail written by an earlier version (stream ids, indexes) in the
                                      current layout, and ship a trail kept in Redis so far to PostgreSQL when
                                      one is configured; run once with every server stopped`;

const EXPORT_PAGE = 500;

interface AuditParts {
  store: AuditStore;
  checkpoints: CheckpointStore;
  keys: ReturnType<typeof keyStoreCheckpointKeys>;
  trail: ReturnType<typeof createAuditTrail>;
  /** The trail's PostgreSQL home, when it has one. */
  db: AuditDatabase | undefined;
  /** Where the CLI's checkpoints are anchored, if anywhere. */
  anchor: CheckpointAnchor | undefined;
}

async function withAudit<T>(fn: (rt: Runtime, parts: AuditParts) => Promise<T>): Promise<T> {
  const config = { ...loadConfig(), devRedis: false };
  const rt = await openRuntime(config, createLogger('silent'));
  let db: AuditDatabase | undefined;
  try {
    db = await openAuditDatabase(config, rt.logger);
    if (db) await bindTrail(db, rt.redis, rt.keyspace);
  } catch (err) {
    await db?.close();
    await rt.close();
    if (err instanceof AuditDatabaseError) throw new CliUsageError(err.message);
    throw err;
  }
  const keys = keyStoreCheckpointKeys(rt.redis, rt.keyspace, config.keyEncryptionSecret);
  // Checkpoints the CLI signs (purge, manual) are anchored like the server's; it signs none on a timer.
  const anchor = createAnchor({ config, logger: rt.logger });
  const trail = createAuditTrail({
    config,
    redis: rt.redis,
    keyspace: rt.keyspace,
    logger: rt.logger,
    checkpointKeys: keys,
    intervalCheckpoints: false,
    ...(anchor ? { anchor } : {}),
  });
  try {
    return await fn(rt, {
      store: new AuditStore(rt.redis, rt.keyspace, config.audit.chains, db?.home),
      checkpoints: new CheckpointStore(rt.redis, rt.keyspace, keys, config.issuer, anchor),
      keys,
      trail,
      db,
      anchor,
    });
  } finally {
    await trail.close();
    await anchor?.close();
    await db?.close();
    await rt.close();
  }
}

/**
 * With a PostgreSQL home, a chain is verified in two parts and at their junction: PostgreSQL from
 * its genesis (or retention's cut) to its end, Redis from the shipper's signed cut to its head, and
 * the two must hold the same entry where they meet (hash chains that agree at one seq agree on
 * everything before it).
 */
async function verifyJunction(
  db: AuditDatabase,
  store: AuditStore,
  chain: ChainName,
  redisReport: VerifyReport,
): Promise<string | undefined> {
  const pgHigh = await db.store.highestSeq(chain);
  // Redis starts after a signed cut; PostgreSQL must reach it (its copy of that checkpoint is checked there).
  if (redisReport.anchorSeq > pgHigh)
    return `Redis starts after seq ${redisReport.anchorSeq}, but PostgreSQL holds only up to seq ${pgHigh}: entries ${pgHigh + 1}–${redisReport.anchorSeq} are in neither`;
  // Entries both hold (shipped, not yet dropped from Redis) must be the same: compare the last of them.
  const meet = Math.min(pgHigh, redisReport.lastSeq);
  if (meet <= redisReport.anchorSeq) return undefined;
  const [inPg] = await db.store.entries(chain, meet - 1, 1);
  const [inRedis] = await store.entriesAt([{ chain, seq: meet }]);
  if (!inPg || !inRedis || inPg.hash !== inRedis.hash) return `PostgreSQL and Redis hold different entries at seq ${meet}`;
  return undefined;
}

export async function audit(args: string[], out: Out): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case 'verify': {
      const { values } = parseCommandArgs(rest, { chain: { type: 'string' }, anchor: { type: 'string' } }, 0);
      if (values.chain !== undefined && !isChainName(values.chain))
        throw new CliUsageError('--chain must be main, main-<n> (a shard) or archive');
      if (values.anchor === '') throw new CliUsageError('--anchor needs the anchor directory or file');
      return withAudit(async (rt, { store, keys, db }) => {
        const chains = values.chain ? [values.chain as ChainName] : await store.chains();
        let anchor: AnchorLine[] | undefined;
        if (values.anchor !== undefined) {
          try {
            anchor = await readAnchor(values.anchor, rt.config.redis.prefix);
          } catch (err) {
            if (err instanceof AnchorReadError) throw new CliUsageError(err.message);
            throw err;
          }
        }
        let failed = false;
        if (db) {
          const reports = await verifyChains(db.store, {
            keys,
            every: rt.config.audit.checkpointEvery,
            chains: (await db.store.chains()).filter((c) => !values.chain || c === values.chain),
          });
          for (const r of reports) {
            if (r.ok) {
              const from = r.startSeq ? `, from the signed retention cut at seq ${r.startSeq}` : '';
              const kept = r.retentionCuts ? `, ${r.kept} kept disclosures match ${r.retentionCuts} signed retention cuts` : '';
              out(
                `${r.chain} (PostgreSQL): OK, ${r.entries} entries (seq ${r.startSeq + 1}–${r.lastSeq}${from}), ${r.checkpoints} signed checkpoints${kept}`,
              );
            } else {
              failed = true;
              out(`${r.chain} (PostgreSQL): FAILED: ${r.problem!.kind} entry at seq ${r.problem!.seq}: ${r.problem!.message}`);
            }
          }
        }
        for (const chain of chains) {
          const r = await verifyChain(store, keys, chain, verifyPolicy(rt.config, { anchor }));
          const where = db ? ' (Redis)' : '';
          const junction = db && r.ok ? await verifyJunction(db, store, chain, r) : undefined;
          if (r.ok && !junction) {
            const anchored = anchor
              ? `, matches ${anchor.filter((l) => l.chain === chain && l.seq >= r.anchorSeq).length} anchored checkpoints`
              : '';
            out(
              `${chain}${where}: OK, ${r.entries} entries (seq ${r.anchorSeq + 1}–${r.lastSeq}${r.anchorSeq ? `, from the signed cut at seq ${r.anchorSeq}` : ', from the genesis'}), ${r.checkpoints} signed checkpoints${anchored}`,
            );
          } else if (junction) {
            failed = true;
            out(`${chain}: FAILED: ${junction}`);
          } else {
            failed = true;
            const p = r.problem!;
            out(`${chain}${where}: FAILED: ${p.kind} entry at seq ${p.seq}${p.sid ? ` (stream id ${p.sid})` : ''}: ${p.message}`);
          }
        }
        if (failed) process.exitCode = 1;
      });
    }
    case 'export': {
      const { values } = parseCommandArgs(rest, { since: { type: 'string' }, until: { type: 'string' }, patient: { type: 'string' } }, 0);
      const query: Record<string, string | string[]> = { _sort: 'date' };
      const dates = [...(values.since ? [`ge${values.since}`] : []), ...(values.until ? [`le${values.until}`] : [])];
      if (dates.length) query.date = dates;
      if (values.patient) query.patient = values.patient;
      let q;
      try {
        q = parseAuditSearch(query);
      } catch (err) {
        if (err instanceof FhirError) throw new CliUsageError(err.diagnostics);
        throw err;
      }
      return withAudit(async (rt, { store, trail }) => {
        const asOf = Date.now() + 1;
        let count = 0;
        try {
          for await (const events of searchAll(
            store,
            { ...q, asOf, limits: { maxCandidates: rt.config.audit.searchMaxCandidates } },
            EXPORT_PAGE,
          )) {
            for (const e of events) out(JSON.stringify(e));
            count += events.length;
          }
        } catch (err) {
          // A search too costly to run is the operator's to narrow, not a crash.
          throw err instanceof FhirError ? new CliUsageError(err.diagnostics) : err;
        }
        const description = new URLSearchParams(
          Object.entries(values).filter((e): e is [string, string] => typeof e[1] === 'string'),
        ).toString();
        await trail.record(trailExported(rt.config.issuer, { actor: { operator: cliOperator() }, query: description, count }));
      });
    }
    case 'purge':
      parseCommandArgs(rest, {}, 0);
      return withAudit(async (rt, { store, checkpoints, keys, trail, db, anchor }) => {
        if (db) {
          // The trail lives in PostgreSQL: Redis holds only the shipping tail, retention is there.
          try {
            const r = await pgPurge({ config: rt.config, ownerUrl: db.ownerUrl, keys, anchor, trail, actor: { operator: cliOperator() } });
            out(
              `dropped ${r.months.length ? `the months ${r.months.join(', ')}` : 'no month'} (before ${r.cutoff.slice(0, 7)}): ${r.removed} events removed, ${r.archived} disclosures kept until their own retention; ` +
                `${r.keptMonths.length ? `kept disclosures of ${r.keptMonths.join(', ')} (${r.archiveRemoved}) removed` : 'no kept month expired'} (before ${r.disclosureCutoff.slice(0, 7)})`,
            );
            for (const [chain, seq] of Object.entries(r.cuts))
              out(`${chain} (PostgreSQL) now starts after the signed retention cut at seq ${seq}`);
          } catch (err) {
            if (err instanceof PgPurgeRefusedError) {
              out(`purge refused: ${err.message}`);
              process.exitCode = 1;
              return;
            }
            throw err;
          }
          return;
        }
        try {
          const r = await purge({ config: rt.config, store, checkpoints, keys, trail, actor: { operator: cliOperator() } });
          out(
            `purged ${r.removed} events recorded before ${r.cutoff}; ${r.archived} disclosures moved to the archive; ${r.archiveRemoved} archived disclosures recorded before ${r.disclosureCutoff} removed; the main chain now starts after seq ${r.cutSeq}`,
          );
        } catch (err) {
          if (err instanceof PurgeRefusedError) {
            out(`purge refused: ${err.message}`);
            process.exitCode = 1;
            return;
          }
          throw err;
        }
      });
    case 'migrate':
      parseCommandArgs(rest, {}, 0);
      return withAudit(async (rt, { store, keys, checkpoints, db }) => {
        try {
          const moved = await migrateTrail(store);
          for (const chain of ['main', 'archive'] as const) {
            await startCadence(rt, store, keys, checkpoints, chain, out);
            // Every server is stopped for a migration: the newest checkpoint may well be old.
            const report = await verifyChain(store, keys, chain, { ...verifyPolicy(rt.config), maxAgeSeconds: undefined });
            out(
              `${chain}: ${moved[chain]} entries migrated; ${report.ok ? `verifies (${report.entries} entries)` : `FAILED: ${report.problem!.message}`}`,
            );
            if (!report.ok) {
              process.exitCode = 1;
              return;
            }
          }
          if (moved.main || moved.archive) out('the old streams are kept as <stream>:legacy; delete them once you are satisfied');
          if (db) {
            // A trail kept in Redis until now moves to its PostgreSQL home before any server ships.
            const shipper = new AuditShipper({
              redis: rt.redis,
              keyspace: rt.keyspace,
              store,
              pg: db.store,
              checkpoints,
              logger: rt.logger,
              options: { trimDelayMs: 0, trimEveryMs: 0 },
            });
            const shipped = await shipper.drain();
            await shipper.stop();
            out(`shipped ${shipped} entries to PostgreSQL (${redactUrl(db.ownerUrl)})`);
          }
        } catch (err) {
          if (err instanceof LegacyTrailError) throw new CliUsageError(err.message);
          throw err;
        }
      });
    case 'db': {
      const [sub, ...more] = rest;
      if (sub === 'resume') {
        parseCommandArgs(more, {}, 0);
        return resumeFromDatabase(out);
      }
      if (sub !== 'migrate') throw new CliUsageError('usage: smart-authz audit db migrate | smart-authz audit db resume');
      parseCommandArgs(more, {}, 0);
      let where;
      try {
        where = auditDatabaseUrls(loadConfig());
      } catch (err) {
        if (err instanceof AuditDatabaseError) throw new CliUsageError(err.message);
        throw err;
      }
      if (!where) throw new CliUsageError('no audit database is configured (AUTHZ_AUDIT_DATABASE_URL)');
      const { ownerUrl, appRole } = where;
      try {
        const ran = await migrateAuditDatabase(ownerUrl, appRole ? { appRole } : {});
        out(
          ran.length
            ? `applied ${ran.join(', ')} to ${redactUrl(ownerUrl)}`
            : `the audit database schema at ${redactUrl(ownerUrl)} is current`,
        );
        if (appRole) out(`granted ${appRole} read and append rights (no UPDATE, DELETE or TRUNCATE)`);
      } catch (err) {
        throw new CliUsageError(`cannot migrate the audit database at ${redactUrl(ownerUrl)}: ${(err as Error).message}`);
      }
      return;
    }
    case 'checkpoint':
      parseCommandArgs(rest, {}, 0);
      return withAudit(async (rt, { store, checkpoints }) => {
        for (const chain of await store.chains()) {
          if (chain !== 'main' && !(await rt.redis.exists(rt.keyspace.auditHead(chain)))) continue;
          const cp = await checkpoints.write(chain, 'manual');
          out(`${chain}: signed checkpoint at seq ${cp.seq} (hash ${cp.hash})`);
        }
      });
    default:
      out(AUDIT_USAGE);
      if (command && command !== 'help') process.exitCode = 2;
  }
}

/** `audit db resume`: the Redis intake lost the trail; continue every chain from PostgreSQL (pg/resume.ts). */
async function resumeFromDatabase(out: Out): Promise<void> {
  const config = { ...loadConfig(), devRedis: false };
  const rt = await openRuntime(config, createLogger('silent'));
  let db: AuditDatabase | undefined;
  const anchor = createAnchor({ config, logger: rt.logger });
  try {
    db = await openAuditDatabase(config, rt.logger);
    if (!db) throw new CliUsageError('no audit database is configured (AUTHZ_AUDIT_DATABASE_URL)');
    const keys = keyStoreCheckpointKeys(rt.redis, rt.keyspace, config.keyEncryptionSecret);
    const checkpoints = new CheckpointStore(rt.redis, rt.keyspace, keys, config.issuer, anchor);
    const resumed = await resumeIntake({
      db,
      redis: rt.redis,
      keyspace: rt.keyspace,
      checkpoints,
      keys,
      every: config.audit.checkpointEvery,
    });
    for (const { chain, seq } of resumed) out(`${chain}: continues after seq ${seq} (signed ship-cut checkpoint)`);
    out(
      resumed.length
        ? 'the intake continues the trail PostgreSQL holds; servers may start'
        : 'PostgreSQL holds no entries yet; the intake continues its trail',
    );
  } catch (err) {
    if (err instanceof ResumeRefusedError || err instanceof AuditDatabaseError) throw new CliUsageError(err.message);
    throw err;
  } finally {
    await anchor?.close();
    await db?.close();
    await rt.close();
  }
}

/**
 * A trail written before checkpoints were required at every AUTHZ_AUDIT_CHECKPOINT_EVERY-th entry
 * has none there. If the chain verifies otherwise, a signed `cadence-start` at its head holds
 * everything after it to the cadence (verify.ts); once one exists, nothing more is written.
 */
async function startCadence(
  rt: Runtime,
  store: AuditStore,
  keys: ReturnType<typeof keyStoreCheckpointKeys>,
  checkpoints: CheckpointStore,
  chain: 'main' | 'archive',
  out: Out,
): Promise<void> {
  const policy = { ...verifyPolicy(rt.config), maxAgeSeconds: undefined };
  const strict = await verifyChain(store, keys, chain, policy);
  if (strict.ok || strict.problem?.kind !== 'checkpoint' || !/where one is required/.test(strict.problem.message)) return;
  const listed = await checkpoints.list(chain);
  const already = await Promise.all(listed.map((c) => verifyCheckpointReason(c.jws, keys)));
  if (already.includes(CADENCE_START)) return;
  const lenient = await verifyChain(store, keys, chain, { ...policy, every: Number.POSITIVE_INFINITY });
  if (!lenient.ok) return;
  const cp = await checkpoints.write(chain, CADENCE_START);
  out(`${chain}: signed the cadence start at seq ${cp.seq}; from there a checkpoint is required every ${policy.every} entries`);
}

async function verifyCheckpointReason(jws: string, keys: ReturnType<typeof keyStoreCheckpointKeys>): Promise<string | undefined> {
  return verifyCheckpoint(jws, await keys.verificationKeys()).then(
    (p) => p.reason,
    () => undefined,
  );
}
