import type Provider from 'oidc-provider';
import { CONTEXT_SCOPES } from '../../../domain/scopes/scope-syntax.js';

type Grant = InstanceType<Provider['Grant']>;

/** The scopes oidc-provider knows statically (its `scopes` setting): they are OIDC scopes of a grant. */
const OIDC_SCOPES: ReadonlySet<string> = new Set(CONTEXT_SCOPES);

export interface GrantDecision {
  accountId: string;
  clientId: string;
  /** The resource indicator exactly as the request named it: oidc-provider keys grants by it. */
  audience: string | undefined;
  requested: readonly string[];
  approved: readonly string[];
}

/**
 * A grant holding exactly the approved scopes, with every other requested scope rejected so
 * oidc-provider's consent checks see the request as fully decided and do not ask again. Context
 * scopes go in both places: as OIDC scopes (id_token, refresh tokens) and under the FHIR server,
 * whose access tokens list them in `scope` as SMART apps expect.
 */
export function buildGrant(provider: Provider, decision: GrantDecision): Grant {
  const grant = new provider.Grant({ accountId: decision.accountId, clientId: decision.clientId });
  const approved = new Set(decision.approved);
  const rejected = [...new Set(decision.requested)].filter((s) => !approved.has(s));
  const oidcApproved = [...approved].filter((s) => OIDC_SCOPES.has(s));
  const oidcRejected = rejected.filter((s) => OIDC_SCOPES.has(s));
  if (oidcApproved.length) grant.addOIDCScope(oidcApproved);
  if (oidcRejected.length) grant.rejectOIDCScope(oidcRejected);
  if (decision.audience) {
    if (approved.size) grant.addResourceScope(decision.audience, [...approved]);
    if (rejected.length) grant.rejectResourceScope(decision.audience, rejected);
  }
  return grant;
}

/** What a grant approved for one audience: its OIDC scopes plus that server's resource scopes. */
export function approvedScopesOf(grant: Grant, audience: string | undefined): string[] {
  const scopes = new Set(grant.getOIDCScope().split(' ').filter(Boolean));
  if (audience) for (const s of grant.getResourceScope(audience).split(' ').filter(Boolean)) scopes.add(s);
  return [...scopes];
}

/** True when the grant has already decided (approved or rejected) every requested scope. */
export function grantDecidesAll(grant: Grant, audience: string | undefined, requested: readonly string[]): boolean {
  const oidc = new Set(grant.getOIDCScopeEncountered().split(' '));
  const resource = new Set(audience ? grant.getResourceScopeEncountered(audience).split(' ') : []);
  return requested.every((s) => resource.has(s) || (OIDC_SCOPES.has(s) && oidc.has(s)));
}
