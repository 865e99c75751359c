import pg from 'pg';
import type { Config } from '../../../platform/config/schema.js';
import type { AuditEvent } from '../audit-event.js';
import type { CheckpointAnchor } from '../anchor.js';
import { isChainName } from '../chain.js';
import { signCheckpoint, type CheckpointKeys, type CheckpointPayload, type RetentionCutFacts } from '../checkpoints.js';
import { trailPurged, type PurgeFacts, type TrailActor } from '../trail-events.js';
import { encodeTerm } from './terms.js';
import { EMPTY_KEPT_DIGEST, KeptDigest, monthKey } from './kept.js';
import { monthStart } from './partitions.js';
import { PgAuditStore, entryOf, ENTRY_COLUMNS } from './store.js';
import { verifyChains, type PgVerifyReport } from './verify.js';

/**
 * Retention of the trail's PostgreSQL home (`smart-authz audit purge` when the trail lives there;
 * docs/audit-postgres.md "Retention"). Runs as the schema owner: the application role may not
 * create, detach or drop partitions, nor write audit.kept.
 *
 * - `before` = the first instant of the UTC month of (now − audit.retentionDays): every month of
 *   audit.entries wholly before it is dropped, oldest first, one transaction per month.
 * - `keptFrom` = the same for audit.disclosureRetentionDays: of a dropped month at or after it,
 *   the disclosure events (a `disclosure=` search value: disclosedPatients() non-empty) are first
 *   copied byte for byte, search values included, into audit.kept (partitioned by the same
 *   month). Kept months before `keptFrom` are dropped in their turn. Month granularity keeps
 *   everything at least as long as its retention, and at most a month longer.
 * - Before a month goes, a `retention-cut` checkpoint is signed per chain with the server's
 *   checkpoint keys at the chain's new cut (its last entry of the month), naming the dropped
 *   range, the month and a digest over the kept entries (kept.ts); it is stored in
 *   audit.checkpoints and the cut in audit.retention_cuts in the same transaction that drops the
 *   partitions, and written to the anchor once committed. Expiring kept months get a floor-only
 *   checkpoint per chain that had entries in them. Verify (verify.ts) starts each chain after its
 *   signed cut and checks the kept entries against the signed digests.
 *
 * Before anything is dropped, what is about to go (the entries before `before`, the kept months
 * before `keptFrom`) is verified: a purge must not destroy the evidence of tampering. A run that
 * stops half way leaves whole months done or not done; running it again finishes the job.
 * Finally an AuditEvent records the purge (it goes through the Redis intake like any other).
 */

const DAY_MS = 86_400_000;
const LOCK = 'smart-authz:audit:retention';

export class PgPurgeRefusedError extends Error {
  override name = 'PgPurgeRefusedError';
  constructor(
    message: string,
    readonly reports?: PgVerifyReport[],
  ) {
    super(message);
  }
}

export interface PgPurgeDeps {
  config: Config;
  /** The schema owner (AUTHZ_AUDIT_DATABASE_OWNER_URL, else the database URL). */
  ownerUrl: string;
  keys: CheckpointKeys;
  anchor?: CheckpointAnchor | undefined;
  /** Where the purge's own AuditEvent is recorded. */
  trail: { record(event: AuditEvent): Promise<unknown> };
  actor: TrailActor;
  now?: Date;
  /** Rows per page when digesting kept entries and verifying (default 1000). */
  page?: number;
}

export interface PgPurgeResult extends PurgeFacts {
  /** Months (`YYYY-MM`) of audit.entries dropped. */
  months: string[];
  /** Months of audit.kept dropped (past the disclosure retention). */
  keptMonths: string[];
  /** Each chain's cut after the run (the last entry dropped), for the chains retention has cut. */
  cuts: Record<string, number>;
  event: AuditEvent;
}

interface Partition {
  name: string;
  parent: 'entries' | 'entry_values' | 'kept' | 'kept_values';
  /** First instant of its month (ms). */
  from: number;
}

const DISCLOSURE_PREFIX = encodeTerm('disclosure', '');

export async function pgPurge(deps: PgPurgeDeps): Promise<PgPurgeResult> {
  const { config } = deps;
  const now = (deps.now ?? new Date()).getTime();
  const before = monthStart(now - config.audit.retentionDays * DAY_MS).getTime();
  const keptFrom = monthStart(now - config.audit.disclosureRetentionDays * DAY_MS).getTime();
  const keptFromKey = monthKey(keptFrom);
  const page = deps.page ?? 1000;

  const client = new pg.Client({ connectionString: deps.ownerUrl, application_name: 'smart-authz-audit-retention' });
  client.on('error', () => {});
  await client.connect();
  const reader = new PgAuditStore(deps.ownerUrl, { max: 2, statementTimeoutMs: 0 });
  let locked = false;
  try {
    const { rows: owner } = await client.query<{ owner: boolean }>(
      "SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS owner FROM pg_class c WHERE c.oid = 'audit.entries'::regclass",
    );
    if (!owner[0]?.owner)
      throw new PgPurgeRefusedError(
        'retention must connect as the owner of the audit schema (AUTHZ_AUDIT_DATABASE_OWNER_URL): the application role may not drop anything',
      );
    locked = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [LOCK])).rows[0]!.ok;
    if (!locked) throw new PgPurgeRefusedError('another retention run holds the lock on this audit database');

    const reports = await verifyChains(reader, {
      keys: deps.keys,
      every: config.audit.checkpointEvery,
      entriesBefore: before,
      keptBefore: keptFromKey,
      page,
    });
    const bad = reports.filter((r) => !r.ok);
    if (bad.length) {
      const p = bad[0]!.problem!;
      throw new PgPurgeRefusedError(
        `the ${p.chain} chain does not verify in PostgreSQL; nothing was purged: ${p.kind} at seq ${p.seq}: ${p.message}`,
        reports,
      );
    }

    const parts = await partitions(client);
    const facts = { removed: 0, kept: 0, keptRemoved: 0 };
    const signed: Array<CheckpointPayload & { jws: string }> = [];
    const anchorAll = () => {
      for (const s of signed.splice(0))
        deps.anchor?.record({ chain: s.chain, seq: s.seq, hash: s.hash, iat: s.iat, reason: s.reason, jws: s.jws });
    };

    // Kept months past the disclosure retention first: they are older than anything else dropped.
    const expiring = parts.filter((p) => (p.parent === 'kept' || p.parent === 'kept_values') && p.from < keptFrom);
    const keptMonths = [...new Set(expiring.map((p) => monthKey(p.from)))].sort();
    if (expiring.length) {
      await inTransaction(client, async () => {
        const keptParts = expiring.filter((p) => p.parent === 'kept');
        const { rows } = keptParts.length
          ? await client.query<{ chain: string; n: string }>(
              `SELECT chain, count(*) AS n FROM (${keptParts.map((p) => `SELECT chain FROM audit.${pg.escapeIdentifier(p.name)}`).join(' UNION ALL ')}) k GROUP BY chain ORDER BY chain`,
            )
          : { rows: [] };
        const cuts = await currentCuts(client);
        for (const r of rows) {
          facts.keptRemoved += Number(r.n);
          const cut = cuts.get(r.chain);
          if (!cut) throw new Error(`audit.kept holds entries of ${r.chain}, which retention never cut`);
          signed.push(
            await signCut(client, deps, r.chain, cut, { from: cut.seq + 1, keptFrom: keptFromKey, kept: 0, keptDigest: EMPTY_KEPT_DIGEST }),
          );
        }
        for (const p of expiring) await dropPartition(client, p);
      });
      anchorAll();
    }

    // Then each month of the trail wholly before `before`, oldest first.
    const months = parts.filter((p) => p.parent === 'entries' && p.from < before).sort((a, b) => a.from - b.from);
    for (const month of months) {
      const key = monthKey(month.from);
      const values = parts.find((p) => p.parent === 'entry_values' && p.from === month.from);
      await inTransaction(client, async () => {
        // Partitions are created and dropped under the same lock (audit.ensure_partitions).
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended('smart-authz:audit:partitions', 0))");
        const keep = month.from >= keptFrom;
        let keptHere = 0;
        if (keep) {
          const kept = await ensureKeptPartitions(client, month.from);
          const src = pg.escapeIdentifier(month.name);
          const { rowCount } = await client.query(
            `INSERT INTO audit.${pg.escapeIdentifier(kept.entries)} (chain, seq, t, prev, hash, id, event)
             SELECT e.chain, e.seq, e.t, e.prev, e.hash, e.id, e.event FROM audit.${src} e
              WHERE (e.t, e.chain, e.seq) IN (SELECT v.t, v.chain, v.seq FROM audit.${pg.escapeIdentifier(values!.name)} v WHERE starts_with(v.term, $1))`,
            [DISCLOSURE_PREFIX],
          );
          keptHere = rowCount ?? 0;
          if (keptHere) {
            await client.query(
              `INSERT INTO audit.${pg.escapeIdentifier(kept.values)} (term, t, chain, seq)
               SELECT v.term, v.t, v.chain, v.seq FROM audit.${pg.escapeIdentifier(values!.name)} v
                WHERE (v.t, v.chain, v.seq) IN (SELECT k.t, k.chain, k.seq FROM audit.${pg.escapeIdentifier(kept.entries)} k)`,
            );
          }
        }
        const { rows: ends } = await client.query<{ chain: string; lo: string; hi: string; n: string; hash: Buffer }>(
          `SELECT chain, min(seq) AS lo, max(seq) AS hi, count(*) AS n, (array_agg(hash ORDER BY seq DESC))[1] AS hash
             FROM audit.${pg.escapeIdentifier(month.name)} GROUP BY chain ORDER BY chain`,
        );
        const cuts = await currentCuts(client);
        for (const end of ends) {
          const from = (cuts.get(end.chain)?.seq ?? 0) + 1;
          if (Number(end.lo) !== from)
            throw new Error(
              `the ${end.chain} chain's entries of ${key} start at seq ${end.lo}, not after its cut (seq ${from - 1}): run \`smart-authz audit verify\``,
            );
          const digest = keep ? await digestKept(client, end.chain, month.from, page) : new KeptDigest();
          const cut = { seq: Number(end.hi), hash: end.hash.toString('hex') };
          signed.push(
            await signCut(client, deps, end.chain, cut, {
              month: key,
              from,
              keptFrom: keptFromKey,
              kept: digest.count,
              keptDigest: digest.hex(),
            }),
          );
          await client.query(`INSERT INTO audit.retention_cuts (chain, seq, hash, before) VALUES ($1, $2, $3, $4)`, [
            end.chain,
            cut.seq,
            end.hash,
            new Date(monthEndOf(month.from)).toISOString(),
          ]);
          facts.removed += Number(end.n);
        }
        facts.removed -= keptHere;
        facts.kept += keptHere;
        await dropPartition(client, month);
        if (values) await dropPartition(client, values);
      });
      anchorAll();
    }

    const cuts = Object.fromEntries([...(await currentCuts(client))].map(([chain, c]) => [chain, c.seq]));
    const purgeFacts: PurgeFacts = {
      removed: facts.removed,
      archived: facts.kept,
      archiveRemoved: facts.keptRemoved,
      cutSeq: cuts.main ?? 0,
      cutoff: new Date(before).toISOString(),
      disclosureCutoff: new Date(keptFrom).toISOString(),
    };
    const monthKeys = months.map((m) => monthKey(m.from));
    const event = trailPurged(config.issuer, { actor: deps.actor, facts: purgeFacts, postgres: { months: monthKeys, keptMonths } });
    await deps.trail.record(event);
    return { ...purgeFacts, months: monthKeys, keptMonths, cuts, event };
  } finally {
    if (locked) await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [LOCK]).catch(() => {});
    await client.end().catch(() => {});
    await reader.close();
  }
}

function monthEndOf(from: number): number {
  const d = new Date(from);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

async function inTransaction(client: pg.Client, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await work();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The month partitions of the four partitioned tables, with their lower bound. */
async function partitions(client: pg.Client): Promise<Partition[]> {
  const { rows } = await client.query<{ name: string; parent: Partition['parent']; from: Date }>(
    `SELECT c.relname AS name, parent.relname AS parent,
            (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from"
       FROM pg_inherits h
       JOIN pg_class c ON c.oid = h.inhrelid
       JOIN pg_class parent ON parent.oid = h.inhparent
       JOIN pg_namespace ns ON ns.oid = parent.relnamespace
      WHERE ns.nspname = 'audit' AND parent.relname IN ('entries', 'entry_values', 'kept', 'kept_values')
      ORDER BY 3, 1`,
  );
  return rows.map((r) => ({ name: r.name, parent: r.parent, from: r.from.getTime() }));
}

/** Each chain's newest cut (audit.retention_cuts). */
async function currentCuts(client: pg.Client): Promise<Map<string, { seq: number; hash: string }>> {
  const { rows } = await client.query<{ chain: string; seq: string; hash: Buffer }>(
    'SELECT DISTINCT ON (chain) chain, seq, hash FROM audit.retention_cuts ORDER BY chain, seq DESC',
  );
  return new Map(rows.map((r) => [r.chain, { seq: Number(r.seq), hash: r.hash.toString('hex') }]));
}

async function ensureKeptPartitions(client: pg.Client, from: number): Promise<{ entries: string; values: string }> {
  const suffix = monthKey(from).replace('-', '');
  const lo = new Date(from).toISOString();
  const hi = new Date(monthEndOf(from)).toISOString();
  const names = { entries: `kept_${suffix}`, values: `kept_values_${suffix}` };
  for (const [parent, name] of [
    ['kept', names.entries],
    ['kept_values', names.values],
  ] as const) {
    await client.query(
      `CREATE TABLE IF NOT EXISTS audit.${pg.escapeIdentifier(name)} PARTITION OF audit.${parent} FOR VALUES FROM ('${lo}') TO ('${hi}')`,
    );
  }
  return names;
}

async function dropPartition(client: pg.Client, p: Partition): Promise<void> {
  await client.query(`ALTER TABLE audit.${pg.escapeIdentifier(p.parent)} DETACH PARTITION audit.${pg.escapeIdentifier(p.name)}`);
  await client.query(`DROP TABLE audit.${pg.escapeIdentifier(p.name)}`);
}

/** The digest over a chain's entries kept from one month, read back as stored, in seq order. */
async function digestKept(client: pg.Client, chain: string, from: number, page: number): Promise<KeptDigest> {
  const digest = new KeptDigest();
  const lo = new Date(from).toISOString();
  const hi = new Date(monthEndOf(from)).toISOString();
  for (let after = 0; ;) {
    const { rows } = await client.query<Parameters<typeof entryOf>[0]>(
      `SELECT ${ENTRY_COLUMNS} FROM audit.kept WHERE chain = $1 AND t >= $2 AND t < $3 AND seq > $4 ORDER BY seq LIMIT $5`,
      [chain, lo, hi, after, page],
    );
    for (const r of rows) digest.add(entryOf(r));
    if (rows.length < page) return digest;
    after = Number(rows[rows.length - 1]!.seq);
  }
}

/** Signs a `retention-cut` checkpoint at a chain's cut and stores it (in the caller's transaction). */
async function signCut(
  client: pg.Client,
  deps: PgPurgeDeps,
  chain: string,
  cut: { seq: number; hash: string },
  retention: RetentionCutFacts,
): Promise<CheckpointPayload & { jws: string }> {
  if (!isChainName(chain)) throw new Error(`cannot sign a checkpoint for the chain ${JSON.stringify(chain)}: not a trail chain name`);
  const payload: CheckpointPayload = {
    iss: deps.config.issuer,
    chain,
    seq: cut.seq,
    hash: cut.hash,
    iat: Math.floor(Date.now() / 1000),
    reason: 'retention-cut',
    retention,
  };
  const jws = await signCheckpoint(deps.keys, payload);
  await client.query("INSERT INTO audit.checkpoints (chain, seq, hash, iat, reason, jws) VALUES ($1, $2, decode($3, 'hex'), $4, $5, $6)", [
    chain,
    cut.seq,
    cut.hash,
    payload.iat,
    payload.reason,
    jws,
  ]);
  return { ...payload, jws };
}
