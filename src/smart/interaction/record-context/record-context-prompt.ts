import { errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { FhirServer } from '../../../platform/config/schema.js';
import { requestState } from '../../../platform/http/request-state.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { Coding } from '../../../domain/fhir/types.js';
import type { LaunchStore } from '../../launch/launch-store.js';
import { authorizationFacts, clientMayHave, type AuthorizationFacts } from '../facts/authorization-facts.js';
import { contextOf, RecordError, type ConsentStep, type ContextRecorder } from './context-recorder.js';
import { patientIdOf } from '../facts/fhir-user.js';
import { approvedScopesOf, grantDecidesAll } from '../facts/grant-builder.js';
import { withinGrantable } from '../consent/granular-scopes.js';
import { picksOf } from '../facts/picks.js';
import { userContextOf } from '../facts/user-context.js';
import { clientAskedForConsent, consentPerformer, existingConsentStep, mayRemember, needsConsent, rememberedConsent, type ConsentGateDeps, type RememberMode } from '../consent/consent-gate.js';
import { isManageClient } from '../../../oauth/clients/manage-client.js';
import { isEmergencyPurpose } from '../../../domain/hcs/vocabulary.js';
import { invalidScope } from '../../../domain/scopes/invalid-scope.js';

const { Check, Prompt } = interactionPolicy;

/**
 * The SMART steps of the authorization flow, as oidc-provider prompts:
 *
 *   login → select_patient → select_encounter → consent → record_context
 *
 * - select_patient: a standalone launch asks for launch/patient and no patient is known yet
 *   (none from the EHR launch, none picked in this authorization, and the user is not a patient,
 *   whose own record is the answer).
 * - select_encounter: launch/encounter in a standalone launch, with a patient, not yet decided.
 * - consent gains two checks: every requested resource scope must already be decided by the grant
 *   (oidc-provider's own check compares by string with the server's scope list, which holds patterns);
 *   and when the grant would carry patient/ scopes, an active Consent of this user for this app and
 *   patient must cover them (remembered consent, consent-gate.ts), else the page asks (or
 *   prompt=none gets consent_required).
 * - record_context never shows a page. It runs only when nothing else needs the user, and records
 *   this authorization's own grant and launch context when consent was not asked (an SSO re-launch,
 *   prompt=none from the EHR): the approvals of the user's previous grant are carried over, limited
 *   to what this authorization may have, and tied to the Consent that covers them. Errors (a
 *   used-up launch) go back to the app.
 */

export const SELECT_PATIENT = 'select_patient';
export const SELECT_ENCOUNTER = 'select_encounter';
export const RECORD_CONTEXT = 'record_context';

export interface SmartPromptDeps {
  launches: Pick<LaunchStore, 'get'>;
  recorder: ContextRecorder;
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  fhirServers: readonly FhirServer[];
  /** Relative fhirUser values are made absolute on this base, as the account claims do. */
  fhirUserBase: string;
  /** The HCS policy's staff roles: who may grant user/ scopes (user-context.ts). */
  staffRoles: readonly Coding[];
  /** Patient consents; without them no Consent is looked for (grants are not tied to any). */
  consents?: ConsentGateDeps;
  /** When a covering Consent spares the page (config consents.remember; default `silent`). */
  rememberConsent?: RememberMode;
}

type OidcClient = { clientId: string; smart_scopes?: unknown; smart_remember_consent?: unknown };

declare module '../../../platform/http/request-state.js' {
  interface RequestState {
    /** The authorization's facts: every check of one pass through the policy sees (and loads) them once. */
    authorizationFacts?: Promise<AuthorizationFacts | undefined>;
    /** What recording this authorization silently would grant: the consent check plans it, record_context records it. */
    silentPlan?: Promise<SilentPlan | undefined>;
    /** The Consent a silent authorization stands on, found by the consent check for record_context. */
    coveringConsentId?: string;
  }
}

function factsOf(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<AuthorizationFacts | undefined> {
  return (requestState(ctx).authorizationFacts ??= loadFacts(ctx, deps));
}

async function loadFacts(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<AuthorizationFacts | undefined> {
  const accountId = ctx.oidc.session?.accountId;
  if (!accountId || !ctx.oidc.account) return undefined;
  const [record, roles] = await Promise.all([deps.users.get(accountId), deps.users.effectiveRoles(accountId)]);
  const user = userContextOf(record, deps.fhirUserBase, roles, { staffRoles: deps.staffRoles });
  return authorizationFacts({
    accountId,
    params: ctx.oidc.params as Record<string, unknown>,
    client: ctx.oidc.client as unknown as OidcClient | undefined,
    user,
    picks: picksOf(ctx.oidc.result),
    fhirServers: deps.fhirServers,
  });
}

/**
 * Consent has recorded this authorization's grant and context (and used up its EHR launch): the
 * pickers' questions are answered for good, even though the launch they looked at is gone.
 */
function decided(ctx: KoaContextWithOIDC): boolean {
  return Boolean(ctx.oidc.result?.consent);
}

/** The patient the EHR launch names, if the request uses one. Missing launches are refused later. */
async function launchPatient(facts: AuthorizationFacts, deps: SmartPromptDeps): Promise<string | undefined> {
  if (!facts.launch) return undefined;
  return patientIdOf((await deps.launches.get(facts.launch))?.patient);
}

async function patientKnown(facts: AuthorizationFacts, deps: SmartPromptDeps): Promise<boolean> {
  return Boolean(facts.picks.patient ?? facts.user.ownPatient ?? (await launchPatient(facts, deps)));
}

function selectPatientPrompt(deps: SmartPromptDeps) {
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

function selectEncounterPrompt(deps: SmartPromptDeps) {
  return new Prompt(
    { name: SELECT_ENCOUNTER, requestable: false },
    new Check('encounter_not_selected', 'an encounter must be selected for launch/encounter', 'interaction_required', async (ctx) => {
      if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
      const facts = await factsOf(ctx, deps);
      // In an EHR launch the EHR supplies the encounter (launch/encounter is only a hint there).
      if (!facts || facts.launch || !facts.requested.includes('launch/encounter') || !clientMayHave(facts, 'launch/encounter')) return Check.NO_NEED_TO_PROMPT;
      if (facts.picks.encounterDecided) return Check.NO_NEED_TO_PROMPT;
      return facts.picks.patient ?? facts.user.ownPatient ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
}

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

/** What recording this authorization silently would grant: the previous approvals it may still have. */
interface SilentPlan {
  facts: AuthorizationFacts;
  previous: Grant;
  plan: Awaited<ReturnType<ContextRecorder['plan']>>;
  carried: string[];
  approved: string[];
}

type Grant = NonNullable<KoaContextWithOIDC['oidc']['entities']['Grant']>;

function silentPlanOf(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<SilentPlan | undefined> {
  return (requestState(ctx).silentPlan ??= planSilently(ctx, deps));
}

async function planSilently(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<SilentPlan | undefined> {
  const facts = await factsOf(ctx, deps);
  const previous = ctx.oidc.entities.Grant;
  if (!facts || !previous) return undefined;
  const plan = await deps.recorder.plan(facts);
  const carried = approvedScopesOf(previous, facts.audience);
  return { facts, previous, plan, carried, approved: withinGrantable(plan.grantable, carried) };
}

function patientConsentCheck(deps: SmartPromptDeps) {
  return new Check('smart_patient_consent_missing', 'no active patient consent covers the requested scopes', 'consent_required', async (ctx) => {
    if (decided(ctx) || !deps.consents) return Check.NO_NEED_TO_PROMPT;
    let silent: SilentPlan | undefined;
    try {
      silent = await silentPlanOf(ctx, deps);
    } catch (err) {
      // A used-up launch and the like: record_context reports it to the app.
      if (err instanceof RecordError) return Check.NO_NEED_TO_PROMPT;
      throw err;
    }
    if (!silent || isManageClient(silent.facts.clientId) || !needsConsent(silent.plan.patient, silent.approved)) return Check.NO_NEED_TO_PROMPT;
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
  });
}

function oauthError(err: RecordError): Error {
  switch (err.error) {
    case 'invalid_scope':
      return invalidScope(err.description);
    case 'access_denied':
      return new errors.AccessDenied(err.description);
    default:
      return new errors.InvalidRequest(err.description);
  }
}

function sameContext(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? {}) === JSON.stringify(b ?? {});
}

/**
 * Records the authorization without asking anything. An unchanged authorization (no EHR launch,
 * the same context as the previous grant, and nothing requested that this user may no longer
 * grant) keeps that grant; anything else gets a new grant of the previous approvals this
 * authorization may have, which becomes the session's grant for this client.
 */
async function recordSilently(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<void> {
  const silent = await silentPlanOf(ctx, deps);
  if (!silent) return;
  const { facts, previous, plan, carried, approved } = silent;
  let consent: ConsentStep | undefined;
  let consentId: string | undefined;
  if (deps.consents && !isManageClient(facts.clientId) && needsConsent(plan.patient, approved)) {
    consentId = requestState(ctx).coveringConsentId ?? (await rememberedConsent(deps.consents, facts, plan.patient, approved)).covering?.resource.id;
    if (!consentId) throw new errors.ConsentRequired('no active patient consent covers the requested scopes');
    consent = existingConsentStep(deps.consents, consentId);
  }
  const allowed = new Set(plan.grantable);
  const requested = new Set(facts.requested);
  const stillGrantable = carried.filter((s) => requested.has(s)).every((s) => allowed.has(s));
  if (!facts.launch && previous.jti && stillGrantable) {
    const expected = { ...contextOf(facts, plan, approved), ...(consentId ? { consentId } : {}) };
    if (sameContext(expected, await deps.recorder.savedContext(previous.jti))) return;
  }
  const recorded = await deps.recorder.record(ctx.oidc.provider, facts, plan, approved, consent);
  const grant = await ctx.oidc.provider.Grant.find(recorded.grantId);
  if (!grant) throw new errors.InvalidRequest('the authorization could not be recorded');
  ctx.oidc.entity('Grant', grant);
  ctx.oidc.session?.grantIdFor(facts.clientId, recorded.grantId);
}

function recordContextPrompt(deps: SmartPromptDeps) {
  return new Prompt(
    { name: RECORD_CONTEXT, requestable: false },
    new Check('context_unrecorded', 'the launch context could not be recorded', 'interaction_required', async (ctx) => {
      if (decided(ctx)) return Check.NO_NEED_TO_PROMPT;
      try {
        await recordSilently(ctx, deps);
      } catch (err) {
        if (err instanceof RecordError) throw oauthError(err);
        throw err;
      }
      return Check.NO_NEED_TO_PROMPT;
    }),
  );
}

/** Adds the SMART prompts to a policy that has oidc-provider's login and consent prompts. */
export function addSmartPrompts(policy: interactionPolicy.DefaultPolicy, deps: SmartPromptDeps): void {
  const consentAt = policy.findIndex((p) => p.name === 'consent');
  if (consentAt < 0) throw new Error('the interaction policy has no consent prompt');
  policy.add(selectEncounterPrompt(deps), consentAt);
  policy.add(selectPatientPrompt(deps), consentAt);
  policy.get('consent')!.checks.add(resourceScopesDecidedCheck(deps));
  policy.get('consent')!.checks.add(emergencyAccessCheck(deps));
  policy.get('consent')!.checks.add(patientConsentCheck(deps));
  policy.add(recordContextPrompt(deps));
}
