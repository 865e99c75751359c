import { interactionPolicy } from 'oidc-provider';
import { requestState } from '../../../platform/http/request-state.js';
import { isManageClient } from '../../../oauth/clients/manage-client.js';
import { isEmergencyPurpose } from '../../../domain/hcs/vocabulary.js';
import { grantDecidesAll } from '../facts/grant-builder.js';
import { decided, factsOf, type SmartPromptDeps } from '../prompt-facts.js';
import { RecordError } from '../record-context/context-recorder.js';
import { silentPlanOf, type SilentPlan } from '../record-context/record-context-prompt.js';
import { clientAskedForConsent, consentPerformer, mayRemember, needsConsent, rememberedConsent } from './consent-gate.js';

const { Check } = interactionPolicy;

/**
 * When oidc-provider's `consent` step is needed, beyond its own checks:
 * - every requested resource scope must already be decided by the grant (oidc-provider's own check
 *   compares by string with the server's scope list, which holds patterns);
 * - emergency access is never granted silently;
 * - when the grant would carry patient/ scopes, an active Consent of this user for this app and
 *   patient must cover them (remembered consent, consent-gate.ts), else the page asks (or
 *   prompt=none gets consent_required). The Consent found is what record_context then stands on.
 * Its page is consent-page.ts.
 */

function resourceScopesDecidedCheck(deps: SmartPromptDeps) {
  return new Check('smart_scopes_undecided', 'requested scopes not granted', 'consent_required', async (ctx) => {
    if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
    const facts = await factsOf(ctx, deps);
    const grant = ctx.oidc.entities.Grant;
    if (!facts || !grant) return Check.NO_NEED_TO_PROMPT;
    return grantDecidesAll(grant, facts.audience, facts.requested) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
  });
}

/** Emergency access is never granted silently: the consent page asks for the reason every time. */
function emergencyAccessCheck(deps: SmartPromptDeps) {
  return new Check('smart_emergency_access', 'emergency access needs a stated reason', 'consent_required', async (ctx) => {
    if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
    const facts = await factsOf(ctx, deps);
    return facts?.purposes.some(isEmergencyPurpose) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
  });
}

function patientConsentCheck(deps: SmartPromptDeps) {
  return new Check(
    'smart_patient_consent_missing',
    'no active patient consent covers the requested scopes',
    'consent_required',
    async (ctx) => {
      if (decided(ctx) || !deps.consents) return Check.NO_NEED_TO_PROMPT;
      let silent: SilentPlan | undefined;
      try {
        silent = await silentPlanOf(ctx, deps);
      } catch (err) {
        // A used-up launch and the like: record_context reports it to the app.
        if (err instanceof RecordError) return Check.NO_NEED_TO_PROMPT;
        throw err;
      }
      if (!silent || isManageClient(silent.facts.clientId) || !needsConsent(silent.plan.patient, silent.approved))
        return Check.NO_NEED_TO_PROMPT;
      if (!consentPerformer(silent.facts.user)) return Check.REQUEST_PROMPT;
      const situation = {
        mode: deps.rememberConsent ?? 'silent',
        ehrLaunch: silent.facts.launch !== undefined,
        promptNone: ctx.oidc.prompts.has('none'),
        clientAskedConsent: clientAskedForConsent(ctx.oidc.params as Record<string, unknown>),
      } as const;
      if (!mayRemember(situation)) return Check.REQUEST_PROMPT;
      const remembered = await rememberedConsent(deps.consents, silent.facts, silent.plan.patient, silent.approved);
      if (!remembered.covering) return Check.REQUEST_PROMPT;
      requestState(ctx).coveringConsentId = remembered.covering.resource.id;
      return Check.NO_NEED_TO_PROMPT;
    },
  );
}

/** The SMART checks added to oidc-provider's consent prompt, in the order they run. */
export function consentChecks(deps: SmartPromptDeps) {
  return [resourceScopesDecidedCheck(deps), emergencyAccessCheck(deps), patientConsentCheck(deps)];
}
