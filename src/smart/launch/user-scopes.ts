import { downscope } from '../../domain/scopes/scopes.js';
import { parseScope, type ScopeContext } from '../../domain/scopes/scope-syntax.js';

/**
 * The user side of downscoping (SMART GR-02): what the user may let an app have, on top of what
 * the client may have. Identity decides, absence never does (docs/security/identity-access.md):
 *
 * - staff (a Practitioner linked account holding a staff role or flag) may grant patient/ and user/
 *   scopes;
 * - a patient or a caregiver grants patient/ scopes only (their own record or the patients they
 *   act for);
 * - any other account (no fhirUser, a Person, a Practitioner without a staff fact) is linked to
 *   nothing that opens records: it gets openid, fhirUser and profile at most.
 *
 * Interactive grants never carry system/ scopes; patient/ scopes need a patient in context (SMART
 * AUTHZ-13), and fhirUser means nothing without openid (SMART OIDC-10).
 */

export type UserKind = 'patient' | 'caregiver' | 'practitioner' | 'other';

/** What an account opens, from what it is linked to. */
export type UserAccess = 'staff' | 'patient' | 'caregiver' | 'none';

export interface GrantableInput {
  requested: string[];
  /** The client's registered `smart_scopes`. */
  clientAllowed: string[];
  access: UserAccess;
  hasPatient: boolean;
}

export interface GrantableResult {
  /** De-duplicated, in request order, each in the syntax it was asked in. */
  granted: string[];
  refused: Array<{ scope: string; reason: string }>;
}

export const CONTEXTS_BY_ACCESS: Readonly<Record<UserAccess, readonly ScopeContext[]>> = {
  staff: ['patient', 'user'],
  patient: ['patient'],
  caregiver: ['patient'],
  none: [],
};

/** All an account linked to nothing may have: who the user is, never a record or a refresh token. */
export const IDENTITY_ONLY_SCOPES: ReadonlySet<string> = new Set(['openid', 'fhirUser', 'profile']);

export const NOT_LINKED_REASON = 'needs an account linked to a patient record or a staff role';

const NO_PATIENT = 'no patient in context';

/** What kind of user a SMART `fhirUser` reference (relative or absolute) names. */
export function userKindOf(fhirUser: string | undefined): UserKind {
  const type = /(?:^|\/)(Patient|RelatedPerson|Practitioner|PractitionerRole)\/[^/]+$/.exec(fhirUser ?? '')?.[1];
  switch (type) {
    case 'Patient':
      return 'patient';
    case 'RelatedPerson':
      return 'caregiver';
    case 'Practitioner':
    case 'PractitionerRole':
      return 'practitioner';
    default:
      return 'other';
  }
}

/**
 * The access an account has: staff needs both the Practitioner link and a positive staff fact
 * (a staff role, own or through a group, or the explicit flag); a staff fact on a patient,
 * caregiver or unlinked account opens nothing more.
 */
export function accessOf(kind: UserKind, staffFact: boolean): UserAccess {
  switch (kind) {
    case 'patient':
      return 'patient';
    case 'caregiver':
      return 'caregiver';
    case 'practitioner':
      return staffFact ? 'staff' : 'none';
    default:
      return 'none';
  }
}

function contextRefusal(context: ScopeContext, access: UserAccess, contexts: readonly ScopeContext[]): string {
  if (!contexts.length) return `is a ${context}/ scope; it ${NOT_LINKED_REASON}`;
  return `is a ${context}/ scope; a ${access} account may only grant ${contexts.map((c) => `${c}/`).join(' or ')} scopes`;
}

export function grantableScopes(input: GrantableInput): GrantableResult {
  const contexts = CONTEXTS_BY_ACCESS[input.access];
  const refused = new Map<string, string>();
  const considered: string[] = [];
  for (const raw of new Set(input.requested)) {
    const scope = parseScope(raw);
    if (scope.kind === 'resource' && !contexts.includes(scope.context)) {
      refused.set(raw, contextRefusal(scope.context, input.access, contexts));
    } else if (input.access === 'none' && !IDENTITY_ONLY_SCOPES.has(raw)) {
      refused.set(raw, NOT_LINKED_REASON);
    } else if (!input.hasPatient && ((scope.kind === 'resource' && scope.context === 'patient') || raw === 'launch/patient')) {
      refused.set(raw, NO_PATIENT);
    } else {
      considered.push(raw);
    }
  }

  const result = downscope(considered, input.clientAllowed, { contexts: [...contexts] });
  for (const r of result.refused) refused.set(r.scope, r.reason);
  let granted = result.granted;
  if (granted.includes('fhirUser') && !granted.includes('openid')) {
    granted = granted.filter((s) => s !== 'fhirUser');
    refused.set('fhirUser', 'is only granted together with openid');
  }

  // Report refusals in request order, like the grant.
  const order = [...new Set(input.requested)];
  return {
    granted,
    refused: order.filter((s) => refused.has(s)).map((scope) => ({ scope, reason: refused.get(scope)! })),
  };
}

/**
 * Why this user cannot give the app anything it asked for, when that is because of who the user
 * is: the request asked for FHIR data, nothing of it is grantable, and some of it was refused for
 * the account's lack of the needed link. Undefined otherwise (then the client's registration, not
 * the account, is what stands in the way, and the app gets invalid_scope as before).
 */
export function identityRefusal(access: UserAccess, requested: readonly string[], grantable: readonly string[]): string | undefined {
  const isResource = (s: string) => parseScope(s).kind === 'resource';
  const asksForData = requested.some((s) => isResource(s) || s === 'launch/patient');
  if (!asksForData || grantable.some(isResource)) return undefined;
  const contexts = CONTEXTS_BY_ACCESS[access];
  const outOfReach = requested.some((s) => {
    const scope = parseScope(s);
    return scope.kind === 'resource' ? !contexts.includes(scope.context) : access === 'none' && s === 'launch/patient';
  });
  if (!outOfReach) return undefined;
  switch (access) {
    case 'none':
      return 'Your account is not linked to a patient record or a staff role, so no app can be given access to health records with it. Ask your administrator to link your account.';
    case 'patient':
    case 'caregiver':
      return 'Your account is linked to patient records, not to a staff role: it can share only the records of the patients it is linked to, and this app asked for access as a member of staff. Ask your administrator if you should have staff access.';
    default:
      return undefined;
  }
}
