import type { Config } from '../../../platform/config/schema.js';
import type { Coding } from '../../../domain/fhir/types.js';
import { SMART_USER_SCHEMA, type ScimUser } from '../../../records/directory/model.js';

/** Who must sign in with a second factor (config `mfa`). */
export type MfaPolicy = Pick<Config['mfa'], 'requireEveryone' | 'requireRoles' | 'requireGroups' | 'requireFhirUserTypes'>;

/**
 * A role in the policy is a code (`doctor`, any system) or `system|code`. Roles count whether the
 * user holds them directly or through a group (UserStore.effectiveRoles), as they do in tokens.
 */
function holdsRole(roles: readonly Coding[], wanted: string): boolean {
  const bar = wanted.lastIndexOf('|');
  if (bar < 0) return roles.some((r) => r.code === wanted);
  const system = wanted.slice(0, bar);
  const code = wanted.slice(bar + 1);
  return roles.some((r) => r.system === system && r.code === code);
}

/** `Practitioner/123`, or an absolute URL ending in a type and id: the type. */
function fhirUserType(fhirUser: string | undefined): string | undefined {
  if (!fhirUser) return undefined;
  const parts = fhirUser.replace(/\/+$/, '').split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : undefined;
}

/**
 * Whether this user needs a second factor to sign in. Any one rule that names the user is enough,
 * so adding a rule only ever asks more of people, never less.
 */
export function needsSecondFactor(policy: MfaPolicy, user: ScimUser, effectiveRoles: readonly Coding[]): boolean {
  if (policy.requireEveryone) return true;
  if (policy.requireRoles.some((r) => holdsRole(effectiveRoles, r))) return true;
  if (policy.requireGroups.length) {
    const groups = user.groups ?? [];
    if (policy.requireGroups.some((g) => groups.some((m) => m.value === g || m.display === g))) return true;
  }
  const type = fhirUserType(user[SMART_USER_SCHEMA]?.fhirUser);
  return Boolean(type && (policy.requireFhirUserTypes as readonly string[]).includes(type));
}
