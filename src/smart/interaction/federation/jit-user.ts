import type { FederationProvider } from '../../../platform/config/schema.js';
import { CORE_USER_SCHEMA } from '../../../records/directory/model.js';
import type { UpstreamIdentity } from './upstream-identity.js';

/**
 * The directory user made just in time for an unknown upstream identity: active, no password,
 * and only the attributes the provider's `jit.attributes` allows, taken from the upstream's
 * claims. Never roles, staff, patient links, fhirUser or break-the-glass: what a person may do
 * here is granted here (SCIM, the CLI), not by whatever the upstream sends.
 */

export interface JitDraft {
  /** The SCIM User to create. */
  resource: Record<string, unknown>;
  /** The attributes it was given, for the audit trail. */
  attributes: string[];
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() ? v.trim() : undefined);

export function jitUser(provider: FederationProvider, identity: UpstreamIdentity): JitDraft {
  const allowed = new Set<string>(provider.jit.attributes);
  const claims = identity.claims;
  const linkClaim = (attribute: 'externalId' | 'userName' | 'emails') => provider.link.find((l) => l.attribute === attribute)?.claim;
  // Only an address the upstream vouches for becomes the user's.
  const email = claims.email_verified === true ? text(claims[linkClaim('emails') ?? 'email']) : undefined;
  const upstreamName = text(claims[linkClaim('userName') ?? 'preferred_username']) ?? email;
  const given = allowed.has('name.givenName') ? text(claims.given_name) : undefined;
  const family = allowed.has('name.familyName') ? text(claims.family_name) : undefined;

  const resource: Record<string, unknown> = {
    schemas: [CORE_USER_SCHEMA],
    // A user name is required; without an allowed upstream one, the provider and subject make one
    // that no upstream rename can change.
    userName: (allowed.has('userName') ? upstreamName : undefined) ?? `${provider.id}:${identity.subject}`,
    active: true,
  };
  const externalId = text(claims[linkClaim('externalId') ?? '']);
  if (allowed.has('externalId') && externalId) resource.externalId = externalId;
  const displayName = text(claims.name);
  if (allowed.has('displayName') && displayName) resource.displayName = displayName;
  if (given || family) resource.name = { ...(given ? { givenName: given } : {}), ...(family ? { familyName: family } : {}) };
  if (allowed.has('emails') && email) resource.emails = [{ value: email, type: 'work', primary: true }];

  const attributes = ['userName', 'externalId', 'displayName', 'emails'].filter((a) => a in resource);
  if (given) attributes.push('name.givenName');
  if (family) attributes.push('name.familyName');
  return { resource, attributes };
}
