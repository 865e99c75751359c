import { interactionPolicy } from 'oidc-provider';
import { clientMayHave } from '../facts/authorization-facts.js';
import { decided, factsOf, type SmartPromptDeps } from '../prompt-facts.js';

const { Check, Prompt } = interactionPolicy;

/**
 * When the `select_encounter` step is needed: launch/encounter in a standalone launch, with a
 * patient, not yet decided. Its page is encounter-picker.ts.
 */

export const SELECT_ENCOUNTER = 'select_encounter';

export function selectEncounterPrompt(deps: SmartPromptDeps) {
  return new Prompt(
    { name: SELECT_ENCOUNTER, requestable: false },
    new Check('encounter_not_selected', 'an encounter must be selected for launch/encounter', 'interaction_required', async (ctx) => {
      if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
      const facts = await factsOf(ctx, deps);
      // In an EHR launch the EHR supplies the encounter (launch/encounter is only a hint there).
      if (!facts || facts.launch || !facts.requested.includes('launch/encounter') || !clientMayHave(facts, 'launch/encounter'))
        return Check.NO_NEED_TO_PROMPT;
      if (facts.picks.encounterDecided) return Check.NO_NEED_TO_PROMPT;
      return (facts.picks.patient ?? facts.user.ownPatient) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
}
