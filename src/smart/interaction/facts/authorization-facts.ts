import type { FhirServer } from '../../../platform/config/schema.js';
import { findFhirServer } from '../../../oauth/provider/fhir-servers.js';
import type { LaunchPicks } from './picks.js';
import type { UserContext } from './fhir-user.js';
import { purposeParameter } from '../../../domain/hcs/purpose-input.js';
import { clientHcsFacts, type ClientHcsMetadata } from '../../../domain/hcs/client-facts.js';
import type { ClientHcsFacts } from '../../../domain/hcs/decision.js';

/**
 * Everything the SMART steps of one authorization decide on, gathered once from wherever the
 * step runs: a prompt check (oidc-provider's request context) or an interaction page (the stored
 * interaction). Both read the same request parameters, so both decide the same way.
 */
export interface AuthorizationFacts {
  accountId: string;
  clientId: string;
  /** The `scope` parameter, de-duplicated, in request order. */
  requested: string[];
  /** The resource indicator as the request named it (`aud`/`resource`); grants are keyed by it. */
  audience: string | undefined;
  /** The configured FHIR server that audience names. */
  fhirServer: FhirServer | undefined;
  /** The EHR launch id, when the request sent one together with the `launch` scope. */
  launch: string | undefined;
  /** The client's registered scope patterns (`smart_scopes`). */
  clientAllowed: string[];
  user: UserContext;
  picks: LaunchPicks;
  /** The request's `purpose_of_use` codes (checked at the authorization endpoint), in order. */
  purposes: string[];
  /** What the client registered about purposes of use (hcs/). */
  clientHcs: ClientHcsFacts;
  /** A covering active Consent may spare the user the consent page (client `smart_remember_consent`, default true). */
  rememberConsent: boolean;
}

export interface FactSources {
  accountId: string;
  params: Record<string, unknown>;
  client: (ClientHcsMetadata & { smart_scopes?: unknown; smart_remember_consent?: unknown }) | undefined;
  user: UserContext;
  picks: LaunchPicks;
  fhirServers: readonly FhirServer[];
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

export function requestedScopesOf(scope: unknown): string[] {
  return [...new Set((text(scope) ?? '').split(' ').filter(Boolean))];
}

export function audienceOf(params: Record<string, unknown>): string | undefined {
  const resource = params.resource;
  if (Array.isArray(resource)) return text(resource[0]);
  return text(resource) ?? text(params.aud);
}

export function authorizationFacts(s: FactSources): AuthorizationFacts {
  const requested = requestedScopesOf(s.params.scope);
  const audience = audienceOf(s.params);
  const allowed = s.client?.smart_scopes;
  return {
    accountId: s.accountId,
    clientId: s.client?.clientId ?? String(s.params.client_id ?? ''),
    requested,
    audience,
    fhirServer: findFhirServer(s.fhirServers, audience),
    // A launch id without the launch scope asks for nothing (SMART AUTHZ-10): it is not used.
    launch: requested.includes('launch') ? text(s.params.launch) : undefined,
    clientAllowed: Array.isArray(allowed) ? allowed.filter((v): v is string => typeof v === 'string') : [],
    user: s.user,
    picks: s.picks,
    purposes: purposesOf(s.params.purpose_of_use),
    clientHcs: clientHcsFacts(s.client ?? { clientId: String(s.params.client_id ?? '') }),
    rememberConsent: s.client?.smart_remember_consent !== false,
  };
}

/** The parameter was validated when the request came in; anything unparseable here asserts nothing. */
export function purposesOf(value: unknown): string[] {
  const raw = text(value);
  if (!raw) return [];
  try {
    return purposeParameter(raw);
  } catch {
    return [];
  }
}

/** The client may be granted this exact context scope (e.g. launch/patient). */
export function clientMayHave(facts: AuthorizationFacts, scope: string): boolean {
  return facts.clientAllowed.includes(scope);
}
