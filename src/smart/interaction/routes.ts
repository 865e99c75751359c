import type Router from '@koa/router';
import type { PromptPages } from './login/login-page.js';
import { consentPage } from './consent/consent-page.js';
import { encounterPicker } from './select-encounter/encounter-picker.js';
import type { SmartPageDeps } from './pages/page-context.js';
import { patientPicker } from './select-patient/patient-picker.js';
import { SELECT_ENCOUNTER, SELECT_PATIENT } from './record-context/record-context-prompt.js';

export type { SmartPageDeps } from './pages/page-context.js';

/**
 * The pages between sign-in and the authorization code, by prompt name, for the interaction
 * dispatch in login/routes.ts:
 *
 *   GET  /interaction/:uid                   the page of the prompt the interaction waits for
 *   POST /interaction/:uid/patient-search    practitioner patient search (and its next pages)
 *   POST /interaction/:uid/patient           the chosen patient
 *   POST /interaction/:uid/encounter         the chosen encounter, or "none"
 *   POST /interaction/:uid/consent           Allow (with the ticked scopes) or Deny
 */
export function smartInteractionPages(deps: SmartPageDeps): PromptPages {
  return {
    show: {
      [SELECT_PATIENT]: (ctx, interaction) => patientPicker.show(ctx, deps, interaction),
      [SELECT_ENCOUNTER]: (ctx, interaction) => encounterPicker.show(ctx, deps, interaction),
      consent: (ctx, interaction) => consentPage.show(ctx, deps, interaction),
    },
    register(router: Router) {
      patientPicker.register(router, deps);
      encounterPicker.register(router, deps);
      consentPage.register(router, deps);
    },
  };
}
