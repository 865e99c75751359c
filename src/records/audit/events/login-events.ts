import type { AuditEvent } from '../audit-event.js';
import {
  anonymousUserAgent,
  auditEvent,
  authServerAgent,
  clientAgent,
  securityObject,
  userAgents,
  type AuditScope,
  type ClientInfo,
  type UserInfo,
} from './agents.js';
import { EVENT_TYPES, OBJECT_ROLES, STANDARD_SUBTYPES, local } from './vocabulary.js';

/**
 * Sign-in events. A failed attempt names the account only when the typed user name belongs to
 * one (by account id, never the typed text): people type passwords into the user-name field, and
 * a short typed secret is not protected by hashing it (a dictionary reverses an unsalted hash in
 * seconds). The outcome text is the page's generic message, so the trail does not say which part
 * was wrong either; the account id and the address are what an investigator needs.
 */

/** The app the sign-in is for, when the interaction names one. */
type ForClient = ClientInfo | undefined;

export function loginSucceeded(scope: AuditScope, input: { user: UserInfo; client?: ForClient }): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login],
    action: 'E',
    outcome: '0',
    agents: [
      ...userAgents(scope, input.user, true),
      authServerAgent(scope),
      ...(input.client ? [clientAgent(scope, input.client, false)] : []),
    ],
  });
}

/** The person behind a failed sign-in: the account when one was named, otherwise an anonymous user at the address. */
export function attemptAgents(scope: AuditScope, input: { accountId?: string; fhirUser?: string; ip?: string }) {
  return input.accountId
    ? userAgents(
        scope,
        { accountId: input.accountId, ...(input.fhirUser ? { fhirUser: input.fhirUser } : {}), ...(input.ip ? { ip: input.ip } : {}) },
        true,
      )
    : [anonymousUserAgent(input.ip)];
}

export function loginFailed(
  scope: AuditScope,
  input: { accountId?: string; fhirUser?: string; ip?: string; client?: ForClient; description: string },
): AuditEvent {
  const user = attemptAgents(scope, input);
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login, local('login-failed')],
    action: 'E',
    outcome: '4',
    outcomeDesc: input.description,
    agents: [...user, authServerAgent(scope), ...(input.client ? [clientAgent(scope, input.client, false)] : [])],
  });
}

/** Repeated wrong passwords or second factors locked an account: a security alert (serious). */
export function accountLocked(
  scope: AuditScope,
  input: { accountId: string; fhirUser?: string; ip?: string; failures?: number; lockSeconds?: number },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('account-locked'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: 'U',
    outcome: '8',
    outcomeDesc: 'account locked after repeated wrong passwords or second factors',
    agents: [
      ...userAgents(
        scope,
        { accountId: input.accountId, ...(input.fhirUser ? { fhirUser: input.fhirUser } : {}), ...(input.ip ? { ip: input.ip } : {}) },
        true,
      ),
      authServerAgent(scope),
    ],
    entities: [
      securityObject({ system: scope.issuer, value: input.accountId }, OBJECT_ROLES.securityUser, {
        failures: input.failures,
        lock_seconds: input.lockSeconds,
      }),
    ],
  });
}

export function loggedOut(scope: AuditScope, input: { user?: UserInfo; client?: ForClient; ip?: string; everywhere: boolean }): AuditEvent {
  const agents = input.user
    ? userAgents(scope, { ...input.user, ...(input.ip ? { ip: input.ip } : {}) }, true)
    : [anonymousUserAgent(input.ip)];
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.logout],
    action: 'E',
    outcome: '0',
    outcomeDesc: input.everywhere ? 'signed out of the session' : 'signed out of one app',
    agents: [...agents, authServerAgent(scope), ...(input.client ? [clientAgent(scope, input.client, false)] : [])],
  });
}
