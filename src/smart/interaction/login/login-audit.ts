import type { AuditEvent } from '../../../records/audit/audit-event.js';
import { accountLocked, loginFailed, loginSucceeded } from '../../../records/audit/events/login-events.js';
import type { LoginOutcome } from './password-login.js';
import { GENERIC_FAILURE } from './password-login.js';
import { SMART_USER_SCHEMA } from '../../../records/directory/model.js';

/** The events of one sign-in attempt: success, or failure (plus a lock-out when it caused one). */
export function loginAttemptEvents(issuer: string, outcome: LoginOutcome, at: { ip: string; clientId?: unknown }): AuditEvent[] {
  const scope = { issuer, now: new Date() };
  const client = typeof at.clientId === 'string' ? { clientId: at.clientId } : undefined;
  if (outcome.ok) {
    const fhirUser = outcome.user[SMART_USER_SCHEMA]?.fhirUser;
    return [
      loginSucceeded(scope, {
        user: { accountId: outcome.user.id, ...(fhirUser ? { fhirUser } : {}), ip: at.ip },
        ...(client ? { client } : {}),
      }),
    ];
  }
  if (outcome.reason === 'rate_limited') {
    return [
      loginFailed(scope, { ip: at.ip, ...(client ? { client } : {}), description: 'too many sign-in attempts from this network address' }),
    ];
  }
  const account = outcome.account;
  const events = [
    loginFailed(scope, {
      ...(account ? { accountId: account.id, ...(account.fhirUser ? { fhirUser: account.fhirUser } : {}) } : {}),
      ip: at.ip,
      ...(client ? { client } : {}),
      description: GENERIC_FAILURE,
    }),
  ];
  if (account && outcome.lockedNow)
    events.push(accountLocked(scope, { accountId: account.id, ...(account.fhirUser ? { fhirUser: account.fhirUser } : {}), ip: at.ip }));
  return events;
}
