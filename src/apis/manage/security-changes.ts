import { PageError } from '../../platform/http/error-page.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import { factorEnrolled, factorRemoved } from '../../records/audit/events/factor-events.js';
import type { Manage, Step } from './context.js';
import { accountOf, actorOf, kindName, policyRequiresFactor, renderSecurity } from './security-page.js';

/**
 * Removing a second factor and making new recovery codes, on the account page. Removing the last
 * factor of a person the MFA policy requires is refused with a readable page (they would be led
 * through enrolment at their next sign-in, but the page does not leave them without one
 * silently). New codes replace every earlier one and are shown once. Each change is recorded in
 * the audit trail before the page is sent.
 */

type Trail = Pick<AuditTrail, 'record'>;

const FACTOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_SUCH_FACTOR = 'There is no such second factor on your account. Go back to the security page and reload it.';

/** POST /manage/security/factors/:id/remove */
export function removeFactor(m: Manage, trail: Trail): Step {
  return async function removeFactor(ctx) {
    const account = await accountOf(m, ctx.state);
    const id = ctx.params.id ?? '';
    const { factors } = await m.deps.factors.snapshot(account.id);
    // Only the person's own factors are looked up: anyone else's id is one that does not exist.
    const factor = FACTOR_ID.test(id) ? factors.find((f) => f.id === id) : undefined;
    if (!factor) throw new PageError(404, 'not_found', NO_SUCH_FACTOR);
    const removed = await m.deps.factors.remove(account.id, factor.id, { keepLast: await policyRequiresFactor(m, account) });
    if (removed === 'missing') throw new PageError(404, 'not_found', NO_SUCH_FACTOR);
    if (removed === 'last-kept') {
      return renderSecurity(m, ctx, {
        status: 409,
        error:
          'This is your only second factor, and your organisation requires one for your account: it was not removed. Add another authenticator app, passkey or security key first, then remove this one.',
      });
    }
    await trail.record(
      factorRemoved(
        { issuer: m.config.issuer },
        { actor: { user: actorOf(ctx) }, accountId: account.id, factorId: factor.id, kind: factor.kind, label: factor.label },
      ),
    );
    await renderSecurity(m, ctx, { notice: `${kindName(factor)} removed: ${factor.label}. It no longer signs you in.` });
  };
}

/** POST /manage/security/recovery-codes: a new set, replacing the old one; shown once. */
export function makeRecoveryCodes(m: Manage, trail: Trail): Step {
  return async function makeRecoveryCodes(ctx) {
    const sub = ctx.state.session!.sub;
    // Recovery codes stand in for a factor: with none to stand in for, they would only be a second password.
    if (!(await m.deps.factors.hasAny(sub))) {
      return renderSecurity(m, ctx, {
        status: 400,
        error: 'Recovery codes stand in for a second factor: add an authenticator app, passkey or security key first.',
      });
    }
    const codes = await m.deps.factors.newRecoveryCodes(sub);
    await trail.record(
      factorEnrolled({ issuer: m.config.issuer }, { actor: { user: actorOf(ctx) }, accountId: sub, kind: 'recovery', count: codes.length }),
    );
    await renderSecurity(m, ctx, { notice: 'New recovery codes made: the earlier ones no longer work.', codes });
  };
}
