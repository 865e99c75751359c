import type { AuditEvent } from '../../../records/audit/audit-event.js';
import { accountLocked } from '../../../records/audit/events/login-events.js';
import { factorEnrolled, secondFactorFailed, secondFactorVerified } from '../../../records/audit/events/factor-events.js';
import type { FactorSummary, VerifyAttempt, VerifyOutcome } from '../../../records/directory/factors/types.js';
import type { SignInProgress } from '../login/sign-in-progress.js';

/**
 * The AuditEvents of one second-factor step of a sign-in: the factor verified, or failed (and the
 * lock-out it caused), or set up during the sign-in. The account is named by id; codes and
 * assertions never appear.
 */

interface At {
  ip: string;
  clientId: unknown;
}

function scopeAndParties(issuer: string, progress: SignInProgress, at: At) {
  return {
    scope: { issuer, now: new Date() },
    user: { accountId: progress.accountId, ip: at.ip },
    client: typeof at.clientId === 'string' ? { clientId: at.clientId } : undefined,
  };
}

export function verifyEvents(
  issuer: string,
  progress: SignInProgress,
  kind: VerifyAttempt['kind'],
  outcome: VerifyOutcome,
  at: At,
): AuditEvent[] {
  const { scope, user, client } = scopeAndParties(issuer, progress, at);
  const forClient = client ? { client } : {};
  if (outcome.ok) return [secondFactorVerified(scope, { user, kind, factorId: outcome.factorId, amr: outcome.amr, ...forClient })];
  const events = [secondFactorFailed(scope, { user, kind, reason: outcome.reason, ...forClient })];
  if (outcome.lockedNow) events.push(accountLocked(scope, { accountId: progress.accountId, ip: at.ip }));
  return events;
}

export function enrolledEvent(issuer: string, progress: SignInProgress, factor: FactorSummary, at: At): AuditEvent {
  const { scope, user } = scopeAndParties(issuer, progress, at);
  return factorEnrolled(scope, {
    actor: { user },
    accountId: progress.accountId,
    kind: factor.kind,
    factorId: factor.id,
    label: factor.label,
  });
}
