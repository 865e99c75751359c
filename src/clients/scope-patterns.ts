/**
 * The grammar of scopes a client may be registered for (`smart_scopes`). A registered pattern is
 * an upper bound: the issuing policy intersects requests with it, so it may use wildcards.
 *
 *   resource scope = (patient|user|system) "/" (ResourceType|"*") "." permissions ["?" query]
 *   permissions    = read | write | * (SMART v1) or a non-empty, in-order subset of "cruds" (v2)
 *   query          = name "=" value *("&" name "=" value)   (FHIR search-parameter syntax)
 */

export const NON_RESOURCE_SCOPES = [
  'openid',
  'fhirUser',
  'profile',
  'launch',
  'launch/patient',
  'launch/encounter',
  'offline_access',
  'online_access',
] as const;

export type ScopeContext = 'patient' | 'user' | 'system';

export type ParsedScopePattern =
  | { kind: 'non-resource'; scope: string }
  | { kind: 'resource'; context: ScopeContext; resourceType: string; permissions: string; query?: string };

const RESOURCE_SCOPE = /^(patient|user|system)\/([A-Z][A-Za-z]*|\*)\.([^?]*)(?:\?(.*))?$/;
const V2_PERMISSIONS = /^c?r?u?d?s?$/;
const V1_PERMISSIONS = new Set(['read', 'write', '*']);
const SEARCH_PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
const nonResource: ReadonlySet<string> = new Set(NON_RESOURCE_SCOPES);

/** Returns the parsed pattern, or a sentence saying what is wrong with it. */
export function parseScopePattern(scope: string): ParsedScopePattern | { problem: string } {
  if (nonResource.has(scope)) return { kind: 'non-resource', scope };
  if (/\s/.test(scope)) return { problem: 'contains whitespace' };
  const match = RESOURCE_SCOPE.exec(scope);
  if (!match) {
    return {
      problem: `is neither one of ${NON_RESOURCE_SCOPES.join(', ')} nor a resource scope like patient/Observation.rs or system/*.read`,
    };
  }
  const [, context, resourceType, permissions, query] = match as unknown as [string, ScopeContext, string, string, string | undefined];
  if (!V1_PERMISSIONS.has(permissions) && !(permissions.length > 0 && V2_PERMISSIONS.test(permissions))) {
    return { problem: `has permissions "${permissions}"; use read, write or * (v1) or an in-order subset of cruds such as rs (v2)` };
  }
  if (query !== undefined) {
    const problem = queryProblem(query);
    if (problem) return { problem };
    return { kind: 'resource', context, resourceType, permissions, query };
  }
  return { kind: 'resource', context, resourceType, permissions };
}

function queryProblem(query: string): string | undefined {
  if (!query) return 'has an empty query after "?"';
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) return `has query part "${pair}"; each must be name=value`;
    if (!SEARCH_PARAM_NAME.test(pair.slice(0, eq))) return `has an invalid search parameter name "${pair.slice(0, eq)}"`;
  }
  return undefined;
}
