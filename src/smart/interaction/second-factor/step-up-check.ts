import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { requestState } from '../../../platform/http/request-state.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { SecondFactors } from '../../../records/directory/factors/second-factors.js';
import { assuranceNeed, isMet, type AssuranceNeed } from './assurance-need.js';
import type { MfaPolicy } from './mfa-policy.js';

const { Check } = interactionPolicy;

/** The reason the login prompt gives when only a second factor is missing (the session's person stays). */
export const SECOND_FACTOR_REASON = 'second_factor_required';

/**
 * oidc-provider's own reasons that a fresh second factor answers without a new password: an
 * essential `acr` the session does not state (its checks compare the value exactly).
 */
const STEP_UP_REASONS: ReadonlySet<string> = new Set([SECOND_FACTOR_REASON, 'essential_acr', 'essential_acrs']);

/** The login prompt asks only for a stronger or fresher factor from the person already signed in. */
export function isStepUpOnly(reasons: readonly string[]): boolean {
  return reasons.length > 0 && reasons.every((r) => STEP_UP_REASONS.has(r));
}

export interface StepUpDeps {
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  factors: Pick<SecondFactors, 'hasAny'>;
  policy: MfaPolicy;
  /** mfa.breakTheGlassFreshSeconds */
  freshSeconds: number;
}

declare module '../../../platform/http/request-state.js' {
  interface RequestState {
    /** What this authorization asks of the signed-in person's sign-in; loaded once per pass through the policy. */
    assuranceNeed?: Promise<AssuranceNeed | undefined>;
  }
}

async function needOf(ctx: KoaContextWithOIDC, deps: StepUpDeps, accountId: string): Promise<AssuranceNeed | undefined> {
  const [user, roles, enrolled] = await Promise.all([
    deps.users.get(accountId),
    deps.users.effectiveRoles(accountId),
    deps.factors.hasAny(accountId),
  ]);
  if (!user?.active) return undefined; // the account check (login-prompt.ts) asks for a new sign-in then
  return assuranceNeed({ policy: deps.policy, user, roles, enrolled, params: ctx.oidc.params as Record<string, unknown> });
}

/**
 * A check of the login prompt: the session's sign-in must meet what this authorization needs — a
 * second factor when the policy names the person, they have set one up, or the app asks for it
 * (`acr_values`, an essential `acr`), and a fresh one to break the glass. A session that falls short is sent back
 * to sign-in, where only the second factor is asked (second-factor-page.ts); with `prompt=none`
 * the app gets `login_required`. This also catches sessions begun before the policy named the
 * person: they are stepped up at their next authorization, not trusted until they expire.
 */
export function secondFactorCheck(deps: StepUpDeps) {
  return new Check(SECOND_FACTOR_REASON, 'this authorization needs a second factor, or a fresher one', 'login_required', async (ctx) => {
    const session = ctx.oidc.session;
    const accountId = session?.accountId;
    // Without a signed-in account the prompt's other checks ask for a sign-in, which asks for the factor.
    if (!accountId || !ctx.oidc.account) return Check.NO_NEED_TO_PROMPT;
    const need = await (requestState(ctx).assuranceNeed ??= needOf(ctx, deps, accountId));
    if (!need) return Check.NO_NEED_TO_PROMPT;
    const now = Math.floor(Date.now() / 1000);
    return isMet(need, { amr: session.amr, authTime: session.authTime() }, now, deps.freshSeconds)
      ? Check.NO_NEED_TO_PROMPT
      : Check.REQUEST_PROMPT;
  });
}
