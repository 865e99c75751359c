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
import { FhirLookupError, normaliseCriteria, type Page, type PatientCriteria, type PatientSummary } from '../fhir-search/fhir-directory.js';
import { patientIdOf } from '../facts/fhir-user.js';
import { factsFor, renderPage, type PageFacts, type SmartPageDeps } from '../pages/page-context.js';
import { withPicks } from '../facts/picks.js';
import { SELECT_PATIENT } from './select-patient-prompt.js';

/**
 * The page of the `select_patient` step of a standalone launch (when it is needed:
 * select-patient-prompt.ts). A caregiver chooses among the patients they act for (nothing else is
 * accepted); staff search the FHIR server by name, birth date or identifier and picks a result,
 * which is read back before it is accepted; anyone else has no patient context and can only
 * return to the app. (Patient users never get here: their own record is the answer.) Searches are
 * POSTed so patient details stay out of URLs and logs.
 */

const TITLE = 'Choose a patient';

interface View {
  status?: number;
  mode: 'choose' | 'search' | 'none';
  error?: string;
  patients?: Array<{ id: string; display: string }>;
  criteria?: PatientCriteria;
  results?: Page<PatientSummary>;
  reason?: string;
}

async function render(ctx: Context, deps: SmartPageDeps, interaction: Interaction, facts: PageFacts, view: View): Promise<void> {
  await renderPage(ctx, 'patient-picker', view.status ?? 200, {
    title: TITLE,
    uid: interaction.uid,
    csrf: deps.csrf.token(interaction.uid),
    clientName: facts.clientName,
    mode: view.mode,
    error: view.error ?? '',
    patients: view.patients ?? [],
    criteria: view.criteria ?? {},
    results: view.results ?? null,
    reason: view.reason ?? '',
  });
}

function noPatientReason(facts: PageFacts): string | undefined {
  if (!facts.fhirServer) return 'The FHIR server this app asked for is not one this server knows.';
  switch (facts.user.access) {
    case 'caregiver':
      return facts.user.proxies.length
        ? undefined
        : 'Your account is not linked to any patient you may act for, so there is no patient record to open.';
    case 'staff':
      return undefined;
    default:
      return 'Your account is not linked to a patient record or a staff role, so there is no patient record to open. Return to the app, or ask your administrator to link your account.';
  }
}

async function show(ctx: Context, deps: SmartPageDeps, interaction: Interaction): Promise<void> {
  const facts = await factsFor(deps, interaction);
  const reason = noPatientReason(facts);
  if (reason) return render(ctx, deps, interaction, facts, { mode: 'none', reason });
  if (facts.user.access === 'caregiver') return render(ctx, deps, interaction, facts, { mode: 'choose', patients: facts.user.proxies });
  return render(ctx, deps, interaction, facts, { mode: 'search' });
}

async function search(ctx: Context, deps: SmartPageDeps, interaction: Interaction, facts: PageFacts, form: URLSearchParams): Promise<void> {
  const server = facts.fhirServer!;
  const input: PatientCriteria = {
    name: form.get('name') ?? '',
    birthdate: form.get('birthdate') ?? '',
    identifier: form.get('identifier') ?? '',
  };
  const criteria = normaliseCriteria(input);
  if ('problem' in criteria)
    return render(ctx, deps, interaction, facts, { status: 400, mode: 'search', criteria: input, error: criteria.problem });
  const page = form.get('page');
  try {
    const results = page ? await deps.directory.patientsAt(server, page) : await deps.directory.searchPatients(server, criteria);
    return render(ctx, deps, interaction, facts, { mode: 'search', criteria, results });
  } catch (err) {
    if (!(err instanceof FhirLookupError)) throw err;
    deps.logger?.warn({ err: { message: err.message } }, 'patient search failed');
    return render(ctx, deps, interaction, facts, { status: 502, mode: 'search', criteria, error: err.userMessage });
  }
}

async function choose(ctx: Context, deps: SmartPageDeps, interaction: Interaction, facts: PageFacts, form: URLSearchParams): Promise<void> {
  const wanted = patientIdOf(form.get('patient') ?? undefined);
  if (facts.user.access === 'caregiver') {
    const proxy = facts.user.proxies.find((p) => p.id === wanted);
    if (!proxy)
      return render(ctx, deps, interaction, facts, {
        status: 400,
        mode: 'choose',
        patients: facts.user.proxies,
        error: 'Choose one of the patients listed.',
      });
    return finish(ctx, deps.provider, withPicks(interaction.lastSubmission, { patient: proxy.id, patientDisplay: proxy.display }), {
      merge: true,
    });
  }
  const server = facts.fhirServer!;
  let found: PatientSummary | undefined;
  try {
    found = wanted ? await deps.directory.readPatient(server, wanted) : undefined;
  } catch (err) {
    if (!(err instanceof FhirLookupError)) throw err;
    return render(ctx, deps, interaction, facts, { status: 502, mode: 'search', error: err.userMessage });
  }
  if (!found)
    return render(ctx, deps, interaction, facts, {
      status: 400,
      mode: 'search',
      error: 'That patient could not be found. Search again and choose a patient from the results.',
    });
  return finish(ctx, deps.provider, withPicks(interaction.lastSubmission, { patient: found.id, patientDisplay: found.name }), {
    merge: true,
  });
}

/** The form posts of the step; the page itself is shown by GET /interaction/:uid. */
async function formPost(
  ctx: Context,
  deps: SmartPageDeps,
  handle: (ctx: Context, deps: SmartPageDeps, i: Interaction, f: PageFacts, form: URLSearchParams) => Promise<void>,
): Promise<void> {
  refuseCrossSite(ctx);
  const interaction = await interactionFor(deps.provider, ctx);
  requirePrompt(interaction, SELECT_PATIENT);
  const form = await readForm(ctx);
  checkCsrf(deps.csrf, interaction.uid, form);
  const facts = await factsFor(deps, interaction);
  if (noPatientReason(facts)) throw new PageError(403, 'access_denied', 'There is no patient you may choose for this request.');
  await handle(ctx, deps, interaction, facts, form);
}

export function patientPicker(deps: SmartPageDeps): PromptPage {
  return {
    show: (ctx, interaction) => show(ctx, deps, interaction),
    register(router) {
      router.post('/interaction/:uid/patient-search', (ctx) =>
        formPost(ctx, deps, async (c, d, i, f, form) => {
          if (f.user.access !== 'staff') throw new PageError(403, 'access_denied', 'Only staff may search for patients.');
          await search(c, d, i, f, form);
        }),
      );
      router.post('/interaction/:uid/patient', (ctx) => formPost(ctx, deps, choose));
    },
  };
}
