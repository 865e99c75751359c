import Router from '@koa/router';
import type { InteractionResults } from 'oidc-provider';
import { PageError } from '../../platform/http/error-page.js';
import { readForm } from './pages/form.js';
import { checkCsrf, finish, interactionFor, refuseCrossSite, type PromptPage } from './pages/interaction-http.js';
import type { SmartPageDeps } from './pages/page-context.js';
import { loginPage, type LoginPageDeps } from './login/login-page.js';
import { SELECT_PATIENT } from './select-patient/select-patient-prompt.js';
import { patientPicker } from './select-patient/patient-picker.js';
import { SELECT_ENCOUNTER } from './select-encounter/select-encounter-prompt.js';
import { encounterPicker } from './select-encounter/encounter-picker.js';
import { consentPage } from './consent/consent-page.js';
import { secondFactorPage, type SecondFactorPageDeps } from './second-factor/second-factor-page.js';
import { federationRoutes, type FederationDeps } from './federation/routes.js';

/**
 * The pages oidc-provider sends the browser to while it needs the user (the flow: policy.ts):
 *
 *   GET  /interaction/:uid                   the page of the prompt the interaction waits for
 *   POST /interaction/:uid/login             username and password (login/login-page.ts)
 *   POST /interaction/:uid/second-factor…    a second factor, verified or set up (second-factor/second-factor-page.ts)
 *   POST /interaction/:uid/patient-search    practitioner patient search, and its next pages
 *   POST /interaction/:uid/patient           the chosen patient (select-patient/patient-picker.ts)
 *   POST /interaction/:uid/encounter         the chosen encounter, or "none" (select-encounter/encounter-picker.ts)
 *   POST /interaction/:uid/consent           Allow (with the ticked scopes) or Deny (consent/consent-page.ts)
 *   POST /interaction/:uid/abort             cancel, at any step: the app gets access_denied
 *   GET  /interaction/:uid/federate/:provider, /federation/:provider/callback, /interaction/:uid/federated
 *                                            sign-in through an upstream identity provider (federation/)
 *
 * A prompt without a page (record_context never needs one) ends on a page saying so.
 */

export interface InteractionRouteDeps extends LoginPageDeps {
  /** What the pages after sign-in need. */
  pages: SmartPageDeps;
  /** The second step of a sign-in, and step-up. */
  secondFactor: SecondFactorPageDeps;
  /** The upstream identity providers, when any are configured. */
  federation?: FederationDeps;
}

/**
 * The login prompt's page: the second step when a sign-in is in progress or the session only
 * needs a stronger or fresher factor, otherwise the sign-in form.
 */
function signInPage(deps: InteractionRouteDeps): PromptPage {
  const password = loginPage(deps);
  const second = secondFactorPage(deps.secondFactor);
  return {
    async show(ctx, interaction) {
      if (!(await second.showIfNeeded(ctx, interaction))) await password.show(ctx, interaction);
    },
    register(router) {
      password.register(router);
      second.register(router);
    },
  };
}

const CANCELLED: InteractionResults = { error: 'access_denied', error_description: 'The user cancelled the sign-in.' };

export function interactionRoutes(deps: InteractionRouteDeps): Router {
  const { provider } = deps;
  const router = new Router();
  const pages = new Map<string, PromptPage>([
    ['login', signInPage(deps)],
    [SELECT_PATIENT, patientPicker(deps.pages)],
    [SELECT_ENCOUNTER, encounterPicker(deps.pages)],
    ['consent', consentPage(deps.pages)],
  ]);

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/interaction/:uid', async (ctx) => {
    const interaction = await interactionFor(provider, ctx);
    const page = pages.get(interaction.prompt.name);
    if (page) {
      await page.show(ctx, interaction);
      return;
    }
    throw new PageError(503, 'interaction_unavailable', 'You are signed in, but this step of the request is not available on this server.');
  });

  router.post('/interaction/:uid/abort', async (ctx) => {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(provider, ctx);
    checkCsrf(deps.csrf, interaction.uid, await readForm(ctx));
    await finish(ctx, provider, CANCELLED, { merge: false });
  });

  for (const page of pages.values()) page.register(router);
  if (deps.federation) federationRoutes(router, deps.federation, deps);
  return router;
}
