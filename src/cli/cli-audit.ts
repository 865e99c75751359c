import { hostname, userInfo } from 'node:os';
import type { ClientRegistry, ClientKeys, ClientMetadata, UpsertOptions, UpsertResult } from '../oauth/clients/registry.js';
import type { UserStore } from '../records/directory/user-store.js';
import type { LockState } from '../records/directory/lockout.js';
import type { ScimUser } from '../records/directory/model.js';
import type { AuditRecorder } from '../records/audit/trail.js';
import type { OperatorInfo } from '../records/audit/events/agents.js';
import { clientChanged, directoryChanged, keyChanged, passwordChanged, type KeyChange } from '../records/audit/events/admin-events.js';

/**
 * The CLI changes clients, users and keys without HTTP, so its commands get the same trail: the
 * stores they use are wrapped so each change is recorded (after it is made, before the command
 * reports success). The actor is the operator account on the host running the command.
 */

export function cliOperator(): OperatorInfo {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): the host still identifies where it ran.
  }
  const host = hostname();
  return { display: `smart-authz CLI (${user}@${host})`, host };
}

export interface CliAudit {
  audit: AuditRecorder;
  issuer: string;
  operator: OperatorInfo;
}

function scopeOf(a: CliAudit) {
  return { issuer: a.issuer, now: new Date() };
}

/** Field names only: values can be secrets or keys. */
function fieldsOf(input: ClientMetadata): string[] {
  return Object.keys(input)
    .filter((k) => k !== 'client_id')
    .sort();
}

/** A registry whose changes are recorded; reads pass through. */
export function auditedRegistry(registry: ClientRegistry, a: CliAudit): ClientRegistry {
  const audited = Object.create(registry) as ClientRegistry;
  const actor = { operator: a.operator };
  const record = async (
    result: UpsertResult,
    id: string,
    change: 'create' | 'update',
    extra: { fields?: string[]; secretRotated?: boolean; keysReplaced?: boolean },
  ) => {
    if (result.status === 'unchanged') return;
    const kind = typeof result.client.smart_client_kind === 'string' ? result.client.smart_client_kind : undefined;
    await a.audit.record(
      clientChanged(scopeOf(a), {
        actor,
        clientId: id,
        change: result.status === 'created' ? 'create' : change,
        via: 'cli',
        ...(kind ? { kind } : {}),
        ...extra,
      }),
    );
  };
  audited.create = async (input: ClientMetadata, options?: UpsertOptions) => {
    const result = await registry.create(input, options);
    await record(result, String(result.client.client_id ?? input.client_id), 'create', { fields: fieldsOf(input) });
    return result;
  };
  audited.update = async (id: string, patch: ClientMetadata, options?: UpsertOptions) => {
    const result = await registry.update(id, patch, options);
    await record(result, id, 'update', { fields: fieldsOf(patch) });
    return result;
  };
  audited.remove = async (id: string) => {
    const removed = await registry.remove(id);
    if (removed) await a.audit.record(clientChanged(scopeOf(a), { actor, clientId: id, change: 'delete', via: 'cli' }));
    return removed;
  };
  audited.rotateSecret = async (id: string) => {
    const secret = await registry.rotateSecret(id);
    await a.audit.record(
      clientChanged(scopeOf(a), { actor, clientId: id, change: 'update', via: 'cli', fields: ['client_secret'], secretRotated: true }),
    );
    return secret;
  };
  audited.setJwks = async (id: string, keys: ClientKeys) => {
    const result = await registry.setJwks(id, keys);
    await record(result, id, 'update', { fields: Object.keys(keys), keysReplaced: true });
    return result;
  };
  return audited;
}

/** A user store whose CLI changes (create, password, enable/disable) are recorded. */
export function auditedUserStore(users: UserStore, a: CliAudit): UserStore {
  const audited = Object.create(users) as UserStore;
  const actor = { operator: a.operator };
  audited.create = async (input: unknown): Promise<ScimUser> => {
    const user = await users.create(input);
    await a.audit.record(directoryChanged(scopeOf(a), { actor, resource: 'User', change: 'create', id: user.id, name: user.userName }));
    const password = typeof input === 'object' && input !== null && 'password' in input;
    if (password) await a.audit.record(passwordChanged(scopeOf(a), { actor, userId: user.id, userName: user.userName }));
    return user;
  };
  audited.setPassword = async (id: string, plain: string) => {
    await users.setPassword(id, plain);
    await a.audit.record(passwordChanged(scopeOf(a), { actor, userId: id }));
  };
  audited.setActive = async (id: string, active: boolean) => {
    const user = await users.setActive(id, active);
    await a.audit.record(directoryChanged(scopeOf(a), { actor, resource: 'User', change: 'update', id, name: user.userName, active }));
    return user;
  };
  return audited;
}

/** Lifting a lock-out is a change to the account's security state. */
export function auditedLockState<T extends LockState>(lockout: T, a: CliAudit): T {
  const audited = Object.create(lockout) as T;
  audited.clear = async (userId: string) => {
    await lockout.clear(userId);
    await a.audit.record(
      directoryChanged(scopeOf(a), { actor: { operator: a.operator }, resource: 'User', change: 'update', id: userId, unlocked: true }),
    );
  };
  return audited;
}

export async function recordKeyChange(
  a: CliAudit,
  change: KeyChange,
  facts: { kid?: string; kty?: string; retired?: string[]; count?: number } = {},
): Promise<void> {
  await a.audit.record(keyChanged(scopeOf(a), { actor: { operator: a.operator }, change, ...facts }));
}
