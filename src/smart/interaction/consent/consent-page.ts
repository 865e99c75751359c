import type { Context } from 'koa';
import { readForm } from '../pages/form.js';
import {
  checkCsrf,
  EXPIRED,
  finish,
  interactionFor,
  refuseCrossSite,
  requirePrompt,
  type Interaction,
  type PromptPage,
} from '../pages/interaction-http.js';
import { isManageClient, manageRedirectUri } from '../../../oauth/clients/manage-client.js';
import { longDate, safeClientUri, safeLogoUri } from '../pages/client-display.js';
import { RecordError, type AuthorizationPlan, type ConsentStep } from '../record-context/context-recorder.js';
import {
  NO_PERFORMER,
  choicesOf,
  clientAskedForConsent,
  consentPerformer,
  decisionOf,
  existingConsentStep,
  mayRemember,
  needsConsent,
  newConsentStep,
  rememberedConsent,
  type Remembered,
} from './consent-gate.js';
import { approvedScopesOf, grantDecidesAll } from '../facts/grant-builder.js';
import { chosenScopes, granularOptions } from './granular-scopes.js';
import { failToApp, factsFor, orFailToApp, renderPage, type PageFacts, type SmartPageDeps } from '../pages/page-context.js';
import { describePurpose, describeScope, isRequiredScope, type ScopeReader } from './scope-descriptions.js';
import { ReasonError, breakTheGlassReason } from '../../../domain/hcs/break-the-glass.js';
import type { RecordOptions, SecondFactorProof } from '../record-context/context-recorder.js';
import { PageError } from '../../../platform/http/error-page.js';
import { isMet } from '../second-factor/assurance-need.js';
import { identityRefusal } from '../../launch/user-scopes.js';

/**
 * The page of the `consent` step (when it is needed: oidc-provider's own checks and
 * consent-prompt.ts): which app asks (name, https logo, home page), on whose record, each scope
 * as a sentence, why (the request's purpose_of_use) and for how long. The scopes the launch needs
 * (identity and context) are listed, the rest are choices, ticked to start with.
 *
 * Allow: when patient/ scopes are granted, the patient's Consent is recorded first, then the grant
 * of what is needed plus what stayed ticked (limited by what this user and client may have) is
 * saved and tied to it. Deny: the refusal is recorded as a Consent too, and the app gets
 * access_denied.
 *
 * When the app asked for health data and the user's account can give it none of it (an account
 * linked to no patient record or staff role, or a patient account asked for staff scopes), a page
 * says why instead, and whatever is posted back the app gets access_denied (identity-access.md).
 *
 * The page is skipped when an active Consent of this person for this app and patient already
 * covers every choice (remembered consent, consent-gate.ts); when some are covered, only the rest
 * are asked. For grants without patient/ scopes, oidc-provider may still ask because of
 * prompt=consent (added for offline_access/online_access requests); when that is the only reason
 * and the user's previous grant for this app already decided every requested scope, the previous
 * approvals are carried over, exactly as a silent re-launch would.
 */

const TITLE = 'Allow access';
const NO_ACCESS_TITLE = 'Access not possible with this account';
const DENIED = 'The user denied access.';

interface Described {
  scope: string;
  text: string;
  /** Categories the scope may be narrowed to instead (granular-scopes.ts). */
  options?: Described[];
}

type AccessPeriod = { kind: 'online' } | { kind: 'offline' | 'offline-choice'; untilIso: string; untilText: string };

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

/** The choices, each with the categories it may be narrowed to. */
function describeChoices(scopes: readonly string[], reader: ScopeReader): Described[] {
  const choices = new Set(scopes);
  return scopes.map((scope) => {
    // A category the app asked for by itself is its own choice, not repeated under the whole.
    const options = granularOptions(scope).filter((o) => !choices.has(o));
    return { scope, text: describeScope(scope, reader), ...(options.length ? { options: describe(options, reader) } : {}) };
  });
}

/** Whether a Consent that covers this authorization may spare the page (consent-gate.ts mayRemember). */
function rememberHere(deps: SmartPageDeps, facts: PageFacts, interaction: Interaction): boolean {
  return mayRemember({
    mode: deps.rememberConsent ?? 'silent',
    ehrLaunch: facts.launch !== undefined,
    promptNone: false,
    clientAskedConsent: clientAskedForConsent(interaction.params),
  });
}

/** What this person decides about: everything, or only what no remembered Consent covers. */
async function rememberedFor(
  deps: SmartPageDeps,
  facts: PageFacts,
  interaction: Interaction,
  patient: string,
  grantable: readonly string[],
): Promise<Remembered> {
  if (!rememberHere(deps, facts, interaction)) return { missing: choicesOf(grantable), covered: [] };
  return rememberedConsent(deps.consents, facts, patient, grantable);
}

/**
 * How long what is allowed lasts: with offline_access as long as the refresh token (and the
 * Consent) does, else only while the user stays signed in.
 */
function accessPeriod(deps: SmartPageDeps, plan: AuthorizationPlan, remembered: Remembered, now: number): AccessPeriod {
  if (!plan.grantable.includes('offline_access')) return { kind: 'online' };
  const until = now + deps.consentLifetimes.refreshToken * 1000;
  const kind = remembered.missing.includes('offline_access') ? 'offline-choice' : 'offline';
  return { kind, untilIso: new Date(until).toISOString(), untilText: longDate(until) };
}

/** The previous grant's approvals, when they decide this whole request and only prompt=consent asked. */
async function carriedApprovals(deps: SmartPageDeps, interaction: Interaction, facts: PageFacts): Promise<string[] | undefined> {
  const onlyPromptParam = interaction.prompt.reasons.every((r) => r === 'consent_prompt');
  // The client's own prompt=consent is answered with the page, never with earlier approvals.
  if (!onlyPromptParam || !interaction.grantId || clientAskedForConsent(interaction.params)) return undefined;
  const grant = await deps.provider.Grant.find(interaction.grantId);
  if (!grant || grant.accountId !== facts.accountId || grant.clientId !== facts.clientId) return undefined;
  return grantDecidesAll(grant, facts.audience, facts.requested) ? approvedScopesOf(grant, facts.audience) : undefined;
}

/** This server's own management page signing in: nothing to ask, it only learns who the user is. */
function ownManageClient(deps: SmartPageDeps, facts: PageFacts): boolean {
  return isManageClient(facts.clientId) && facts.redirectUris.length === 1 && facts.redirectUris[0] === manageRedirectUri(deps.issuer);
}

async function approve(
  ctx: Context,
  deps: SmartPageDeps,
  facts: PageFacts,
  plan: AuthorizationPlan,
  approved: readonly string[],
  consent?: ConsentStep,
  options?: RecordOptions,
): Promise<void> {
  const recorded = await deps.recorder.record(deps.provider, facts, plan, approved, consent, options);
  await finish(ctx, deps.provider, { consent: { grantId: recorded.grantId } }, { merge: true });
}

/** Emergency access: the page is always shown, a reason is required, and the grant is flagged. */
function isEmergency(plan: AuthorizationPlan): boolean {
  return plan.hcs?.grant.breakTheGlass === true;
}

interface Retry {
  status: number;
  error: string;
  reason: string;
}

async function render(
  ctx: Context,
  deps: SmartPageDeps,
  interaction: Interaction,
  facts: PageFacts,
  plan: AuthorizationPlan,
  remembered: Remembered,
  retry?: Retry,
): Promise<void> {
  const patient = await patientLabel(deps, facts, plan);
  const reader: ScopeReader = { self: patient.self, ...(patient.name && !patient.self ? { patientName: patient.name } : {}) };
  await renderPage(ctx, 'consent', retry?.status ?? 200, {
    title: TITLE,
    uid: interaction.uid,
    csrf: deps.csrf.token(interaction.uid),
    clientName: facts.clientName,
    clientId: facts.clientId,
    logoUri: safeLogoUri(facts.logoUri) ?? '',
    clientUri: safeClientUri(facts.clientUri) ?? '',
    patientName: patient.name ?? '',
    purposes: (plan.hcs?.grant.purposes ?? facts.purposes).map(describePurpose),
    emergency: isEmergency(plan) ? { minLength: deps.recorder.reasonMinLength, reason: retry?.reason ?? '' } : null,
    testData: plan.hcs?.grant.testData === true,
    period: accessPeriod(deps, plan, remembered, Date.now()),
    required: describe(plan.grantable.filter(isRequiredScope), reader),
    allowed: describe(remembered.covered, reader),
    optional: describeChoices(remembered.missing, reader),
    refused: describe(
      plan.refused.map((r) => r.scope),
      reader,
    ),
    error: retry?.error ?? '',
  });
}

/** Why this user can give the app nothing it asked for, when it is because of who the user is. */
function noAccessReason(facts: PageFacts, plan: AuthorizationPlan): string | undefined {
  return identityRefusal(facts.user.access, facts.requested, plan.grantable);
}

async function renderNoAccess(
  ctx: Context,
  deps: SmartPageDeps,
  interaction: Interaction,
  facts: PageFacts,
  plan: AuthorizationPlan,
  reason: string,
): Promise<void> {
  await renderPage(ctx, 'no-access', 200, {
    title: NO_ACCESS_TITLE,
    uid: interaction.uid,
    csrf: deps.csrf.token(interaction.uid),
    clientName: facts.clientName,
    clientId: facts.clientId,
    reason,
    refused: describe(
      plan.refused.map((r) => r.scope),
      { self: false },
    ),
  });
}

async function show(ctx: Context, deps: SmartPageDeps, interaction: Interaction): Promise<void> {
  const facts = await factsFor(deps, interaction);
  await orFailToApp(ctx, deps.provider, async () => {
    const plan = await deps.recorder.plan(facts);
    const noAccess = noAccessReason(facts, plan);
    if (noAccess) {
      await renderNoAccess(ctx, deps, interaction, facts, plan, noAccess);
      return;
    }
    if (!plan.grantable.length) {
      await failToApp(ctx, deps.provider, 'invalid_scope', 'None of the requested scopes can be granted to this app for this user.');
      return;
    }
    const emergency = isEmergency(plan);
    if (ownManageClient(deps, facts) && !emergency) {
      await approve(ctx, deps, facts, plan, plan.grantable);
      return;
    }
    if (needsConsent(plan.patient, plan.grantable)) {
      if (!consentPerformer(facts.user)) throw new RecordError('access_denied', NO_PERFORMER);
      const remembered = await rememberedFor(deps, facts, interaction, plan.patient, plan.grantable);
      if (remembered.covering && !emergency) {
        await approve(ctx, deps, facts, plan, plan.grantable, existingConsentStep(deps.consents, remembered.covering.resource.id));
        return;
      }
      await render(ctx, deps, interaction, facts, plan, remembered);
      return;
    }
    const carried = emergency ? undefined : await carriedApprovals(deps, interaction, facts);
    if (carried) {
      await approve(ctx, deps, facts, plan, carried);
      return;
    }
    await render(ctx, deps, interaction, facts, plan, { missing: choicesOf(plan.grantable), covered: [] });
  });
}

/** Records a Deny of patient/ scopes as a rejected Consent; the app gets access_denied whatever happens here. */
async function recordRefusal(deps: SmartPageDeps, facts: PageFacts): Promise<void> {
  let plan: AuthorizationPlan;
  try {
    plan = await deps.recorder.plan(facts);
  } catch (err) {
    if (err instanceof RecordError) return;
    throw err;
  }
  if (!needsConsent(plan.patient, facts.requested) || !consentPerformer(facts.user)) return;
  const lifetimes = deps.consentLifetimes;
  await deps.consents.recordDecision(decisionOf('deny', { facts, patient: plan.patient, lifetimes }, facts.requested));
}

/** Ends the authorization with access_denied when the account can give the app nothing it asked for. */
async function refusedForIdentity(ctx: Context, deps: SmartPageDeps, facts: PageFacts): Promise<boolean> {
  let plan: AuthorizationPlan;
  try {
    plan = await deps.recorder.plan(facts);
  } catch (err) {
    // A launch gone and the like: the usual paths below report it.
    if (err instanceof RecordError) return false;
    throw err;
  }
  const reason = noAccessReason(facts, plan);
  if (!reason) return false;
  await failToApp(ctx, deps.provider, 'access_denied', reason);
  return true;
}

async function decide(ctx: Context, deps: SmartPageDeps): Promise<void> {
  refuseCrossSite(ctx);
  const interaction = await interactionFor(deps.provider, ctx);
  requirePrompt(interaction, 'consent');
  const form = await readForm(ctx);
  checkCsrf(deps.csrf, interaction.uid, form);
  const facts = await factsFor(deps, interaction);
  // Allow cannot turn an account that may give nothing into one that may: the app learns why.
  if (await refusedForIdentity(ctx, deps, facts)) return;
  if (form.get('decision') !== 'allow') {
    await recordRefusal(deps, facts).catch((err: unknown) =>
      deps.logger?.error({ err, clientId: facts.clientId }, 'could not record a refusal as a Consent'),
    );
    await failToApp(ctx, deps.provider, 'access_denied', DENIED);
    return;
  }
  const ticked = new Set(form.getAll('scope'));
  await orFailToApp(ctx, deps.provider, async () => {
    const plan = await deps.recorder.plan(facts);
    let remembered: Remembered = { missing: choicesOf(plan.grantable), covered: [] };
    let consent: ConsentStep | undefined;
    if (needsConsent(plan.patient, plan.grantable)) {
      if (!consentPerformer(facts.user)) throw new RecordError('access_denied', NO_PERFORMER);
      // Choices an active Consent already covers were listed as allowed, not offered: they stay.
      remembered = await rememberedFor(deps, facts, interaction, plan.patient, plan.grantable);
      consent = newConsentStep(deps.consents, {
        facts,
        patient: plan.patient,
        lifetimes: deps.consentLifetimes,
        ...(plan.hcs ? { purposes: plan.hcs.grant.purposes, ceiling: plan.hcs.grant.ceiling } : {}),
      });
    }
    let options: RecordOptions = {};
    if (isEmergency(plan)) {
      const secondFactor = await freshSecondFactor(deps, interaction);
      const typed = form.get('reason') ?? '';
      try {
        options = { breakTheGlassReason: breakTheGlassReason(typed, deps.recorder.reasonMinLength), secondFactor };
      } catch (err) {
        if (!(err instanceof ReasonError)) throw err;
        // The same page again, with what was typed and why it is not enough.
        await render(ctx, deps, interaction, facts, plan, remembered, { status: 400, error: err.message, reason: typed.slice(0, 500) });
        return;
      }
    }
    // Only what was offered counts: a choice ticked whole, else the categories of it that were ticked.
    const approved = [...plan.grantable.filter(isRequiredScope), ...remembered.covered, ...chosenScopes(remembered.missing, ticked)];
    await approve(ctx, deps, facts, plan, approved, consent, options);
  });
}

/**
 * Breaking the glass needs a second factor verified within the last few minutes. The login
 * prompt asked for one before this page (second-factor/step-up-check.ts); it is checked again
 * here, at the moment of the decision, from the session itself, since a page can sit open for
 * longer than the window. Its methods and time go into the break-the-glass AuditEvent.
 */
async function freshSecondFactor(deps: SmartPageDeps, interaction: Interaction): Promise<SecondFactorProof> {
  const cookie = interaction.session?.cookie;
  const session = cookie ? await deps.provider.Session.find(cookie) : undefined;
  const authTime = session?.authTime();
  const need = { level: 2 as const, reasons: ['break_the_glass' as const] };
  if (!session || session.accountId !== interaction.session?.accountId || authTime === undefined) {
    throw new PageError(400, 'invalid_request', EXPIRED);
  }
  if (!isMet(need, { amr: session.amr, authTime }, Math.floor(Date.now() / 1000), deps.breakTheGlassFreshSeconds)) {
    const minutes = Math.max(1, Math.round(deps.breakTheGlassFreshSeconds / 60));
    throw new PageError(
      403,
      'access_denied',
      `Emergency access needs a second factor verified within the last ${minutes === 1 ? 'minute' : `${minutes} minutes`}, and yours is older. Return to the app and start again: you will be asked for it.`,
    );
  }
  return { amr: [...(session.amr ?? [])], verifiedAt: new Date(authTime * 1000).toISOString() };
}

export function consentPage(deps: SmartPageDeps): PromptPage {
  return {
    show: (ctx, interaction) => show(ctx, deps, interaction),
    register(router) {
      router.post('/interaction/:uid/consent', (ctx) => decide(ctx, deps));
    },
  };
}
