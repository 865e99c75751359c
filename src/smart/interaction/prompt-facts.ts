import type { KoaContextWithOIDC } from 'oidc-provider';
import type { FhirServer } from '../../platform/config/schema.js';
import { requestState } from '../../platform/http/request-state.js';
import type { UserStore } from '../../records/directory/user-store.js';
import type { Coding } from '../../domain/fhir/types.js';
import type { LaunchStore } from '../launch/launch-store.js';
import { authorizationFacts, type AuthorizationFacts } from './facts/authorization-facts.js';
import { picksOf } from './facts/picks.js';
import { userContextOf } from './facts/user-context.js';
import type { ContextRecorder } from './record-context/context-recorder.js';
import type { ConsentGateDeps, RememberMode } from './consent/consent-gate.js';

/**
 * What the SMART prompts' checks (policy.ts) decide on: the authorization's facts as oidc-provider's
 * request context has them, loaded once per request and shared by every check of that pass through
 * the policy. The pages load the same facts from the stored interaction (pages/page-context.ts).
 */

export interface SmartPromptDeps {
  launches: Pick<LaunchStore, 'get'>;
  recorder: ContextRecorder;
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  fhirServers: readonly FhirServer[];
  /** Relative fhirUser values are made absolute on this base, as the account claims do. */
  fhirUserBase: string;
  /** The HCS policy's staff roles: who may grant user/ scopes (facts/user-context.ts). */
  staffRoles: readonly Coding[];
  /** Patient consents; without them no Consent is looked for (grants are not tied to any). */
  consents?: ConsentGateDeps;
  /** When a covering Consent spares the page (config consents.remember; default `silent`). */
  rememberConsent?: RememberMode;
}

type OidcClient = { clientId: string; smart_scopes?: unknown; smart_remember_consent?: unknown };

declare module '../../platform/http/request-state.js' {
  interface RequestState {
    /** The authorization's facts: every check of one pass through the policy sees (and loads) them once. */
    authorizationFacts?: Promise<AuthorizationFacts | undefined>;
  }
}

/** The authorization's facts, or undefined before sign-in (no account yet). */
export function factsOf(ctx: KoaContextWithOIDC, deps: SmartPromptDeps): Promise<AuthorizationFacts | undefined> {
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
export function decided(ctx: KoaContextWithOIDC): boolean {
  return Boolean(ctx.oidc.result?.consent);
}
