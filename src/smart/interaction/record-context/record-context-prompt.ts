import { errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { requestState } from '../../../platform/http/request-state.js';
import { isManageClient } from '../../../oauth/clients/manage-client.js';
import { invalidScope } from '../../../domain/scopes/invalid-scope.js';
import type { AuthorizationFacts } from '../facts/authorization-facts.js';
import { approvedScopesOf } from '../facts/grant-builder.js';
import { decided, factsOf, type SmartPromptDeps } from '../prompt-facts.js';
import { withinGrantable } from '../consent/granular-scopes.js';
import { existingConsentStep, needsConsent, rememberedConsent } from '../consent/consent-gate.js';
import { contextOf, RecordError, type ConsentStep, type ContextRecorder } from './context-recorder.js';

const { Check, Prompt } = interactionPolicy;

/**
 * The `record_context` step never shows a page. It runs only when nothing else needs the user,
 * and records this authorization's own grant and launch context when consent was not asked (an
 * SSO re-launch, prompt=none from the EHR): the approvals of the user's previous grant are carried
 * over, limited to what this authorization may have, and tied to the Consent that covers them
 * (found by the consent check, consent/consent-prompt.ts). Errors (a used-up launch) go back to
 * the app.
 */

const RECORD_CONTEXT = 'record_context';

type Grant = NonNullable<KoaContextWithOIDC['oidc']['entities']['Grant']>;

/** What recording this authorization silently would grant: the previous approvals it may still have. */
export interface SilentPlan {
  facts: AuthorizationFacts;
  previous: Grant;
  plan: Awaited<ReturnType<ContextRecorder['plan']>>;
  carried: string[];
  approved: string[];
}

declare module '../../../platform/http/request-state.js' {
  interface RequestState {
    /** What recording this authorization silently would grant: the consent check plans it, record_context records it. */
    silentPlan?: Promise<SilentPlan | undefined>;
    /** The Consent a silent authorization stands on, found by the consent check for record_context. */
    coveringConsentId?: string;
  }
}

/** The silent plan of this request's authorization, made once. */
export function silentPlanOf(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<SilentPlan | undefined> {
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
    consentId =
      requestState(ctx).coveringConsentId ?? (await rememberedConsent(deps.consents, facts, plan.patient, approved)).covering?.resource.id;
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

export function recordContextPrompt(deps: SmartPromptDeps) {
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
