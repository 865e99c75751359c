import { interactionPolicy } from 'oidc-provider';
import { accountUnavailableCheck } from './login/login-prompt.js';
import { selectPatientPrompt } from './select-patient/select-patient-prompt.js';
import { selectEncounterPrompt } from './select-encounter/select-encounter-prompt.js';
import { consentChecks } from './consent/consent-prompt.js';
import { recordContextPrompt } from './record-context/record-context-prompt.js';
import type { SmartPromptDeps } from './prompt-facts.js';
import { secondFactorCheck, type StepUpDeps } from './second-factor/step-up-check.js';

const { base } = interactionPolicy;

/**
 * The sign-in flow of an authorization, as oidc-provider's interaction policy. At the
 * authorization endpoint (and again each time a page hands its result back) oidc-provider runs the
 * prompts below in order; the first whose checks ask for it sends the browser to its page
 * (routes.ts, GET /interaction/:uid), and when none does the authorization completes.
 *
 *   1. login            sign in with username and password. oidc-provider's prompt, plus a check
 *                       that the session's account still exists (login/login-prompt.ts) and one
 *                       that its sign-in is strong and fresh enough for this authorization: a
 *                       second factor by policy, for `acr_values`, and within minutes to break the
 *                       glass (second-factor/step-up-check.ts). Pages: login/login-page.ts
 *                       (password-login.ts: network limit, account lock-out; login-audit.ts: every
 *                       attempt in the audit trail), then second-factor/second-factor-page.ts.
 *   2. select_patient   a standalone launch with launch/patient and no patient yet
 *                       (select-patient/select-patient-prompt.ts). Page: a caregiver's patients or
 *                       a staff search (select-patient/patient-picker.ts, through fhir-search/).
 *   3. select_encounter a standalone launch with launch/encounter and a patient
 *                       (select-encounter/select-encounter-prompt.ts). Page:
 *                       select-encounter/encounter-picker.ts.
 *   4. consent          oidc-provider's prompt, plus the SMART checks: undecided scopes, emergency
 *                       access, and patient/ scopes no remembered Consent covers
 *                       (consent/consent-prompt.ts, consent/consent-gate.ts). Page:
 *                       consent/consent-page.ts, whose Allow records the Consent, the grant and its
 *                       launch context (record-context/context-recorder.ts).
 *   5. record_context   no page: when consent was not asked (an SSO re-launch, prompt=none from
 *                       the EHR), records this authorization's grant and launch context from the
 *                       previous approvals (record-context/record-context-prompt.ts).
 *
 * The checks share the authorization's facts, loaded once per request (prompt-facts.ts); the pages
 * load the same facts from the stored interaction (pages/page-context.ts). What the user picked on
 * the way travels in the interaction result (facts/picks.ts).
 *
 * Without `smart`, only oidc-provider's login (with the account check) and consent prompts.
 */
export function interactionPolicyWithAccountCheck(smart?: SmartPromptDeps, stepUp?: StepUpDeps): interactionPolicy.DefaultPolicy {
  const policy = base();
  policy.get('login')!.checks.add(accountUnavailableCheck());
  if (stepUp) policy.get('login')!.checks.add(secondFactorCheck(stepUp));
  if (!smart) return policy;
  const consentAt = policy.findIndex((p) => p.name === 'consent');
  if (consentAt < 0) throw new Error('the interaction policy has no consent prompt');
  policy.add(selectPatientPrompt(smart), consentAt);
  policy.add(selectEncounterPrompt(smart), consentAt + 1);
  for (const check of consentChecks(smart)) policy.get('consent')!.checks.add(check);
  policy.add(recordContextPrompt(smart));
  return policy;
}
