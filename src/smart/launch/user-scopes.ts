import { downscope, parseScope, type ScopeContext } from '../scopes.js';

/**
 * The user side of downscoping (SMART GR-02): what the user may let an app have, on top of what
 * the client may have. Interactive grants never carry system/ scopes; a patient or a caregiver
 * grants patient/ scopes only (their own record or the patients they act for); clinicians and
 * other staff may also grant user/ scopes. patient/ scopes need a patient in context (SMART
 * AUTHZ-13), and fhirUser means nothing without openid (SMART OIDC-10).
 */

export type UserKind = 'patient' | 'caregiver' | 'practitioner' | 'other';

export interface GrantableInput {
  requested: string[];
  /** The client's registered `smart_scopes`. */
  clientAllowed: string[];
  userKind: UserKind;
  hasPatient: boolean;
}

export interface GrantableResult {
  /** De-duplicated, in request order, each in the syntax it was asked in. */
  granted: string[];
  refused: Array<{ scope: string; reason: string }>;
}

const CONTEXTS_BY_KIND: Readonly<Record<UserKind, readonly ScopeContext[]>> = {
  patient: ['patient'],
  caregiver: ['patient'],
  practitioner: ['patient', 'user'],
  other: ['patient', 'user'],
};

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

export function grantableScopes(input: GrantableInput): GrantableResult {
  const contexts = CONTEXTS_BY_KIND[input.userKind];
  const refused = new Map<string, string>();
  const considered: string[] = [];
  for (const raw of new Set(input.requested)) {
    const scope = parseScope(raw);
    if (scope.kind === 'resource' && !contexts.includes(scope.context)) {
      refused.set(raw, `is a ${scope.context}/ scope; a ${input.userKind} user may only grant ${contexts.map((c) => `${c}/`).join(' or ')} scopes`);
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
