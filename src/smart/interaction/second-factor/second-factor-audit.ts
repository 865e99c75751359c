import type { AuditEvent } from '../../../records/audit/audit-event.js';
import type { VerifyOutcome } from '../../../records/directory/factors/types.js';
import type { SignInProgress } from '../login/sign-in-progress.js';

/** PENDING-MERGE: replaced by the factor-events builders. */
export function secondFactorEvents(
  _issuer: string,
  _input: { progress: SignInProgress; outcome: VerifyOutcome; kind: string; ip: string; clientId: unknown },
): AuditEvent[] {
  return [];
}
