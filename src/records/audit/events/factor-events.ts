import type { AuditEvent } from '../audit-event.js';
import { type Actor, scimSystem } from './admin-events.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  operatorAgent,
  securityObject,
  userAgents,
  type Agent,
  type AuditScope,
  type ClientInfo,
  type UserInfo,
} from './agents.js';
import { EVENT_TYPES, OBJECT_ROLES, STANDARD_SUBTYPES, local } from './vocabulary.js';

/**
 * Second factors (records/directory/factors/): enrolled, removed, reset by an administrator,
 * verified and failed at sign-in. A factor is named by its id, kind and label, never by a secret,
 * code, public key or assertion; the user account is the Security User entity.
 */

export type SecondFactorKind = 'totp' | 'webauthn' | 'recovery';

/** Who changed the factors: the user themself (account page, sign-in enrolment) or an administrator. */
export type FactorActor = { user: UserInfo } | Actor;

function actorAgents(scope: AuditScope, actor: FactorActor): Agent[] {
  if ('user' in actor) return [...userAgents(scope, actor.user, true), authServerAgent(scope)];
  const who = 'client' in actor ? clientAgent(scope, actor.client, true) : operatorAgent(actor.operator);
  return [who, authServerAgent(scope)];
}

function accountEntity(scope: AuditScope, accountId: string, values: Parameters<typeof securityObject>[2], userName?: string) {
  return securityObject({ system: scimSystem(scope.issuer, 'Users'), value: accountId }, OBJECT_ROLES.securityUser, values, userName);
}

export interface FactorEnrolledInput {
  actor: FactorActor;
  accountId: string;
  kind: SecondFactorKind;
  /** The factor's id (recovery codes: none, they are issued as a set). */
  factorId?: string;
  label?: string;
  /** WebAuthn: hwk (device-bound) or swk (synced passkey). */
  keyType?: 'hwk' | 'swk';
  /** Recovery codes: how many were issued (the earlier ones stop working). */
  count?: number;
}

/** A second factor was added, or a new set of recovery codes issued. */
export function factorEnrolled(scope: AuditScope, input: FactorEnrolledInput): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('mfa-enrolled'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: 'C',
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      accountEntity(scope, input.accountId, {
        factor_kind: input.kind,
        factor_id: input.factorId,
        factor_label: input.label,
        key_type: input.keyType,
        count: input.count,
      }),
    ],
  });
}

/** One second factor was removed, by the user or an administrator. */
export function factorRemoved(
  scope: AuditScope,
  input: { actor: FactorActor; accountId: string; factorId: string; kind?: SecondFactorKind; label?: string; userName?: string },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('mfa-removed'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: 'D',
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      accountEntity(
        scope,
        input.accountId,
        { factor_kind: input.kind, factor_id: input.factorId, factor_label: input.label },
        input.userName,
      ),
    ],
  });
}

/** An administrator removed every second factor and recovery code of a user (lost device, compromise). */
export function factorsReset(
  scope: AuditScope,
  input: { actor: Actor; accountId: string; userName?: string; factors: number; recoveryCodes: number },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('mfa-reset'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: 'D',
    outcome: '0',
    agents: actorAgents(scope, input.actor),
    entities: [
      accountEntity(
        scope,
        input.accountId,
        { factors_removed: input.factors, recovery_codes_removed: input.recoveryCodes },
        input.userName,
      ),
    ],
  });
}

export interface SecondFactorCheckInput {
  user: UserInfo;
  kind: SecondFactorKind;
  /** The app the sign-in is for, when the interaction names one. */
  client?: ClientInfo;
}

/** A second factor was verified at sign-in (or step-up). */
export function secondFactorVerified(scope: AuditScope, input: SecondFactorCheckInput & { factorId: string; amr?: string[] }): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login, local('mfa-verified')],
    action: 'E',
    outcome: '0',
    agents: [
      ...userAgents(scope, input.user, true),
      authServerAgent(scope),
      ...(input.client ? [clientAgent(scope, input.client, false)] : []),
    ],
    entities: [
      accountEntity(scope, input.user.accountId, { factor_kind: input.kind, factor_id: input.factorId, amr: input.amr?.join(' ') }),
    ],
  });
}

/**
 * A second factor was refused: a wrong or reused code, an invalid assertion, or the account locked.
 * (The failure that locks the account is followed by the accountLocked event of login-events.ts.)
 */
export function secondFactorFailed(
  scope: AuditScope,
  input: SecondFactorCheckInput & { reason: 'invalid' | 'reused' | 'locked' | 'no_factor' },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login, local('mfa-failed')],
    action: 'E',
    outcome: '4',
    outcomeDesc: FAILURE_TEXT[input.reason],
    agents: [
      ...userAgents(scope, input.user, true),
      authServerAgent(scope),
      ...(input.client ? [clientAgent(scope, input.client, false)] : []),
    ],
    entities: [accountEntity(scope, input.user.accountId, { factor_kind: input.kind, reason: input.reason })],
  });
}

const FAILURE_TEXT = {
  invalid: 'second factor not accepted',
  reused: 'one-time code already used',
  locked: 'account locked: second factor not checked',
  no_factor: 'no second factor of that kind enrolled',
} as const;
