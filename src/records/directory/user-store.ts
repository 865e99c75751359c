import { randomUUID } from 'node:crypto';
import type { Config } from '../../platform/config/schema.js';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { ScimError, notFound, preconditionFailed } from '../../domain/scim/errors.js';
import type { IndexedAttributes, IndexLookup } from './scim/filter.js';
import { runQuery, type QueryLimits, type QueryPage, type QuerySource, type ResourceQuery } from './scim/query.js';
import { USER_RESOURCE } from './scim/schema-definitions.js';
import { directoryScripts, keysThenArgs, type DirectoryScripts } from './directory-scripts.js';
import { etagMatches } from './etags.js';
import { CORE_USER_SCHEMA, SMART_GROUP_SCHEMA, SMART_USER_SCHEMA, versionTag, type ScimGroup, type ScimUser } from './model.js';
import { type Coding } from '../../domain/fhir/types.js';
import { hashPassword, type PasswordPolicy } from './passwords.js';
import { parseUserInput } from './user-input.js';
import { OwnerIndex, accountAccess, type AccountAccess } from '../../platform/storage/owner-index.js';
import { GrantIndex } from '../../platform/storage/grant-index.js';
import type { FactorSnapshot } from './factors/types.js';

/**
 * The user directory in Redis (layout in Keyspace, scripts in directory-scripts.ts). Reads never
 * return the password hash except through `credentials`, which only the sign-in page uses.
 * Writes are compare-and-set on the record version and retried a few times when another writer
 * got there first; with `ifMatch` they fail with 412 instead.
 *
 * A user's access follows the account: once a write leaves the user inactive, or deletes it,
 * every grant, token and session of the user is ended before the write is answered; re-enabling
 * revives none of them (platform/storage/owner-index.ts).
 */

export interface LockStateReader {
  isLocked(id: string): Promise<boolean>;
  clear(id: string): Promise<void>;
}

/** What the directory shows of a user's second factors (records/directory/factors/), and forgets with the user. */
export interface FactorDirectory {
  snapshot(userId: string): Promise<FactorSnapshot>;
  forget(userId: string): Promise<void>;
}

export interface UserStoreDeps {
  redis: RedisClient;
  keyspace: Keyspace;
  passwords: PasswordPolicy;
  lockState?: LockStateReader;
  /** Second factors: shown read-only (SCIM `secondFactors`, `recoveryCodesLeft`) and removed with the user. */
  factors?: FactorDirectory;
  /**
   * Ends a user's grants, tokens and sessions. `createUserStore` always wires it; left out only by
   * tests of the directory alone.
   */
  access?: AccountAccess;
  /** Absolute URL of the SCIM base (`…/scim/v2`) for `meta.location` and `$ref`s. */
  scimBase?: string;
  limits?: QueryLimits;
}

export interface WriteOptions {
  /** An If-Match header value: the write happens only if it names the current version. */
  ifMatch?: string;
}

/** Builds the next state of a user from the current one: a full SCIM User (may carry a password). */
export type UserChange = (current: ScimUser) => unknown;

export const USER_INDEXED: IndexedAttributes = { id: 'id', userName: 'userName', externalId: 'externalId', 'emails.value': 'email' };

export const DEFAULT_LIMITS: QueryLimits = { maxFilterScan: 10_000, maxPageSize: 200 };
const MAX_WRITE_ATTEMPTS = 5;

interface StoredRecord {
  json: string;
  v: string;
  lm: string;
  pw?: string;
}

/** The resource as stored: no lastModified/version/location (separate fields), no groups, no lock, no second factors. */
type StoredUser = Omit<ScimUser, 'meta' | 'groups'> & { meta: { resourceType: 'User'; created: string } };

export class UserStore {
  private readonly redis: RedisClient & DirectoryScripts;
  private readonly keys: Keyspace;
  private readonly limits: QueryLimits;

  constructor(private readonly deps: UserStoreDeps) {
    this.redis = directoryScripts(deps.redis);
    this.keys = deps.keyspace;
    this.limits = deps.limits ?? DEFAULT_LIMITS;
  }

  async get(id: string): Promise<ScimUser | undefined> {
    return (await this.load([id]))[0];
  }

  /**
   * The user as stored, without what is kept beside the record (groups, lock-out, second factors):
   * one HMGET for the account lookup of every code exchange and refresh, where `get` would send
   * four or more commands whose answers the id_token never shows (records/directory/accounts.ts).
   */
  async getRecordOnly(id: string): Promise<Omit<ScimUser, 'groups'> | undefined> {
    const record = await this.record(id);
    return record ? this.present(JSON.parse(record.json) as StoredUser, record, [], false) : undefined;
  }

  async findByUserName(userName: string): Promise<ScimUser | undefined> {
    return (await this.byUserName(userName, false))?.user;
  }

  /**
   * The users whose attribute equals `value`, through the lookup indexes: `externalId` exactly,
   * `userName` and `emails[].value` without regard to case (as SCIM compares them). Each user is
   * checked against the value again, so a stale index entry never names the wrong person.
   */
  async findBy(attribute: 'externalId' | 'userName' | 'emails', value: string): Promise<ScimUser[]> {
    const index = attribute === 'emails' ? 'email' : attribute;
    const users = await this.load(await this.idsFor({ index, value }));
    const lower = value.toLowerCase();
    return users.filter((u) => {
      if (attribute === 'externalId') return u.externalId === value;
      if (attribute === 'userName') return u.userName.toLowerCase() === lower;
      return (u.emails ?? []).some((e) => e.value.toLowerCase() === lower);
    });
  }

  /** For the sign-in page only: the user and the stored password hash (absent when none is set). */
  async credentials(userName: string): Promise<{ user: ScimUser; passwordHash?: string } | undefined> {
    const found = await this.byUserName(userName, true);
    if (!found) return undefined;
    return found.passwordHash ? { user: found.user, passwordHash: found.passwordHash } : { user: found.user };
  }

  async create(input: unknown): Promise<ScimUser> {
    const parsed = parseUserInput(input);
    const id = randomUUID();
    const now = new Date().toISOString();
    const stored = storedUser(id, parsed.user, now);
    const passwordHash = parsed.password !== undefined ? await hashPassword(parsed.password, this.deps.passwords) : '';
    const name = this.keys.scimUserName(stored.userName.toLowerCase());
    const join = this.indexKeys(stored);
    const reply = await this.redis.scimUserWrite(
      ...keysThenArgs(
        [this.keys.scimUser(id), this.keys.scimUsers(), name, name, ...join],
        [id, '', JSON.stringify(stored), now, String(Date.now()), passwordHash, '0'],
      ),
    );
    if (reply[0] === 'taken') throw userNameTaken();
    if (reply[0] !== 'ok') throw new Error(`unexpected reply ${reply[0]} creating a user`);
    return this.present(stored, { v: reply[1]!, lm: now }, [], false);
  }

  /** PUT: the input replaces every attribute; the password is kept unless the input sets one. */
  async replace(id: string, input: unknown, opts: WriteOptions = {}): Promise<ScimUser> {
    return this.update(id, () => input, opts);
  }

  async update(id: string, change: UserChange, opts: WriteOptions = {}): Promise<ScimUser> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const record = await this.record(id);
      if (!record) throw notFound('User', id);
      if (opts.ifMatch !== undefined && !etagMatches(opts.ifMatch, record.v)) throw preconditionFailed(versionTag(record.v));
      const old = JSON.parse(record.json) as StoredUser;
      const [groups, locked, factors] = await Promise.all([this.groupRefs(id), this.isLocked(id), this.factorSnapshot(id)]);
      const current = this.present(old, record, groups, locked, factors);
      const parsed = parseUserInput(await change(structuredClone(current)), { locked });
      const stored = storedUser(id, parsed.user, old.meta.created);
      const passwordHash = parsed.password !== undefined ? await hashPassword(parsed.password, this.deps.passwords) : '';
      const before = new Set(this.indexKeys(old));
      const after = new Set(this.indexKeys(stored));
      const leave = [...before].filter((k) => !after.has(k));
      const join = [...after].filter((k) => !before.has(k));
      const now = new Date().toISOString();
      const reply = await this.redis.scimUserWrite(
        ...keysThenArgs(
          [
            this.keys.scimUser(id),
            this.keys.scimUsers(),
            this.keys.scimUserName(stored.userName.toLowerCase()),
            this.keys.scimUserName(old.userName.toLowerCase()),
            ...leave,
            ...join,
          ],
          [id, record.v, JSON.stringify(stored), now, '0', passwordHash, String(leave.length)],
        ),
      );
      switch (reply[0]) {
        case 'ok': {
          const unlock = locked && parsed.locked === false;
          if (unlock) await this.deps.lockState!.clear(id);
          // Ended on every write that leaves the user inactive, not only on the change: a retry
          // of a disable whose ending failed half-way then finishes it.
          if (!stored.active) await this.endAccess(id);
          else if (!old.active) await this.deps.access?.reinstate(id);
          return this.present(stored, { v: reply[1]!, lm: now }, groups, locked && !unlock, factors);
        }
        case 'taken':
          throw userNameTaken();
        case 'gone':
          throw notFound('User', id);
        case 'version':
          if (opts.ifMatch !== undefined) throw preconditionFailed(versionTag(reply[1]!));
          continue;
        default:
          throw new Error(`unexpected reply ${reply[0]} updating a user`);
      }
    }
    throw new ScimError(409, undefined, 'the user is being changed by someone else at the same moment; retry');
  }

  async setPassword(id: string, plain: string): Promise<void> {
    await this.update(id, (u) => ({ ...u, password: plain }));
  }

  /** Rehash on sign-in: swaps the hash only if it is still `expectedOldHash` (a password change wins). */
  async replacePasswordHash(id: string, expectedOldHash: string, newHash: string): Promise<boolean> {
    return (await this.redis.scimReplacePasswordHash(this.keys.scimUser(id), expectedOldHash, newHash)) === 1;
  }

  async setActive(id: string, active: boolean): Promise<ScimUser> {
    return this.update(id, (u) => ({ ...u, active }));
  }

  /**
   * Ends every grant, token and session of the user (idempotent). Done by every write that leaves
   * the user inactive and by `delete`; callers use it to finish one that failed half-way.
   */
  async endAccess(id: string, opts?: { onlyIfIndexed?: boolean }): Promise<void> {
    await this.deps.access?.end(id, opts);
  }

  /**
   * Deletes the user and its group memberships, and ends its access; false when there was no such
   * user (its access is ended all the same, so a retried delete finishes what a failed one began).
   */
  async delete(id: string, opts: WriteOptions = {}): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const [record, groupIds] = await Promise.all([this.record(id), this.redis.smembers(this.keys.scimUserGroups(id))]);
      if (!record) {
        // A refused delete (404) changes nothing unless a failed one left access to end.
        await this.endAccess(id, { onlyIfIndexed: true });
        return false;
      }
      if (opts.ifMatch !== undefined && !etagMatches(opts.ifMatch, record.v)) throw preconditionFailed(versionTag(record.v));
      const stored = JSON.parse(record.json) as StoredUser;
      const indexes = this.indexKeys(stored);
      const groupKeys = groupIds.flatMap((g) => [this.keys.scimGroup(g), this.keys.scimGroupMembers(g)]);
      const reply = await this.redis.scimUserDelete(
        ...keysThenArgs(
          [
            this.keys.scimUser(id),
            this.keys.scimUsers(),
            this.keys.scimUserName(stored.userName.toLowerCase()),
            this.keys.scimUserGroups(id),
            ...indexes,
            ...groupKeys,
          ],
          [id, record.v, String(indexes.length), new Date().toISOString(), ...groupIds],
        ),
      );
      if (reply[0] === 'ok') {
        await Promise.all([this.deps.lockState?.clear(id), this.deps.factors?.forget(id), this.endAccess(id)]);
        return true;
      }
      if (reply[0] === 'gone') {
        await this.endAccess(id);
        return false;
      }
      if (reply[0] === 'version' && opts.ifMatch !== undefined) throw preconditionFailed(versionTag(reply[1]!));
    }
    throw new ScimError(409, undefined, 'the user is being changed by someone else at the same moment; retry');
  }

  /** The user's own roles and those of every group it is in, without duplicates (system|code). */
  async effectiveRoles(id: string): Promise<Coding[]> {
    const [json, groupIds] = await Promise.all([
      this.redis.hget(this.keys.scimUser(id), 'json'),
      this.redis.smembers(this.keys.scimUserGroups(id)),
    ]);
    if (!json) return [];
    const own = (JSON.parse(json) as StoredUser)[SMART_USER_SCHEMA]?.roles ?? [];
    const groupJson = await Promise.all(groupIds.sort().map((g) => this.redis.hget(this.keys.scimGroup(g), 'json')));
    const inherited = groupJson.flatMap((j) => (j ? ((JSON.parse(j) as ScimGroup)[SMART_GROUP_SCHEMA]?.roles ?? []) : []));
    const seen = new Set<string>();
    return [...own, ...inherited].filter((r) => {
      const key = `${r.system}|${r.code}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  async count(): Promise<number> {
    return this.redis.zcard(this.keys.scimUsers());
  }

  /** List or search (filter, sort, page); see src/records/directory/scim/query.ts for the bounds. */
  async search(query: ResourceQuery = {}): Promise<QueryPage<ScimUser>> {
    return (await runQuery(USER_RESOURCE, this.querySource(), USER_INDEXED, query, this.limits)) as unknown as QueryPage<ScimUser>;
  }

  /** Users by id, in that order; ids without a user are left out. */
  async load(ids: string[]): Promise<ScimUser[]> {
    const rows = await Promise.all(
      ids.map(async (id) => {
        // Issued together: on a single Redis they share one auto-pipelined round trip.
        const [record, groups, locked, factors] = await Promise.all([
          this.record(id),
          this.groupRefs(id),
          this.isLocked(id),
          this.factorSnapshot(id),
        ]);
        return record ? this.present(JSON.parse(record.json) as StoredUser, record, groups, locked, factors) : undefined;
      }),
    );
    return rows.filter((u): u is ScimUser => u !== undefined);
  }

  private querySource(): QuerySource<Record<string, unknown>> {
    return {
      total: () => this.count(),
      idsInOrder: (offset, count, descending) =>
        count <= 0
          ? Promise.resolve([])
          : descending
            ? this.redis.zrevrange(this.keys.scimUsers(), offset, offset + count - 1)
            : this.redis.zrange(this.keys.scimUsers(), String(offset), String(offset + count - 1)),
      idsFor: (lookup) => this.idsFor(lookup),
      load: async (ids) => (await this.load(ids)) as unknown as Array<Record<string, unknown>>,
    };
  }

  private async idsFor(lookup: IndexLookup): Promise<string[]> {
    switch (lookup.index) {
      case 'id':
        return [lookup.value];
      case 'userName': {
        const id = await this.redis.get(this.keys.scimUserName(lookup.value.toLowerCase()));
        return id ? [id] : [];
      }
      case 'externalId':
        return this.redis.smembers(this.keys.scimUserExternalId(lookup.value));
      case 'email':
        return this.redis.smembers(this.keys.scimUserEmail(lookup.value.toLowerCase()));
      default:
        return [];
    }
  }

  private async byUserName(userName: string, withPassword: boolean): Promise<{ user: ScimUser; passwordHash?: string } | undefined> {
    const lower = userName.toLowerCase();
    const id = await this.redis.get(this.keys.scimUserName(lower));
    if (!id) return undefined;
    const [record, groups, locked] = await Promise.all([this.record(id, withPassword), this.groupRefs(id), this.isLocked(id)]);
    if (!record) return undefined;
    const stored = JSON.parse(record.json) as StoredUser;
    if (stored.userName.toLowerCase() !== lower) return undefined;
    const user = this.present(stored, record, groups, locked);
    return record.pw ? { user, passwordHash: record.pw } : { user };
  }

  private async record(id: string, withPassword = false): Promise<StoredRecord | undefined> {
    const fields = withPassword ? ['json', 'v', 'lm', 'pw'] : ['json', 'v', 'lm'];
    const [json, v, lm, pw] = await this.redis.hmget(this.keys.scimUser(id), ...fields);
    if (!json || !v || !lm) return undefined;
    return pw ? { json, v, lm, pw } : { json, v, lm };
  }

  private async isLocked(id: string): Promise<boolean> {
    return this.deps.lockState ? this.deps.lockState.isLocked(id) : false;
  }

  private async factorSnapshot(id: string): Promise<FactorSnapshot | undefined> {
    return this.deps.factors?.snapshot(id);
  }

  private async groupRefs(id: string): Promise<Array<{ id: string; display?: string }>> {
    const ids = (await this.redis.smembers(this.keys.scimUserGroups(id))).sort();
    const json = await Promise.all(ids.map((g) => this.redis.hget(this.keys.scimGroup(g), 'json')));
    return ids.flatMap((g, i) => {
      const j = json[i];
      return j ? [{ id: g, display: (JSON.parse(j) as ScimGroup).displayName }] : [];
    });
  }

  private indexKeys(user: StoredUser): string[] {
    const keys = new Set<string>();
    if (user.externalId !== undefined) keys.add(this.keys.scimUserExternalId(user.externalId));
    for (const email of user.emails ?? []) keys.add(this.keys.scimUserEmail(email.value.toLowerCase()));
    return [...keys];
  }

  private present(
    stored: StoredUser,
    record: Pick<StoredRecord, 'v' | 'lm'>,
    groups: Array<{ id: string; display?: string }>,
    locked: boolean,
    factors?: FactorSnapshot,
  ): ScimUser {
    const { meta, ...rest } = structuredClone(stored);
    const base = this.deps.scimBase;
    const user = rest as ScimUser;
    if (groups.length) {
      user.groups = groups.map((g) => ({
        value: g.id,
        ...(base ? { $ref: `${base}/Groups/${g.id}` } : {}),
        ...(g.display ? { display: g.display } : {}),
        type: 'direct' as const,
      }));
    }
    if (locked) user[SMART_USER_SCHEMA] = { ...user[SMART_USER_SCHEMA], locked: true };
    // Shown only when there is something: a user without factors looks as before.
    if (factors && (factors.factors.length || factors.recoveryCodesLeft)) {
      user[SMART_USER_SCHEMA] = {
        ...user[SMART_USER_SCHEMA],
        secondFactors: factors.factors.map((f) => ({ value: f.id, type: f.kind, display: f.label, created: f.createdAt })),
        recoveryCodesLeft: factors.recoveryCodesLeft,
      };
    }
    if (user[SMART_USER_SCHEMA] && !user.schemas.includes(SMART_USER_SCHEMA)) user.schemas = [...user.schemas, SMART_USER_SCHEMA];
    user.meta = {
      resourceType: 'User',
      created: meta.created,
      lastModified: record.lm,
      version: versionTag(record.v),
      ...(base ? { location: `${base}/Users/${stored.id}` } : {}),
    };
    return user;
  }
}

function userNameTaken(): ScimError {
  return new ScimError(409, 'uniqueness', 'userName is already in use (user names are compared without regard to case)');
}

function storedUser(id: string, fields: Record<string, unknown>, created: string): StoredUser {
  const { schemas, ...rest } = fields;
  return {
    schemas: (schemas as string[] | undefined) ?? [CORE_USER_SCHEMA],
    id,
    ...rest,
    meta: { resourceType: 'User', created },
  } as StoredUser;
}

/** The user directory as the app and the sign-in page build it from configuration. */
export function createUserStore(
  config: Config,
  redis: RedisClient,
  keyspace: Keyspace,
  lockState?: LockStateReader,
  factors?: FactorDirectory,
): UserStore {
  return new UserStore({
    redis,
    keyspace,
    passwords: config.passwords,
    ...(lockState ? { lockState } : {}),
    ...(factors ? { factors } : {}),
    access: accountAccess(new OwnerIndex(redis, keyspace, new GrantIndex(redis, keyspace))),
    scimBase: `${config.issuer}/scim/v2`,
    limits: config.scim,
  });
}
