import { absoluteFhirUser } from '../../../records/directory/accounts.js';
import { ENTERPRISE_USER_SCHEMA, SMART_USER_SCHEMA, type ScimUser } from '../../../records/directory/model.js';
import { type Coding } from '../../../domain/fhir/types.js';
import { roleMatches } from '../../../domain/hcs/policy.js';
import { accessOf, userKindOf } from '../../launch/user-scopes.js';
import { ownPatientOf, patientIdOf, type ProxyPatient, type UserContext } from './fhir-user.js';

function nameOf(user: ScimUser): string | undefined {
  const n = user.name;
  return n?.formatted || [n?.givenName, n?.familyName].filter(Boolean).join(' ') || user.displayName || undefined;
}

/** What decides whether a user is staff, besides their own SCIM record. */
export interface StaffFacts {
  /** The HCS policy's `staffRoles`: holding one (own or through a group) makes a user staff. */
  staffRoles: readonly Coding[];
}

/**
 * The user's FHIR identity and patient relationships. `fhirBase` makes a relative fhirUser
 * absolute the same way the account claims do (records/directory/accounts.ts), so tokens and pages agree.
 * `effectiveRoles` are the user's own roles and those of their groups (UserStore.effectiveRoles).
 */
export function userContextOf(
  user: ScimUser | undefined,
  fhirBase: string,
  effectiveRoles: Coding[] | undefined,
  staff: StaffFacts,
): UserContext {
  if (!user) return { kind: 'other', access: 'none', proxies: [] };
  const smart = user[SMART_USER_SCHEMA];
  const organization = user[ENTERPRISE_USER_SCHEMA]?.organization;
  const fhirUser = absoluteFhirUser(smart?.fhirUser, fhirBase);
  const kind = userKindOf(fhirUser);
  const roles = effectiveRoles ?? [...(smart?.roles ?? [])];
  const staffFact = smart?.staff === true || roleMatches(roles, staff.staffRoles);
  const context: UserContext = { kind, access: accessOf(kind, staffFact), proxies: [] };
  if (fhirUser) context.fhirUser = fhirUser;
  const displayName = nameOf(user);
  if (displayName) context.displayName = displayName;
  if (smart?.clearance) context.clearance = smart.clearance;
  context.security = {
    ...(smart?.purposesOfUse ? { purposes: [...smart.purposesOfUse] } : {}),
    roles,
    breakTheGlass: smart?.breakTheGlass === true,
    testAccount: smart?.testAccount === true,
    ...(organization ? { organization } : {}),
    ...(smart?.organizationId ? { organizationId: smart.organizationId } : {}),
    ...(smart?.npi ? { npi: smart.npi } : {}),
  };
  if (kind === 'patient') {
    const own = ownPatientOf(fhirUser);
    if (own) context.ownPatient = own;
  }
  if (kind === 'caregiver') {
    const seen = new Set<string>();
    for (const entry of smart?.proxyPatients ?? []) {
      const id = patientIdOf(entry.value);
      if (!id || seen.has(id)) continue;
      seen.add(id);
      const proxy: ProxyPatient = { id, display: entry.display?.trim() || `Patient ${id}` };
      context.proxies.push(proxy);
    }
  }
  return context;
}

/**
 * The patients this user may have in context, or undefined when the server does not limit it
 * (staff, whose EHR launch or search names the patient). A patient only ever gets their own
 * record, a caregiver only the patients they act for, and an account linked to nothing none.
 */
export function allowedPatientsOf(user: UserContext): string[] | undefined {
  switch (user.access) {
    case 'staff':
      return undefined;
    case 'patient':
      return user.ownPatient ? [user.ownPatient] : [];
    case 'caregiver':
      return user.proxies.map((p) => p.id);
    default:
      return [];
  }
}
