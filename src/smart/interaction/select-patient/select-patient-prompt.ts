import { interactionPolicy } from 'oidc-provider';
import { clientMayHave, type AuthorizationFacts } from '../facts/authorization-facts.js';
import { patientIdOf } from '../facts/fhir-user.js';
import { decided, factsOf, type SmartPromptDeps } from '../prompt-facts.js';

const { Check, Prompt } = interactionPolicy;

/**
 * When the `select_patient` step is needed: a standalone launch asks for launch/patient and no
 * patient is known yet (none from the EHR launch, none picked in this authorization, and the user
 * is not a patient, whose own record is the answer). Its page is patient-picker.ts.
 */

export const SELECT_PATIENT = 'select_patient';

/** The patient the EHR launch names, if the request uses one. Missing launches are refused later. */
async function launchPatient(facts: AuthorizationFacts, deps: SmartPromptDeps): Promise<string | undefined> {
  if (!facts.launch) return undefined;
  return patientIdOf((await deps.launches.get(facts.launch))?.patient);
}

async function patientKnown(facts: AuthorizationFacts, deps: SmartPromptDeps): Promise<boolean> {
  return Boolean(facts.picks.patient ?? facts.user.ownPatient ?? (await launchPatient(facts, deps)));
}

export function selectPatientPrompt(deps: SmartPromptDeps) {
  return new Prompt(
    { name: SELECT_PATIENT, requestable: false },
    new Check('patient_not_selected', 'a patient must be selected for launch/patient', 'interaction_required', async (ctx) => {
      if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
      const facts = await factsOf(ctx, deps);
      if (!facts || !facts.requested.includes('launch/patient') || !clientMayHave(facts, 'launch/patient')) return Check.NO_NEED_TO_PROMPT;
      return (await patientKnown(facts, deps)) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
}
