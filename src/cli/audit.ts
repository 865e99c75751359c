import { loadConfig } from '../config/load.js';
import { createLogger } from '../ops/logger.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { createAuditTrail } from '../audit/trail.js';
import { AuditStore } from '../audit/store.js';
import { CheckpointStore, keyStoreCheckpointKeys, verifyCheckpoint } from '../audit/checkpoints.js';
import { CADENCE_START, verifyChain, verifyPolicy } from '../audit/verify.js';
import { AnchorReadError, createAnchor, readAnchor, type AnchorLine } from '../audit/anchor.js';
import { LegacyTrailError, migrateTrail } from '../audit/migrate.js';
import { isChainName, type ChainName } from '../audit/chain.js';
import { purge, PurgeRefusedError } from '../audit/retention.js';
import { parseAuditSearch } from '../audit/search-params.js';
import { searchAll } from '../audit/search.js';
import { trailExported } from '../audit/trail-events.js';
import { cliOperator } from '../audit/hooks/cli-audit.js';
import { FhirError } from '../http/fhir-api.js';
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
                                      disclosures (AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS) in the archive chain
  checkpoint                          sign the current chain heads now
  migrate                             rewrite a trail written by an earlier version (stream ids, indexes) in the
                                      current layout; run once with every server stopped`;

const EXPORT_PAGE = 500;

async function withAudit<T>(fn: (rt: Runtime, parts: { store: AuditStore; checkpoints: CheckpointStore; keys: ReturnType<typeof keyStoreCheckpointKeys>; trail: ReturnType<typeof createAuditTrail> }) => Promise<T>): Promise<T> {
  const config = { ...loadConfig(), devRedis: false };
  const rt = await openRuntime(config, createLogger('silent'));
  const keys = keyStoreCheckpointKeys(rt.redis, rt.keyspace, config.keyEncryptionSecret);
  // Checkpoints the CLI signs (purge, manual) are anchored like the server's; it signs none on a timer.
  const anchor = createAnchor({ config, logger: rt.logger });
  const trail = createAuditTrail({ config, redis: rt.redis, keyspace: rt.keyspace, logger: rt.logger, checkpointKeys: keys, intervalCheckpoints: false, ...(anchor ? { anchor } : {}) });
  try {
    return await fn(rt, { store: new AuditStore(rt.redis, rt.keyspace, config.audit.chains), checkpoints: new CheckpointStore(rt.redis, rt.keyspace, keys, config.issuer, anchor), keys, trail });
  } finally {
    await trail.close();
    await anchor?.close();
    await rt.close();
  }
}

export async function audit(args: string[], out: Out): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case 'verify': {
      const { values } = parseCommandArgs(rest, { chain: { type: 'string' }, anchor: { type: 'string' } }, 0);
      if (values.chain !== undefined && !isChainName(values.chain)) throw new CliUsageError('--chain must be main, main-<n> (a shard) or archive');
      if (values.anchor === '') throw new CliUsageError('--anchor needs the anchor directory or file');
      return withAudit(async (rt, { store, keys }) => {
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
        for (const chain of chains) {
          const r = await verifyChain(store, keys, chain, verifyPolicy(rt.config, { anchor }));
          if (r.ok) {
            const anchored = anchor ? `, matches ${anchor.filter((l) => l.chain === chain && l.seq >= r.anchorSeq).length} anchored checkpoints` : '';
            out(`${chain}: OK, ${r.entries} entries (seq ${r.anchorSeq + 1}–${r.lastSeq}${r.anchorSeq ? `, from the signed cut at seq ${r.anchorSeq}` : ', from the genesis'}), ${r.checkpoints} signed checkpoints${anchored}`);
          } else {
            failed = true;
            const p = r.problem!;
            out(`${chain}: FAILED: ${p.kind} entry at seq ${p.seq}${p.sid ? ` (stream id ${p.sid})` : ''}: ${p.message}`);
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
          for await (const refs of searchAll(store, { ...q, asOf, limits: { maxCandidates: rt.config.audit.searchMaxCandidates } }, EXPORT_PAGE)) {
            for (const e of await store.eventsAt(refs)) out(JSON.stringify(e));
            count += refs.length;
          }
        } catch (err) {
          // A search too costly to run is the operator's to narrow, not a crash.
          throw err instanceof FhirError ? new CliUsageError(err.diagnostics) : err;
        }
        const description = new URLSearchParams(Object.entries(values).filter((e): e is [string, string] => typeof e[1] === 'string')).toString();
        await trail.record(trailExported(rt.config.issuer, { actor: { operator: cliOperator() }, query: description, count }));
      });
    }
    case 'purge':
      parseCommandArgs(rest, {}, 0);
      return withAudit(async (rt, { store, checkpoints, keys, trail }) => {
        try {
          const r = await purge({ config: rt.config, store, checkpoints, keys, trail, actor: { operator: cliOperator() } });
          out(`purged ${r.removed} events recorded before ${r.cutoff}; ${r.archived} disclosures moved to the archive; ${r.archiveRemoved} archived disclosures recorded before ${r.disclosureCutoff} removed; the main chain now starts after seq ${r.cutSeq}`);
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
      return withAudit(async (rt, { store, keys, checkpoints }) => {
        try {
          const moved = await migrateTrail(store);
          for (const chain of ['main', 'archive'] as const) {
            await startCadence(rt, store, keys, checkpoints, chain, out);
            // Every server is stopped for a migration: the newest checkpoint may well be old.
            const report = await verifyChain(store, keys, chain, { ...verifyPolicy(rt.config), maxAgeSeconds: undefined });
            out(`${chain}: ${moved[chain]} entries migrated; ${report.ok ? `verifies (${report.entries} entries)` : `FAILED: ${report.problem!.message}`}`);
            if (!report.ok) {
              process.exitCode = 1;
              return;
            }
          }
          if (moved.main || moved.archive) out('the old streams are kept as <stream>:legacy; delete them once you are satisfied');
        } catch (err) {
          if (err instanceof LegacyTrailError) throw new CliUsageError(err.message);
          throw err;
        }
      });
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

/**
 * A trail written before checkpoints were required at every AUTHZ_AUDIT_CHECKPOINT_EVERY-th entry
 * has none there. If the chain verifies otherwise, a signed `cadence-start` at its head holds
 * everything after it to the cadence (verify.ts); once one exists, nothing more is written.
 */
async function startCadence(rt: Runtime, store: AuditStore, keys: ReturnType<typeof keyStoreCheckpointKeys>, checkpoints: CheckpointStore, chain: 'main' | 'archive', out: Out): Promise<void> {
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
