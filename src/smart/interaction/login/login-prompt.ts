import { interactionPolicy } from 'oidc-provider';

const { Check } = interactionPolicy;

/**
 * oidc-provider's `login` prompt, plus one check. A browser session whose user has since been
 * deleted or deactivated still names that user, yet findAccount finds nobody; oidc-provider 9
 * would then fail later with a server error (its consent checks expect a grant). Asking for a
 * fresh sign-in is the right answer instead (`login_required` for prompt=none). Its page is
 * login-page.ts.
 */
export function accountUnavailableCheck() {
  return new Check('account_unavailable', 'the signed-in account no longer exists or is disabled', 'login_required', (ctx) =>
    Boolean(ctx.oidc.session?.accountId) && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
  );
}
