import { CompactSign, compactVerify, importJWK, decodeProtectedHeader, type JWK } from 'jose';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { KeyStore } from '../../platform/keys/keystore.js';
import { isChainName, type ChainName } from './chain.js';
import type { CheckpointAnchor } from './anchor.js';
import { replicated } from '../../platform/redis/write-acks.js';
import type { Head } from './append.js';
import { streamId } from './postings.js';

/**
 * Signed checkpoints: a JWS (compact, ES384 with the server's current EC key, RS256 if there is
 * none) over {chain, seq, hash, sid, iat}, stored in a sorted set scored by seq. The hash chain
 * alone only proves the entries are consistent with each other: someone with write access to
 * Redis could rewrite the whole chain and every hash. A checkpoint signed with a key that lives
 * in the key store (encrypted at rest when a key-encryption secret is set) pins the chain head at
 * a point in time, so a rewrite of anything up to a checkpoint is detected, and `verify` can start
 * from a checkpoint after older entries were purged.
 *
 * Verification uses every published key (current, next and retired: the same set /jwks serves),
 * so checkpoints stay valid across key rotation until a key is removed from the store.
 */

export const CHECKPOINT_TYP = 'audit-checkpoint+jwt';

export interface CheckpointPayload {
  iss: string;
  chain: ChainName;
  seq: number;
  hash: string;
  /** Stream id of the entry with `seq` (absent for an empty chain). */
  sid?: string;
  iat: number;
  /**
   * Why it was written: `cadence` (every audit.checkpointEvery-th entry, verify requires them),
   * `interval` (the server's timer, also when idle), `manual`, `purge-before`, `purge-cut`,
   * `purge-after`, `archive`, `retention-cut` (PostgreSQL retention, with `retention`);
   * `periodic` in trails written before cadence checkpoints.
   */
  reason: string;
  /** What a PostgreSQL `retention-cut` signs besides the cut itself (pg/retention.ts). */
  retention?: RetentionCutFacts;
}

/**
 * A `retention-cut` checkpoint signs the chain's cut (seq, hash: the last entry dropped) and what
 * the drop kept: seqs `from`…`seq` left audit.entries with the month `month`, and of them the
 * `kept` disclosures now in audit.kept, whose (seq, hash, t, id) lines hash to `keptDigest`.
 * `keptFrom` is the disclosure retention's floor at signing: kept months before it are gone on
 * purpose. A floor-only checkpoint (kept months expired, no entries dropped) has no `month` and
 * `from` = seq + 1.
 */
export interface RetentionCutFacts {
  /** UTC month `YYYY-MM` whose entries were dropped; absent on a floor-only checkpoint. */
  month?: string;
  /** First seq of the dropped range (the previous cut + 1). */
  from: number;
  /** `YYYY-MM`: kept disclosures of months before it were dropped (disclosure retention). */
  keptFrom: string;
  kept: number;
  /** Hex SHA-256 over `seq hash t id\n` of each kept entry of the range, in seq order (t in ms). */
  keptDigest: string;
}

export interface CheckpointKeys {
  /** A private JWK that may sign, with its alg. */
  signingKey(): Promise<{ jwk: JWK; alg: 'ES384' | 'RS256' }>;
  /** Every public key that may have signed a checkpoint, by kid. */
  verificationKeys(): Promise<JWK[]>;
}

function publicPart(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e, kid } = jwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid }).filter(([, v]) => v !== undefined)) as JWK;
}

/** Keys from the key store, reloaded only when its version counter moves (one GET per use). */
export function keyStoreCheckpointKeys(redis: RedisClient, keyspace: Keyspace, encryptionSecret: string | undefined): CheckpointKeys {
  const store = new KeyStore(redis, keyspace, { encryptionSecret });
  let cached: { version: number; keys: JWK[] } | undefined;
  const load = async (): Promise<JWK[]> => {
    const version = await store.version();
    if (!cached || cached.version !== version) {
      const loaded = await store.load();
      cached = { version: loaded.version, keys: loaded.jwks.keys };
    }
    return cached.keys;
  };
  return {
    async signingKey() {
      const keys = await load();
      // Keys without key_ops are the current (signing) ones; see platform/keys/provider-jwks.ts.
      const current = keys.filter((k) => !k.key_ops);
      const ec = current.find((k) => k.kty === 'EC');
      if (ec) return { jwk: ec, alg: 'ES384' };
      const rsa = current.find((k) => k.kty === 'RSA');
      if (rsa) return { jwk: rsa, alg: 'RS256' };
      throw new Error('no current signing key to sign an audit checkpoint with (run `smart-authz keys` to create one)');
    },
    async verificationKeys() {
      return (await load()).map(publicPart);
    },
  };
}

/** Imported signing keys, per JWK object (the key store hands out the same object until keys change). */
const imported = new WeakMap<JWK, ReturnType<typeof importJWK>>();

export async function signCheckpoint(keys: CheckpointKeys, payload: CheckpointPayload): Promise<string> {
  const { jwk, alg } = await keys.signingKey();
  let key = imported.get(jwk);
  if (!key) {
    key = importJWK(jwk, alg);
    imported.set(jwk, key);
  }
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg, kid: jwk.kid, typ: CHECKPOINT_TYP })
    .sign(await key);
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Verifies a checkpoint's signature and shape; throws CheckpointError saying what is wrong. */
export async function verifyCheckpoint(jws: string, keys: JWK[]): Promise<CheckpointPayload> {
  let header;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    throw new CheckpointError('is not a JWS');
  }
  if (header.typ !== CHECKPOINT_TYP) throw new CheckpointError(`has typ ${String(header.typ)}, not ${CHECKPOINT_TYP}`);
  if (header.alg !== 'ES384' && header.alg !== 'RS256') throw new CheckpointError(`uses alg ${String(header.alg)}`);
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new CheckpointError(`was signed by key ${String(header.kid)}, which is not in the key set`);
  let payload: unknown;
  try {
    const result = await compactVerify(jws, await importJWK(jwk, header.alg), { algorithms: [header.alg] });
    payload = JSON.parse(new TextDecoder().decode(result.payload));
  } catch {
    throw new CheckpointError('has an invalid signature');
  }
  const p = payload as Partial<CheckpointPayload>;
  if (typeof p.seq !== 'number' || typeof p.hash !== 'string' || !isChainName(p.chain))
    throw new CheckpointError('has an unexpected payload');
  return p as CheckpointPayload;
}

/** A checkpoint's payload without checking its signature (for housekeeping, never for trust). */
function peekPayload(jws: string): Partial<CheckpointPayload> | undefined {
  try {
    return JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Partial<CheckpointPayload>;
  } catch {
    return undefined;
  }
}

export interface StoredCheckpoint {
  jws: string;
  seq: number;
}

export class CheckpointStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly keys: CheckpointKeys,
    private readonly issuer: string,
    /** Where each checkpoint is also written, outside Redis (anchor.ts). */
    private readonly anchor?: CheckpointAnchor,
  ) {}

  /** Signs the chain's current head and stores it. */
  async write(chain: ChainName, reason: string): Promise<CheckpointPayload & { jws: string }> {
    const [seq, hash] = await this.redis.hmget(this.keyspace.auditHead(chain), 'seq', 'hash');
    const at = seq ? Number(seq) : 0;
    // The head's entry is at stream id `<seq>-0` (postings.ts).
    const head: Head = { seq: at, hash: hash ?? '0'.repeat(64), ...(at ? { sid: streamId(at) } : {}) };
    return this.writeAt(chain, head, reason);
  }

  async writeAt(chain: ChainName, head: Head, reason: string): Promise<CheckpointPayload & { jws: string }> {
    const payload: CheckpointPayload = {
      iss: this.issuer,
      chain,
      seq: head.seq,
      hash: head.hash,
      ...(head.sid ? { sid: head.sid } : {}),
      iat: Math.floor(Date.now() / 1000),
      reason,
    };
    const jws = await signCheckpoint(this.keys, payload);
    // Anchored only once a replica has it (and the entries it signs): a failover must not take
    // back what the anchor outside Redis already holds.
    await replicated(this.redis, () => this.redis.zadd(this.keyspace.auditCheckpoints(chain), head.seq, jws));
    this.anchor?.record({ chain, seq: payload.seq, hash: payload.hash, iat: payload.iat, reason, jws });
    return { ...payload, jws };
  }

  /**
   * Drops earlier `interval` checkpoints at the same seq as `kept` (an idle trail would otherwise
   * gain one per interval for nothing): they sign the same hash, which the anchor still holds.
   */
  async dropSuperseded(chain: ChainName, kept: { seq: number; jws: string }): Promise<void> {
    const key = this.keyspace.auditCheckpoints(chain);
    const same = await this.redis.zrangebyscore(key, kept.seq, kept.seq);
    const stale = same.filter((jws) => jws !== kept.jws && peekPayload(jws)?.reason === 'interval');
    if (stale.length) await this.redis.zrem(key, ...stale);
  }

  /** When the newest of the last few checkpoints was signed (unverified: for a start-up warning only). */
  async newestIat(chain: ChainName): Promise<number | undefined> {
    const raw = await this.redis.zrange(this.keyspace.auditCheckpoints(chain), '-20', '-1');
    const iats = raw.map((jws) => peekPayload(jws)?.iat).filter((n): n is number => typeof n === 'number');
    return iats.length ? Math.max(...iats) : undefined;
  }

  /** Checkpoints of a chain, oldest first. */
  async list(chain: ChainName): Promise<StoredCheckpoint[]> {
    const raw = await this.redis.zrange(this.keyspace.auditCheckpoints(chain), '0', '-1', 'WITHSCORES');
    const out: StoredCheckpoint[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) out.push({ jws: raw[i]!, seq: Number(raw[i + 1]) });
    return out;
  }

  async latestSeq(chain: ChainName): Promise<number> {
    const raw = await this.redis.zrange(this.keyspace.auditCheckpoints(chain), '-1', '-1', 'WITHSCORES');
    return raw.length ? Number(raw[1]) : 0;
  }
}

/**
 * Signs a `cadence` checkpoint at every multiple of `every` an append reached. Only the appender
 * knows those hashes first-hand (it computed them), so whichever instance appended the batch that
 * crossed a multiple signs it: no coordination needed, and nothing read back from Redis is signed.
 */
export async function signCadence(
  checkpoints: CheckpointStore,
  chain: ChainName,
  appended: { head: Head; hashes: string[] },
  every: number,
): Promise<void> {
  const first = appended.head.seq - appended.hashes.length + 1;
  for (let seq = Math.ceil(first / every) * every; seq <= appended.head.seq; seq += every) {
    await checkpoints.writeAt(chain, { seq, hash: appended.hashes[seq - first]!, sid: streamId(seq) }, 'cadence');
  }
}
