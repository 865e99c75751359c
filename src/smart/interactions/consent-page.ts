import type { Context } from 'koa';
import type Router from '@koa/router';
import { readForm } from '../../login/form.js';
import { checkCsrf, finish, interactionFor, refuseCrossSite, requirePrompt, type Interaction } from '../../login/interaction-http.js';
import type { AuthorizationPlan } from './context-recorder.js';
import { approvedScopesOf, grantDecidesAll } from './grant-builder.js';
import { failToApp, factsFor, orFailToApp, renderPage, type PageFacts, type SmartPageDeps } from './page-context.js';
import { describeScope, isRequiredScope, type ScopeReader } from './scope-descriptions.js';

/**
 * The `consent` step: the app, the patient, and each scope the app may get as a sentence; the
 * scopes the launch needs (identity and context) are listed, the rest are choices, ticked to start
 * with. Allow records a new grant of what is needed plus what stayed ticked, limited by what this
 * user and client may have; Deny returns access_denied to the app.
 *
 * oidc-provider also asks for consent when the request says prompt=consent (added for
 * offline_access/online_access requests). When that is the only reason and the user's previous
 * grant for this app already decided every requested scope, the page is skipped and the previous
 * approvals are carried over, exactly as a silent re-launch would.
 */

const TITLE = 'Allow access';
const DENIED = 'The user denied access.';

interface Described {
  scope: string;
  text: string;
}

async function patientLabel(deps: SmartPageDeps, facts: PageFacts, plan: AuthorizationPlan): Promise<{ name?: string; self: boolean }> {
  const id = plan.patient;
  if (!id) return { self: false };
  if (id === facts.user.ownPatient) return { name: 'your own record', self: true };
  if (facts.picks.patient === id && facts.picks.patientDisplay) return { name: facts.picks.patientDisplay, self: false };
  const proxy = facts.user.proxies.find((p) => p.id === id);
  if (proxy) return { name: proxy.display, self: false };
  // A patient named by the EHR launch: its name is worth one quick read; the id does otherwise.
  const found = facts.fhirServer ? await deps.directory.readPatient(facts.fhirServer, id).catch(() => undefined) : undefined;
  return { name: found?.name ?? `Patient ${id}`, self: false };
}

function describe(scopes: readonly string[], reader: ScopeReader): Described[] {
  return scopes.map((scope) => ({ scope, text: describeScope(scope, reader) }));
}

/** The previous grant's approvals, when they decide this whole request and only prompt=consent asked. */
async function carriedApprovals(deps: SmartPageDeps, interaction: Interaction, facts: PageFacts): Promise<string[] | undefined> {
  const onlyPromptParam = interaction.prompt.reasons.every((r) => r === 'consent_prompt');
  if (!onlyPromptParam || !interaction.grantId) return undefined;
  const grant = await deps.provider.Grant.find(interaction.grantId);
  if (!grant || grant.accountId !== facts.accountId || grant.clientId !== facts.clientId) return undefined;
  return grantDecidesAll(grant, facts.audience, facts.requested) ? approvedScopesOf(grant, facts.audience) : undefined;
}

async function approve(ctx: Context, deps: SmartPageDeps, facts: PageFacts, plan: AuthorizationPlan, approved: readonly string[]): Promise<void> {
  const recorded = await deps.recorder.record(deps.provider, facts, plan, approved);
  await finish(ctx, deps.provider, { consent: { grantId: recorded.grantId } }, { merge: true });
}

async function show(ctx: Context, deps: SmartPageDeps, interaction: Interaction): Promise<void> {
  const facts = await factsFor(deps, interaction);
  await orFailToApp(ctx, deps.provider, async () => {
    const plan = await deps.recorder.plan(facts);
    if (!plan.grantable.length) {
      await failToApp(ctx, deps.provider, 'invalid_scope', 'None of the requested scopes can be granted to this app for this user.');
      return;
    }
    const carried = await carriedApprovals(deps, interaction, facts);
    if (carried) {
      await approve(ctx, deps, facts, plan, carried);
      return;
    }
    const patient = await patientLabel(deps, facts, plan);
    const reader: ScopeReader = { self: patient.self, ...(patient.name && !patient.self ? { patientName: patient.name } : {}) };
    await renderPage(ctx, 'consent', 200, {
      title: TITLE,
      uid: interaction.uid,
      csrf: deps.csrf.token(interaction.uid),
      clientName: facts.clientName,
      clientId: facts.clientId,
      patientName: patient.name ?? '',
      required: describe(plan.grantable.filter(isRequiredScope), reader),
      optional: describe(plan.grantable.filter((s) => !isRequiredScope(s)), reader),
      refused: describe(plan.refused.map((r) => r.scope), reader),
      error: '',
    });
  });
}

async function decide(ctx: Context, deps: SmartPageDeps): Promise<void> {
  refuseCrossSite(ctx);
  const interaction = await interactionFor(deps.provider, ctx);
  requirePrompt(interaction, 'consent');
  const form = await readForm(ctx);
  checkCsrf(deps.csrf, interaction.uid, form);
  if (form.get('decision') !== 'allow') {
    await failToApp(ctx, deps.provider, 'access_denied', DENIED);
    return;
  }
  const facts = await factsFor(deps, interaction);
  const ticked = new Set(form.getAll('scope'));
  await orFailToApp(ctx, deps.provider, async () => {
    const plan = await deps.recorder.plan(facts);
    const approved = plan.grantable.filter((s) => isRequiredScope(s) || ticked.has(s));
    await approve(ctx, deps, facts, plan, approved);
  });
}

export const consentPage = {
  show,
  register(router: Router, deps: SmartPageDeps): void {
    router.post('/interaction/:uid/consent', (ctx) => decide(ctx, deps));
  },
};
