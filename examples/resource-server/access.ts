/**
 * What a SMART access token lets its bearer do on this FHIR server, decided from the scopes and
 * patient that introspection returned. SMART v1 (`patient/Patient.read`) and v2
 * (`patient/Patient.rs`) are both understood; `patient/` scopes confine the bearer to the token's
 * patient compartment, `user/` and `system/` scopes do not (the user's or client's own permissions
 * stand behind those). Granular scopes (`?category=…`) narrow a search to matching resources; this
 * example serves no resource those parameters could select, so it does not let them grant access.
 */

export type Interaction = 'read' | 'search';

export interface Decision {
  allowed: boolean;
  /** The patient id the bearer is confined to (patient/ scopes only). */
  compartment?: string;
  /** Why access was refused, for the OperationOutcome. */
  reason?: string;
}

interface ParsedScope {
  level: 'patient' | 'user' | 'system';
  resourceType: string;
  read: boolean;
  search: boolean;
}

const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|c?r?u?d?s?)$/;

export function parseScope(scope: string): ParsedScope | undefined {
  const match = SCOPE.exec(scope);
  if (!match) return undefined;
  const [, level, resourceType, permissions] = match as unknown as [string, ParsedScope['level'], string, string];
  if (permissions === '') return undefined;
  // v1: read covers read and search; `*` everything. v2: the letters say it.
  const v1Read = permissions === 'read' || permissions === '*';
  return {
    level,
    resourceType,
    read: v1Read || (permissions !== 'write' && permissions.includes('r')),
    search: v1Read || (permissions !== 'write' && permissions.includes('s')),
  };
}

export function decide(scopeString: string, patient: string | undefined, resourceType: string, interaction: Interaction): Decision {
  const matching = scopeString
    .split(' ')
    .map(parseScope)
    .filter((s): s is ParsedScope => s !== undefined)
    .filter((s) => (s.resourceType === '*' || s.resourceType === resourceType) && (interaction === 'read' ? s.read : s.search));
  if (matching.some((s) => s.level === 'user' || s.level === 'system')) return { allowed: true };
  if (matching.some((s) => s.level === 'patient')) {
    if (!patient) return { allowed: false, reason: 'patient/ scopes need a patient in the token context, and this token has none' };
    return { allowed: true, compartment: patient };
  }
  return { allowed: false, reason: `the token's scopes do not allow ${interaction} of ${resourceType}` };
}
