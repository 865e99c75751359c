/**
 * oidc-provider storage in Redis, one adapter instance per model name.
 *
 * Key layout (P = Keyspace prefix, e.g. `authz:`):
 *
 *   P oidc:<Model>:{<id>}               hash  payload = JSON, consumed = JSON (epoch seconds);
 *                                             PX = expiresIn, no TTL when the model gives none
 *   P oidc:grant:{<grantId>}            zset  member = full entry key of a grant-bound token,
 *                                             score = its expiry in ms (+inf = none); TTL >= the
 *                                             longest member's, none if a member has none
 *   P oidc:grantRevoked:{<grantId>}     "1"   for an hour after the Grant was destroyed; refuses
 *                                             token writes for it that were already in flight
 *   P oidc:owner:{<kind>:<id>}          zset  what an account or client owns (Grants, Sessions,
 *                                             grantless client tokens), see owner-index.ts
 *   P oidc:ownerRevoked:{<kind>:<id>}   "1"   while that owner's access is being ended
 *   P oidc:sessionUid:{<uid>}           id of the Session with that uid; same TTL as the Session
 *   P oidc:userCode:{<userCode>}        id of the DeviceCode with that user code; same TTL
 *   P clients                           set of every Client id
 *   P once:<namespace>:{<sha256(id)>}   "1" with EX = ttl (claimOnce, e.g. assertion jti)
 *
 * `oidc:Grant:{g}`, `oidc:grant:{g}` and `oidc:grantRevoked:{g}` share the hash tag `{g}`, which
 * is what lets one script revoke a grant in Redis Cluster; nothing else spans keys.
 *
 * Round trips: `find` 1 (HGETALL); `upsert` 1 on a single node or Sentinel (one script writes the
 * entry and its index entries atomically; pointers go with it, auto-pipelined). In Redis Cluster,
 * where the entry and its indexes sit in different slots: 1 for entries neither bound to a grant
 * nor owned, 2 for owned ones (Grant, Session, client tokens without a grant: index add with the
 * write, then check — owner-index.ts), 3 sequential ones for grant-bound tokens (index, write,
 * check — see grant-index.ts for why each is needed).
 */
import { errors } from 'oidc-provider';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import { publishInvalidation } from '../redis/invalidation.js';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';
import { adapterScripts, type AdapterScripts } from './adapter-scripts.js';
import { alreadyConsumed, consumedEntryMissing } from './consume-errors.js';
import { GrantIndex, PRUNE_GRACE_MS } from './grant-index.js';
import { OwnerIndex, ownersOf, type Owner } from './owner-index.js';

/** Models whose entries `revokeByGrantId` must find (the same list as oidc-provider's memory adapter). */
const GRANT_BOUND = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
  // Our revocation marker for JWT access tokens (oauth/introspection/token-lookup.ts): grant
  // revocation must reach self-contained tokens too.
  'JwtAccessToken',
]);

function ttlMillis(expiresIn: number | undefined): number | undefined {
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn)) return undefined;
  // ReplayDetection can pass a lifetime that already ran out; PX needs a positive integer.
  return Math.max(1, Math.ceil(expiresIn * 1000));
}

function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function parseEntry(hash: Record<string, string>): AdapterPayload | undefined {
  if (hash.payload === undefined) return undefined;
  const payload = JSON.parse(hash.payload) as AdapterPayload;
  if (hash.consumed !== undefined) payload.consumed = JSON.parse(hash.consumed);
  return payload;
}

/** The entry-writing scripts' arguments (WRITE_ENTRY, INDEXED_WRITE): payload JSON, TTL in ms or '', consumed or ''. */
function entryArgs(payload: AdapterPayload, ttlMs: number | undefined): [payload: string, ttlMs: string, consumed: string] {
  return [JSON.stringify(payload), ttlMs === undefined ? '' : String(ttlMs), payload.consumed ? JSON.stringify(payload.consumed) : ''];
}

function grantIdOf(payloadJson: string): string | undefined {
  const { grantId } = JSON.parse(payloadJson) as AdapterPayload;
  return typeof grantId === 'string' && grantId ? grantId : undefined;
}

export class RedisAdapter implements Adapter {
  private readonly redis: RedisClient & AdapterScripts;
  private readonly grants: GrantIndex;
  private readonly owners: OwnerIndex;

  constructor(
    readonly name: string,
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    grants?: GrantIndex,
    owners?: OwnerIndex,
  ) {
    this.redis = adapterScripts(redis);
    this.grants = grants ?? new GrantIndex(redis, keyspace);
    this.owners = owners ?? new OwnerIndex(redis, keyspace, this.grants);
  }

  private key(id: string): string {
    return this.keyspace.model(this.name, id);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const key = this.key(id);
    const ttlMs = ttlMillis(expiresIn);
    const grantId = GRANT_BOUND.has(this.name) && typeof payload.grantId === 'string' ? payload.grantId : undefined;
    const owners = grantId === undefined ? ownersOf(this.name, payload) : [];

    if (!this.redis.isCluster && (grantId !== undefined || owners.length)) {
      return this.upsertIndexedAtomically(id, key, payload, ttlMs, grantId, owners);
    }
    if (owners.length) return this.upsertOwned(id, key, payload, ttlMs, owners);

    if (grantId !== undefined && !(await this.grants.add(grantId, key, ttlMs))) {
      throw new errors.InvalidGrant('grant has been revoked');
    }

    await Promise.all(this.writes(id, key, payload, ttlMs));
    // Instances cache client records (oauth/clients/client-cache.ts); after the write, not with it,
    // or a reader could cache the old record again after the announcement.
    if (this.name === 'Client') await publishInvalidation(this.redis, this.keyspace, 'Client', id);

    if (grantId !== undefined && !(await this.grants.contains(grantId, key))) {
      // A revocation emptied the index between our index add and our write; its DEL of our key
      // may have come before the write, so the entry would otherwise outlive the revocation.
      await this.redis.del(key);
      throw new errors.InvalidGrant('grant has been revoked');
    }
  }

  /**
   * Single node or Sentinel: the entry and its index entries in one script, one round trip (the
   * hot path of every token). Grant-bound entries are members of their grant's index under their
   * key, owned ones of each owner's index as `<Model>:<id>`. Sessions are written even while their
   * account is revoked, as in upsertOwned.
   */
  private async upsertIndexedAtomically(
    id: string,
    key: string,
    payload: AdapterPayload,
    ttlMs: number | undefined,
    grantId: string | undefined,
    owners: Owner[],
  ): Promise<void> {
    const indexes = grantId !== undefined ? this.grants.keysOf(grantId) : owners.flatMap((o) => this.owners.keysOf(o));
    const member = grantId !== undefined ? key : `${this.name}:${id}`;
    const [written] = await Promise.all([
      this.redis.oidcIndexedWrite(
        1 + indexes.length,
        key,
        ...indexes,
        ...entryArgs(payload, ttlMs),
        member,
        String(PRUNE_GRACE_MS),
        this.name === 'Session' ? '1' : '0',
      ),
      ...this.pointerWrites(id, payload, ttlMs),
    ]);
    if (written === 1) return;
    throw grantId !== undefined ? new errors.InvalidGrant('grant has been revoked') : revokedOwnerError(this.name);
  }

  /**
   * Redis Cluster: the index adds go out with the write (one round trip): the revoked mark refuses
   * the add of an owner being ended, and the check after the write catches an ending that ran in
   * between. Either way the entry is deleted again, so nothing outlives its owner's revocation
   * (owner-index.ts).
   */
  private async upsertOwned(id: string, key: string, payload: AdapterPayload, ttlMs: number | undefined, owners: Owner[]): Promise<void> {
    const member = `${this.name}:${id}`;
    const evenIfRevoked = this.name === 'Session';
    const results = await Promise.all([
      ...owners.map((o) => this.owners.add(o, member, ttlMs, { evenIfRevoked })),
      ...this.writes(id, key, payload, ttlMs),
    ]);
    const refused = results.slice(0, owners.length).includes(false);
    const kept = !refused && (await Promise.all(owners.map((o) => this.owners.contains(o, member)))).every(Boolean);
    if (kept) return;
    await this.redis.del(key);
    // Sessions are indexed even while the account is revoked (owner-index.ts), so only an ending
    // that ran during this very write gets here: the browser is signed out, which is what ending
    // the account means, and the login check asks for a fresh sign-in.
    if (this.name === 'Session') return;
    throw revokedOwnerError(this.name);
  }

  private writes(id: string, key: string, payload: AdapterPayload, ttlMs: number | undefined): Promise<unknown>[] {
    const writes: Promise<unknown>[] = [
      this.redis.oidcWriteEntry(key, ...entryArgs(payload, ttlMs)),
      ...this.pointerWrites(id, payload, ttlMs),
    ];
    if (this.name === 'Client') {
      // A client registered again under a removed id may have tokens: its revoked mark is lifted
      // (and anything indexed under the id meanwhile ended). A plain update touches nothing.
      writes.push(this.redis.sadd(this.keyspace.clientIndex(), id), this.owners.reinstate({ kind: 'client', id }, { onlyIfRevoked: true }));
    }
    return writes;
  }

  /** The secondary lookups' pointers (Session by uid, DeviceCode by user code). */
  private pointerWrites(id: string, payload: AdapterPayload, ttlMs: number | undefined): Promise<unknown>[] {
    if (this.name === 'Session' && typeof payload.uid === 'string') {
      return [this.setPointer(this.keyspace.sessionUid(payload.uid), id, ttlMs)];
    }
    if (this.name === 'DeviceCode' && typeof payload.userCode === 'string') {
      return [this.setPointer(this.keyspace.userCode(payload.userCode), id, ttlMs)];
    }
    return [];
  }

  private setPointer(key: string, id: string, ttlMs: number | undefined): Promise<unknown> {
    return ttlMs === undefined ? this.redis.set(key, id) : this.redis.set(key, id, 'PX', ttlMs);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return parseEntry(await this.redis.hgetall(this.key(id)));
  }

  /** Pointers are not removed with their entry, so the entry must still carry the value looked up. */
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.redis.get(this.keyspace.sessionUid(uid));
    if (id === null) return undefined;
    const payload = await this.find(id);
    return payload?.uid === uid ? payload : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.redis.get(this.keyspace.userCode(userCode));
    if (id === null) return undefined;
    const payload = await this.find(id);
    return payload?.userCode === userCode ? payload : undefined;
  }

  /**
   * oidc-provider checks `consumed` after `find` and only then calls `consume`, so two concurrent
   * redemptions of one code both pass its check. Here only the first `consume` succeeds; the other
   * is treated as the reuse oidc-provider would have detected had the requests been sequential:
   * the whole grant is revoked (Grant included, as its default revokeGrantPolicy does on the
   * token endpoint) and the request fails with invalid_grant.
   */
  async consume(id: string): Promise<void> {
    const result = await this.redis.oidcConsumeEntry(this.key(id), String(epochSeconds()));
    if (result === 1) return;
    if (typeof result !== 'string') throw consumedEntryMissing(this.name);

    const grantId = grantIdOf(result);
    if (grantId !== undefined) await this.grants.revoke(grantId, { dead: true });
    throw alreadyConsumed(this.name);
  }

  /**
   * The sessionUid / userCode pointers are left to expire: removing them would cost a read of the
   * payload first, and the lookups ignore a pointer whose entry is gone.
   *
   * Destroying a Grant revokes its tokens and marks it dead. oidc-provider destroys a Grant only
   * while revoking it (helpers/revoke.js), and without the Grant none of its tokens is honoured.
   */
  async destroy(id: string): Promise<void> {
    if (this.name === 'Grant') {
      await this.grants.revoke(id, { dead: true });
      return;
    }
    const key = this.key(id);
    if (this.name === 'Client') {
      // Access ends first: the mark refuses tokens for the client from here on, and should the
      // deletion below fail, a retry (CLI remove) ends nothing twice and deletes the record.
      await this.owners.end({ kind: 'client', id });
      await Promise.all([this.redis.del(key), this.redis.srem(this.keyspace.clientIndex(), id)]);
      await publishInvalidation(this.redis, this.keyspace, 'Client', id);
      return;
    }
    await this.redis.del(key);
  }

  /**
   * The grant stays usable (oidc-provider keeps it when an access token is revoked), so later
   * tokens for it are accepted; only writes that overlapped this revocation are undone.
   */
  async revokeByGrantId(grantId: string): Promise<void> {
    await this.grants.revoke(grantId, { dead: false });
  }
}

/**
 * The value for oidc-provider's `adapter` option. It is an arrow function on purpose: oidc-provider
 * calls anything with a prototype with `new`.
 */
export function redisAdapterFactory(redis: RedisClient, keyspace: Keyspace): AdapterFactory {
  const grants = new GrantIndex(redis, keyspace);
  const owners = new OwnerIndex(redis, keyspace, grants);
  return (name: string) => new RedisAdapter(name, redis, keyspace, grants, owners);
}

/**
 * An owner's access was ended while this entry was being written. Grants are written in the
 * authorization flow (the app gets access_denied), tokens at the token endpoint.
 */
function revokedOwnerError(model: string): Error {
  if (model === 'Grant') return new errors.AccessDenied('the account or client is no longer active');
  return new errors.InvalidGrant('the account or client is no longer active');
}
