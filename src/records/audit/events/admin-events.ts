import type { AuditEvent } from '../audit-event.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  clientIdSystem,
  operatorAgent,
  patientEntity,
  securityObject,
  tokenIdentifier,
  type Agent,
  type AuditScope,
  type ClientInfo,
  type Details,
  type OperatorInfo,
} from './agents.js';
import { AGENT_TYPES, EVENT_TYPES, OBJECT_ROLES, STANDARD_SUBTYPES, local, type LocalSubtype } from './vocabulary.js';

/**
 * Administrative changes: EHR launch contexts, SCIM users and groups, passwords, clients and
 * signing keys. The actor is an API client (HTTP) or an operator at the CLI.
 */

export type Actor = { client: ClientInfo } | { operator: OperatorInfo };

function actorAgents(scope: AuditScope, actor: Actor): Agent[] {
  const who = 'client' in actor ? clientAgent(scope, actor.client, true) : operatorAgent(actor.operator);
  return [who, authServerAgent(scope)];
}

export type ChangeKind = 'create' | 'update' | 'patch' | 'delete';

const ACTION = { create: 'C', update: 'U', patch: 'U', delete: 'D' } as const;

export interface LaunchCreatedInput {
  launcher: ClientInfo;
  /** The app the launch is for. */
  appClientId?: string;
  patient?: string;
  encounter?: string;
  /** The launch's user account, when the EHR named one. */
  accountId?: string;
  aud?: string;
  expiresIn?: number;
  /** The `launch` value: a bearer secret, so only its SHA-256 is recorded. */
  launch: string;
}

/** An EHR created a launch context. */
export function launchCreated(scope: AuditScope, input: LaunchCreatedInput): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.rest,
    subtype: [STANDARD_SUBTYPES.create, local('launch-created')],
    action: 'C',
    outcome: '0',
    agents: [
      clientAgent(scope, input.launcher, true, [AGENT_TYPES.applicationLauncher]),
      ...(input.appClientId ? [clientAgent(scope, { clientId: input.appClientId }, false)] : []),
      authServerAgent(scope),
    ],
    entities: [
      ...(input.patient ? [patientEntity(input.patient)] : []),
      securityObject(tokenIdentifier({ opaqueValue: input.launch }), OBJECT_ROLES.securityResource, {
        kind: 'launch',
        client_id: input.appClientId,
        encounter: input.encounter,
        user: input.accountId,
        aud: input.aud,
        expires_in: input.expiresIn,
      }),
    ],
  });
}

/** SCIM resource location, the identifier system of user and group ids. */
export function scimSystem(issuer: string, resource: 'Users' | 'Groups'): string {
  return `${issuer.replace(/\/$/, '')}/scim/v2/${resource}`;
}

export interface DirectoryChangeInput {
  actor: Actor;
  resource: 'User' | 'Group';
  change: ChangeKind;
  id: string;
  /** userName or displayName: public directory attributes. */
  name?: string;
  /** For users: whether active changed to this value (CLI enable/disable). */
  active?: boolean;
  /** The change set a password (a password change gets its own event too). */
  passwordSet?: boolean;
  /** An operator lifted a lock-out. */
  unlocked?: boolean;
}

const DIRECTORY_SUBTYPE: Record<'User' | 'Group', Record<ChangeKind, LocalSubtype>> = {
  User: { create: 'user-created', update: 'user-updated', patch: 'user-updated', delete: 'user-deleted' },
  Group: { create: 'group-created', update: 'group-updated', patch: 'group-updated', delete: 'group-deleted' },
};

export function directoryChanged(scope: AuditScope, input: DirectoryChangeInput): AuditEvent {
  const system = scimSystem(scope.issuer, input.resource === 'User' ? 'Users' : 'Groups');
  return auditEvent(scope, {
    type: EVENT_TYPES.rest,
    subtype: [STANDARD_SUBTYPES[input.change], local(DIRECTORY_SUBTYPE[input.resource][input.change])],
    action: ACTION[input.change],
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      securityObject(
        { system, value: input.id },
        input.resource === 'User' ? OBJECT_ROLES.securityUser : OBJECT_ROLES.securityGroup,
        { active: input.active, password_set: input.passwordSet, unlocked: input.unlocked },
        input.name,
      ),
    ],
  });
}

/** A user's password was set or changed (the value never appears). */
export function passwordChanged(scope: AuditScope, input: { actor: Actor; userId: string; userName?: string }): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('password-changed'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: 'U',
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      securityObject(
        { system: scimSystem(scope.issuer, 'Users'), value: input.userId },
        OBJECT_ROLES.securityUser,
        { attribute: 'password' },
        input.userName,
      ),
    ],
  });
}

export interface ClientChangeInput {
  actor: Actor;
  clientId: string;
  change: 'create' | 'update' | 'delete';
  /** Names of the metadata fields changed (values may hold secrets: never copied). */
  fields?: string[];
  kind?: string;
  secretRotated?: boolean;
  keysReplaced?: boolean;
  /** How the change came: dynamic registration (RFC 7591/7592) or the CLI. */
  via: 'registration' | 'management' | 'cli';
}

const CLIENT_SUBTYPE = { create: 'client-registered', update: 'client-updated', delete: 'client-deleted' } as const;

export function clientChanged(scope: AuditScope, input: ClientChangeInput): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.rest,
    subtype: [STANDARD_SUBTYPES[input.change], local(CLIENT_SUBTYPE[input.change])],
    action: ACTION[input.change],
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      securityObject({ system: clientIdSystem(scope.issuer), value: input.clientId }, OBJECT_ROLES.securityResource, {
        via: input.via,
        smart_client_kind: input.kind,
        fields: input.fields?.join(' '),
        secret_rotated: input.secretRotated,
        keys_replaced: input.keysReplaced,
      }),
    ],
  });
}

export type KeyChange = 'introduced' | 'promoted' | 'removed' | 'reencrypted';

const KEY_SUBTYPE: Record<KeyChange, LocalSubtype> = {
  introduced: 'key-introduced',
  promoted: 'key-promoted',
  removed: 'key-removed',
  reencrypted: 'keys-reencrypted',
};

/** Signing-key rotation steps; a kid is public (it is in the JWKS), key material never appears. */
export function keyChanged(
  scope: AuditScope,
  input: { actor: Actor; change: KeyChange; kid?: string; kty?: string; retired?: string[]; count?: number },
): AuditEvent {
  const values: Details = { kty: input.kty, retired: input.retired?.join(' '), keys: input.count };
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local(KEY_SUBTYPE[input.change]), STANDARD_SUBTYPES.securityConfiguration],
    action: input.change === 'introduced' ? 'C' : input.change === 'removed' ? 'D' : 'U',
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      securityObject(
        { system: `${scope.issuer.replace(/\/$/, '')}/.well-known/jwks.json`, value: input.kid ?? 'all' },
        OBJECT_ROLES.securityResource,
        values,
        input.kid ? `signing key ${input.kid}` : 'signing keys',
      ),
    ],
  });
}
