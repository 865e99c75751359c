import type { Context } from 'koa';
import { PageError } from '../../../platform/http/error-page.js';
import { readForm } from '../pages/form.js';
import {
  checkCsrf,
  finish,
  interactionFor,
  refuseCrossSite,
  requirePrompt,
  type Interaction,
  type PromptPage,
} from '../pages/interaction-http.js';
import { FhirLookupError, type EncounterSummary } from '../fhir-search/fhir-directory.js';
import { factsFor, renderPage, type PageFacts, type SmartPageDeps } from '../pages/page-context.js';
import { withPicks } from '../facts/picks.js';
import { SELECT_ENCOUNTER } from './select-encounter-prompt.js';

/**
 * The page of the `select_encounter` step of a standalone launch with launch/encounter (when it is
 * needed: select-encounter-prompt.ts): the patient's recent encounters, newest first. With none on
 * record the step passes on its own; the user may also go on without one. A chosen encounter is
 * read back and must belong to the patient in context.
 */

const TITLE = 'Choose a visit';

function patientOf(facts: PageFacts): { id: string; name: string } {
  const id = facts.picks.patient ?? facts.user.ownPatient;
  if (!id) throw new PageError(400, 'invalid_request', 'No patient has been chosen for this request. Return to the app and start again.');
  const name = facts.picks.patientDisplay ?? (facts.user.ownPatient === id ? (facts.user.displayName ?? 'you') : `Patient ${id}`);
  return { id, name };
}

async function render(
  ctx: Context,
  deps: SmartPageDeps,
  interaction: Interaction,
  facts: PageFacts,
  view: { status?: number; encounters: EncounterSummary[]; error?: string },
): Promise<void> {
  await renderPage(ctx, 'encounter-picker', view.status ?? 200, {
    title: TITLE,
    uid: interaction.uid,
    csrf: deps.csrf.token(interaction.uid),
    clientName: facts.clientName,
    patientName: patientOf(facts).name,
    encounters: view.encounters,
    error: view.error ?? '',
  });
}

async function encountersOf(deps: SmartPageDeps, facts: PageFacts): Promise<EncounterSummary[]> {
  if (!facts.fhirServer) throw new FhirLookupError('The FHIR server this app asked for is not one this server knows.', 'unknown audience');
  return (await deps.directory.encountersOf(facts.fhirServer, patientOf(facts).id)).items;
}

async function show(ctx: Context, deps: SmartPageDeps, interaction: Interaction): Promise<void> {
  const facts = await factsFor(deps, interaction);
  let encounters: EncounterSummary[];
  try {
    encounters = await encountersOf(deps, facts);
  } catch (err) {
    if (!(err instanceof FhirLookupError)) throw err;
    deps.logger?.warn({ err: { message: err.message } }, 'encounter lookup failed');
    return render(ctx, deps, interaction, facts, {
      status: 502,
      encounters: [],
      error: `${err.userMessage} You can go on without choosing a visit.`,
    });
  }
  if (!encounters.length)
    return finish(ctx, deps.provider, withPicks(interaction.lastSubmission, { encounterDecided: true }), { merge: true });
  return render(ctx, deps, interaction, facts, { encounters });
}

async function choose(ctx: Context, deps: SmartPageDeps): Promise<void> {
  refuseCrossSite(ctx);
  const interaction = await interactionFor(deps.provider, ctx);
  requirePrompt(interaction, SELECT_ENCOUNTER);
  const form = await readForm(ctx);
  checkCsrf(deps.csrf, interaction.uid, form);
  const facts = await factsFor(deps, interaction);
  const wanted = form.get('encounter') ?? '';
  if (wanted === 'none')
    return finish(ctx, deps.provider, withPicks(interaction.lastSubmission, { encounterDecided: true }), { merge: true });
  const patient = patientOf(facts);
  let found: EncounterSummary | undefined;
  try {
    found = facts.fhirServer && wanted ? await deps.directory.readEncounter(facts.fhirServer, wanted) : undefined;
  } catch (err) {
    if (!(err instanceof FhirLookupError)) throw err;
    return render(ctx, deps, interaction, facts, {
      status: 502,
      encounters: [],
      error: `${err.userMessage} You can go on without choosing a visit.`,
    });
  }
  if (!found || found.patient !== patient.id) {
    const encounters = await encountersOf(deps, facts).catch(() => []);
    return render(ctx, deps, interaction, facts, { status: 400, encounters, error: 'Choose one of the visits listed.' });
  }
  return finish(ctx, deps.provider, withPicks(interaction.lastSubmission, { encounter: found.id, encounterDecided: true }), {
    merge: true,
  });
}

export function encounterPicker(deps: SmartPageDeps): PromptPage {
  return {
    show: (ctx, interaction) => show(ctx, deps, interaction),
    register(router) {
      router.post('/interaction/:uid/encounter', (ctx) => choose(ctx, deps));
    },
  };
}
