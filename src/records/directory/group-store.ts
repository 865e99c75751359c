import { randomUUID } from 'node:crypto';
import type { Config } from '../../platform/config/schema.js';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { ScimError, invalidValue, notFound, preconditionFailed } from '../../domain/scim/errors.js';
import type { IndexedAttributes, IndexLookup } from './scim/filter.js';
import { runQuery, type LoadOptions, type QueryLimits, type QueryPage, type ResourceQuery } from './scim/query.js';
import { GROUP_RESOURCE } from './scim/schema-definitions.js';
import { directoryScripts, keysThenArgs, type DirectoryScripts } from './directory-scripts.js';
import { etagMatches } from './etags.js';
import { parseGroupInput } from './group-input.js';
import { CORE_GROUP_SCHEMA, versionTag, type GroupMember, type ScimGroup, type ScimUser } from './model.js';
import { DEFAULT_LIMITS, type WriteOptions } from './user-store.js';

/**
 * Groups of users, used to give roles to many users at once (members inherit the roles of the
 * SMART group extension, see UserStore.effectiveRoles). Membership is a pair of Redis sets, group
 * → users and user → groups, changed in the same script as the group record; every membership
 * change moves the group's version.
 */

export interface GroupStoreDeps {
  redis: RedisClient;
  keyspace: Keyspace;
  scimBase?: string;
  limits?: QueryLimits;
}

/** Builds the next state of a group from the current one (whose members carry only `value`). */
export type GroupChange = (current: ScimGroup) => unknown;

export const GROUP_INDEXED: IndexedAttributes = {
  id: 'id',
  displayName: 'displayName',
  externalId: 'externalId',
  'members.value': 'member',
};

const MAX_WRITE_ATTEMPTS = 5;

type StoredGroup = Omit<ScimGroup, 'meta' | 'members'> & { meta: { resourceType: 'Group'; created: string } };

interface StoredRecord {
  json: string;
  v: string;
  lm: string;
}

export class GroupStore {
  private readonly redis: RedisClient & DirectoryScripts;
  private readonly keys: Keyspace;
  private readonly limits: QueryLimits;

  constructor(private readonly deps: GroupStoreDeps) {
    this.redis = directoryScripts(deps.redis);
    this.keys = deps.keyspace;
    this.limits = deps.limits ?? DEFAULT_LIMITS;
  }

  /** With `members: false` the (possibly long) member list is neither read nor returned. */
  async get(id: string, opts: LoadOptions = { members: true }): Promise<ScimGroup | undefined> {
    return (await this.load([id], opts))[0];
  }

  async memberIds(id: string): Promise<string[]> {
    return (await this.redis.smembers(this.keys.scimGroupMembers(id))).sort();
  }

  async create(input: unknown): Promise<ScimGroup> {
    const parsed = parseGroupInput(input);
    const id = randomUUID();
    const now = new Date().toISOString();
    const stored = storedGroup(id, parsed.group, now);
    const reply = await this.write(id, '', stored, now, { leave: [], join: this.indexKeys(stored) }, { add: parsed.members, remove: [] });
    if (reply[0] !== 'ok') throw this.failure(reply, id);
    return this.present(stored, { v: reply[1]!, lm: now }, await this.memberDetails(parsed.members));
  }

  /** PUT: replaces every attribute, the member list included (absent members = no members). */
  async replace(id: string, input: unknown, opts: WriteOptions = {}): Promise<ScimGroup> {
    return this.update(id, () => input, opts);
  }

  async update(id: string, change: GroupChange, opts: WriteOptions = {}): Promise<ScimGroup> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const [record, memberIds] = await Promise.all([this.record(id), this.memberIds(id)]);
      if (!record) throw notFound('Group', id);
      if (opts.ifMatch !== undefined && !etagMatches(opts.ifMatch, record.v)) throw preconditionFailed(versionTag(record.v));
      const old = JSON.parse(record.json) as StoredGroup;
      const current = this.present(
        old,
        record,
        memberIds.map((value) => ({ value, type: 'User' as const })),
      );
      const parsed = parseGroupInput(await change(structuredClone(current)));
      const stored = storedGroup(id, parsed.group, old.meta.created);
      const before = new Set(this.indexKeys(old));
      const after = new Set(this.indexKeys(stored));
      const had = new Set(memberIds);
      const wanted = new Set(parsed.members);
      const now = new Date().toISOString();
      const reply = await this.write(
        id,
        record.v,
        stored,
        now,
        { leave: [...before].filter((k) => !after.has(k)), join: [...after].filter((k) => !before.has(k)) },
        { add: parsed.members.filter((m) => !had.has(m)), remove: memberIds.filter((m) => !wanted.has(m)) },
      );
      if (reply[0] === 'ok') return this.present(stored, { v: reply[1]!, lm: now }, await this.memberDetails(parsed.members));
      if (reply[0] === 'version') {
        if (opts.ifMatch !== undefined) throw preconditionFailed(versionTag(reply[1]!));
        continue;
      }
      throw this.failure(reply, id);
    }
    throw new ScimError(409, undefined, 'the group is being changed by someone else at the same moment; retry');
  }

  async delete(id: string, opts: WriteOptions = {}): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const [record, memberIds] = await Promise.all([this.record(id), this.memberIds(id)]);
      if (!record) return false;
      if (opts.ifMatch !== undefined && !etagMatches(opts.ifMatch, record.v)) throw preconditionFailed(versionTag(record.v));
      const indexes = this.indexKeys(JSON.parse(record.json) as StoredGroup);
      const reply = await this.redis.scimGroupDelete(
        ...keysThenArgs(
          [
            this.keys.scimGroup(id),
            this.keys.scimGroups(),
            this.keys.scimGroupMembers(id),
            ...indexes,
            ...memberIds.map((m) => this.keys.scimUserGroups(m)),
          ],
          [id, record.v, String(indexes.length)],
        ),
      );
      if (reply[0] === 'ok') return true;
      if (reply[0] === 'gone') return false;
      if (reply[0] === 'version' && opts.ifMatch !== undefined) throw preconditionFailed(versionTag(reply[1]!));
    }
    throw new ScimError(409, undefined, 'the group is being changed by someone else at the same moment; retry');
  }

  async count(): Promise<number> {
    return this.redis.zcard(this.keys.scimGroups());
  }

  /** List or search; members are returned only when `members` is true (they can be many). */
  async search(query: ResourceQuery = {}, opts: LoadOptions = { members: true }): Promise<QueryPage<ScimGroup>> {
    const page = await runQuery(
      GROUP_RESOURCE,
      {
        total: () => this.count(),
        idsInOrder: (offset, count, descending) =>
          count <= 0
            ? Promise.resolve([])
            : descending
              ? this.redis.zrevrange(this.keys.scimGroups(), offset, offset + count - 1)
              : this.redis.zrange(this.keys.scimGroups(), String(offset), String(offset + count - 1)),
        idsFor: (lookup) => this.idsFor(lookup),
        // Members are needed to evaluate a members filter; they are dropped again below if unwanted.
        load: async (ids, load) =>
          (await this.load(ids, { members: load.members || opts.members })) as unknown as Array<Record<string, unknown>>,
      },
      GROUP_INDEXED,
      query,
      this.limits,
    );
    const resources = (page.resources as unknown as ScimGroup[]).map((g) => {
      if (opts.members) return g;
      const { members: _members, ...rest } = g;
      return rest as ScimGroup;
    });
    return { ...page, resources };
  }

  async load(ids: string[], opts: LoadOptions = { members: true }): Promise<ScimGroup[]> {
    const rows = await Promise.all(
      ids.map(async (id) => {
        const [record, members] = await Promise.all([
          this.record(id),
          opts.members ? this.memberIds(id).then((m) => this.memberDetails(m)) : undefined,
        ]);
        return record ? this.present(JSON.parse(record.json) as StoredGroup, record, members) : undefined;
      }),
    );
    return rows.filter((g): g is ScimGroup => g !== undefined);
  }

  private async idsFor(lookup: IndexLookup): Promise<string[]> {
    switch (lookup.index) {
      case 'id':
        return [lookup.value];
      case 'displayName':
        return this.redis.smembers(this.keys.scimGroupName(lookup.value.toLowerCase()));
      case 'externalId':
        return this.redis.smembers(this.keys.scimGroupExternalId(lookup.value));
      case 'member':
        return this.redis.smembers(this.keys.scimUserGroups(lookup.value));
      default:
        return [];
    }
  }

  private async write(
    id: string,
    expected: string,
    stored: StoredGroup,
    now: string,
    indexes: { leave: string[]; join: string[] },
    members: { add: string[]; remove: string[] },
  ) {
    return this.redis.scimGroupWrite(
      ...keysThenArgs(
        [
          this.keys.scimGroup(id),
          this.keys.scimGroups(),
          this.keys.scimGroupMembers(id),
          ...indexes.leave,
          ...indexes.join,
          ...members.add.flatMap((m) => [this.keys.scimUser(m), this.keys.scimUserGroups(m)]),
          ...members.remove.map((m) => this.keys.scimUserGroups(m)),
        ],
        [
          id,
          expected,
          JSON.stringify(stored),
          now,
          String(Date.now()),
          String(indexes.leave.length),
          String(indexes.join.length),
          String(members.add.length),
          String(members.remove.length),
          ...members.add,
          ...members.remove,
        ],
      ),
    );
  }

  private failure(reply: [string, string?], id: string): Error {
    switch (reply[0]) {
      case 'nouser':
        return invalidValue(`members: ${JSON.stringify(reply[1])} is not a user of this directory`);
      case 'gone':
        return notFound('Group', id);
      default:
        return new Error(`unexpected reply ${reply[0]} writing a group`);
    }
  }

  private async record(id: string): Promise<StoredRecord | undefined> {
    const [json, v, lm] = await this.redis.hmget(this.keys.scimGroup(id), 'json', 'v', 'lm');
    return json && v && lm ? { json, v, lm } : undefined;
  }

  /** Members with their display names (the user's displayName, else userName). */
  private async memberDetails(ids: string[]): Promise<GroupMember[]> {
    const json = await Promise.all(ids.map((m) => this.redis.hget(this.keys.scimUser(m), 'json')));
    const base = this.deps.scimBase;
    return ids.flatMap((value, i) => {
      const j = json[i];
      if (!j) return [];
      const user = JSON.parse(j) as ScimUser;
      return [
        { value, ...(base ? { $ref: `${base}/Users/${value}` } : {}), display: user.displayName ?? user.userName, type: 'User' as const },
      ];
    });
  }

  private indexKeys(group: StoredGroup): string[] {
    const keys = [this.keys.scimGroupName(group.displayName.toLowerCase())];
    if (group.externalId !== undefined) keys.push(this.keys.scimGroupExternalId(group.externalId));
    return keys;
  }

  private present(stored: StoredGroup, record: Pick<StoredRecord, 'v' | 'lm'>, members: GroupMember[] | undefined): ScimGroup {
    const { meta, ...rest } = structuredClone(stored);
    const group = rest as ScimGroup;
    if (members?.length) group.members = members;
    const base = this.deps.scimBase;
    group.meta = {
      resourceType: 'Group',
      created: meta.created,
      lastModified: record.lm,
      version: versionTag(record.v),
      ...(base ? { location: `${base}/Groups/${stored.id}` } : {}),
    };
    return group;
  }
}

function storedGroup(id: string, fields: Record<string, unknown>, created: string): StoredGroup {
  const { schemas, ...rest } = fields;
  return {
    schemas: (schemas as string[] | undefined) ?? [CORE_GROUP_SCHEMA],
    id,
    ...rest,
    meta: { resourceType: 'Group', created },
  } as StoredGroup;
}

export function createGroupStore(config: Config, redis: RedisClient, keyspace: Keyspace): GroupStore {
  return new GroupStore({ redis, keyspace, scimBase: `${config.issuer}/scim/v2`, limits: config.scim });
}
