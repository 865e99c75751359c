import type { Account, AccountClaims, FindAccount } from 'oidc-provider';
import { SMART_USER_SCHEMA, type ScimUser } from './model.js';
import type { UserStore } from './user-store.js';

/**
 * SMART's `fhirUser` is a FHIR resource URL (Patient, Practitioner, RelatedPerson, …). It may be
 * stored relative (`Practitioner/123`); apps get it absolute, on the server's first FHIR base.
 */
export function absoluteFhirUser(fhirUser: string | undefined, fhirBase: string): string | undefined {
  if (!fhirUser) return undefined;
  if (URL.canParse(fhirUser)) return fhirUser;
  return `${fhirBase.replace(/\/+$/, '')}/${fhirUser.replace(/^\/+/, '')}`;
}

function fullName(user: Omit<ScimUser, 'groups'>): string | undefined {
  const name = user.name;
  if (name?.formatted) return name.formatted;
  const joined = [name?.givenName, name?.familyName].filter(Boolean).join(' ');
  return joined || user.displayName || undefined;
}

/** OpenID claims of a user; oidc-provider keeps only those the granted scopes and claims allow. */
export function accountClaims(user: Omit<ScimUser, 'groups'>, fhirBase: string): AccountClaims {
  const lastModified = (user.meta as { lastModified?: string } | undefined)?.lastModified;
  const updatedAt = lastModified ? Math.floor(Date.parse(lastModified) / 1000) : undefined;
  const claims: Record<string, unknown> = {
    sub: user.id,
    fhirUser: absoluteFhirUser(user[SMART_USER_SCHEMA]?.fhirUser, fhirBase),
    name: fullName(user),
    given_name: user.name?.givenName,
    family_name: user.name?.familyName,
    preferred_username: user.userName,
    updated_at: Number.isFinite(updatedAt) ? updatedAt : undefined,
  };
  for (const key of Object.keys(claims)) if (claims[key] === undefined || claims[key] === '') delete claims[key];
  return claims as AccountClaims;
}

/**
 * oidc-provider's account lookup by subject (our user id). Unknown and deactivated users have no
 * account, so their sessions end and their tokens stop working at the next lookup.
 */
export function findAccount(store: Pick<UserStore, 'getRecordOnly'>, opts: { fhirBase: string }): FindAccount {
  return async (_ctx, sub): Promise<Account | undefined> => {
    const user = await store.getRecordOnly(sub);
    if (!user?.active) return undefined;
    return { accountId: user.id, claims: () => accountClaims(user, opts.fhirBase) };
  };
}
