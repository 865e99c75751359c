import { interactionPolicy } from 'oidc-provider';
import { addSmartPrompts, type SmartPromptDeps } from './record-context/record-context-prompt.js';

const { Check, base } = interactionPolicy;

/**
 * oidc-provider's prompts plus one login check. A browser session whose user has since been
 * deleted or deactivated still names that user, yet findAccount finds nobody; oidc-provider 9
 * would then fail later with a server error (its consent checks expect a grant). Asking for a
 * fresh sign-in is the right answer instead (`login_required` for prompt=none).
 *
 * With `smart`, the SMART launch steps go between login and consent (smart/interactions/prompts.ts).
 */
export function interactionPolicyWithAccountCheck(smart?: SmartPromptDeps): interactionPolicy.DefaultPolicy {
  const policy = base();
  policy.get('login')!.checks.add(
    new Check('account_unavailable', 'the signed-in account no longer exists or is disabled', 'login_required', (ctx) =>
      Boolean(ctx.oidc.session?.accountId) && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
    ),
  );
  if (smart) addSmartPrompts(policy, smart);
  return policy;
}
