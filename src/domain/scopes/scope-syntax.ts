/**
 * The one parser and printer of SMART scopes (App Launch 2.2 with 1.0 compatibility).
 *
 *   resource scope = (patient|user|system) "/" (ResourceType|"*") "." permissions ["?" query]
 *   permissions    = read | write | * (v1) or a non-empty, in-order subset of "cruds" (v2)
 *   query          = name "=" value *("&" name "=" value)   (FHIR search-parameter syntax)
 *   context scope  = openid | fhirUser | profile | launch | launch/patient | launch/encounter
 *                  | offline_access | online_access | launch/<lowercasetype>["?role=" role]
 *
 * Problems are predicates meant to follow the scope in a sentence ("patient/X.q has permissions …"),
 * so callers can prefix them with whatever names the scope (a field, a request parameter).
 */

export const CONTEXT_SCOPES = [
  'openid',
  'fhirUser',
  'profile',
  'launch',
  'launch/patient',
  'launch/encounter',
  'offline_access',
  'online_access',
] as const;

export const SCOPE_CONTEXTS = ['patient', 'user', 'system'] as const;
export type ScopeContext = (typeof SCOPE_CONTEXTS)[number];

/** In the canonical v2 order; permission strings are always printed in this order. */
export const PERMISSIONS = ['c', 'r', 'u', 'd', 's'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export type ScopeSyntax = 'v1' | 'v2';

export interface ScopeQuery {
  /** Decoded name/value pairs sorted by name then value, so equal constraints compare equal. */
  readonly pairs: ReadonlyArray<readonly [string, string]>;
  /** As the client wrote it (without the "?"), so a granted scope echoes the request's order. */
  readonly text: string;
}

export interface ResourceScope {
  readonly kind: 'resource';
  readonly context: ScopeContext;
  /** A FHIR resource type name, or "*" for all types now and in the future. */
  readonly resourceType: string;
  readonly permissions: ReadonlySet<Permission>;
  readonly syntax: ScopeSyntax;
  readonly query?: ScopeQuery;
  readonly raw: string;
}

export interface ContextScope {
  readonly kind: 'context';
  /** e.g. "openid", "launch/patient", "launch/imagingstudy" (without any role). */
  readonly name: string;
  /** SMART 2.2 `launch/<type>?role=<uri>`. */
  readonly role?: string;
  readonly raw: string;
}

/** Extension scopes (`__name`, URIs) and anything else that does not look like a SMART scope. */
export interface OtherScope {
  readonly kind: 'other';
  readonly raw: string;
}

export interface InvalidScope {
  readonly kind: 'invalid';
  readonly raw: string;
  readonly problem: string;
}

export type ParsedScope = ResourceScope | ContextScope | OtherScope | InvalidScope;

const RESOURCE_TYPE = /^[A-Z][A-Za-z]+$/;
const V2_PERMISSIONS = /^c?r?u?d?s?$/;
const SEARCH_PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
const LAUNCH_TYPE = /^[a-z]+$/;
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const WORD = /^[A-Za-z][A-Za-z0-9_-]*$/;

const V1_KEYWORDS: Readonly<Record<string, readonly Permission[]>> = {
  read: ['r', 's'],
  write: ['c', 'u', 'd'],
  '*': ['c', 'r', 'u', 'd', 's'],
};

const contextScopes: ReadonlySet<string> = new Set(CONTEXT_SCOPES);
const scopeContexts: ReadonlySet<string> = new Set(SCOPE_CONTEXTS);

/** The sentence used when a scope is neither a known context scope nor a well-formed resource scope. */
export const NOT_A_SCOPE = `is neither one of ${CONTEXT_SCOPES.join(', ')} nor a resource scope like patient/Observation.rs or system/*.read`;

function invalid(raw: string, problem: string): InvalidScope {
  return { kind: 'invalid', raw, problem };
}

export function parseScope(s: string): ParsedScope {
  if (s === '') return invalid(s, 'is empty');
  if (/\s/.test(s)) return invalid(s, 'contains whitespace');
  if (contextScopes.has(s)) return { kind: 'context', name: s, raw: s };
  if (s.startsWith('launch/') || s.startsWith('launch?')) return parseLaunchScope(s);
  if (s.startsWith('__') || URI_SCHEME.test(s)) return { kind: 'other', raw: s };
  const slash = s.indexOf('/');
  if (slash > 0) {
    const prefix = s.slice(0, slash);
    if (scopeContexts.has(prefix)) return parseResourceScope(s, prefix as ScopeContext, s.slice(slash + 1));
    // Looks like someone meant a resource scope (word/Type.perm); saying why beats calling it unknown.
    if (
      WORD.test(prefix) &&
      s
        .slice(slash + 1)
        .split('?')[0]
        ?.includes('.')
    ) {
      return invalid(s, `${NOT_A_SCOPE} (the context "${prefix}" must be patient, user or system)`);
    }
  }
  return { kind: 'other', raw: s };
}

function parseLaunchScope(s: string): ParsedScope {
  const q = s.indexOf('?');
  const name = q < 0 ? s : s.slice(0, q);
  const type = name.slice('launch/'.length);
  if (name === 'launch') return invalid(s, `${NOT_A_SCOPE} (only launch/<type> scopes may carry ?role=)`);
  if (!type) return invalid(s, `${NOT_A_SCOPE} (the context type after launch/ is missing)`);
  if (!LAUNCH_TYPE.test(type)) {
    return invalid(
      s,
      `${NOT_A_SCOPE} (launch context types are written in lower case letters, e.g. launch/${type.toLowerCase().replace(/[^a-z]/g, '') || 'patient'})`,
    );
  }
  if (q < 0) return { kind: 'context', name, raw: s };
  const query = s.slice(q + 1);
  if (!query.startsWith('role=') || query.includes('&') || query.length === 'role='.length) {
    return invalid(s, 'may only carry a single non-empty ?role= qualifier');
  }
  return { kind: 'context', name, role: query.slice('role='.length), raw: s };
}

function parseResourceScope(raw: string, context: ScopeContext, rest: string): ParsedScope {
  const q = rest.indexOf('?');
  const body = q < 0 ? rest : rest.slice(0, q);
  const dot = body.indexOf('.');
  if (dot < 0) return invalid(raw, `${NOT_A_SCOPE} (the "." and permissions after the resource type are missing)`);
  const resourceType = body.slice(0, dot);
  const suffix = body.slice(dot + 1);
  if (!resourceType) return invalid(raw, `${NOT_A_SCOPE} (the resource type is missing)`);
  if (resourceType !== '*' && !RESOURCE_TYPE.test(resourceType)) {
    return invalid(raw, `${NOT_A_SCOPE} (the resource type "${resourceType}" must be a FHIR resource type such as Observation, or *)`);
  }
  let syntax: ScopeSyntax;
  let letters: readonly Permission[];
  const v1 = Object.hasOwn(V1_KEYWORDS, suffix) ? V1_KEYWORDS[suffix] : undefined;
  if (v1) {
    syntax = 'v1';
    letters = v1;
  } else if (suffix.length > 0 && V2_PERMISSIONS.test(suffix)) {
    syntax = 'v2';
    letters = [...suffix] as Permission[];
  } else {
    return invalid(raw, `has permissions "${suffix}"; use read, write or * (v1) or an in-order subset of cruds such as rs (v2)`);
  }
  const scope = { kind: 'resource', context, resourceType, permissions: new Set(letters), syntax, raw } as const;
  if (q < 0) return scope;
  const query = parseQuery(rest.slice(q + 1));
  return 'problem' in query ? invalid(raw, query.problem) : { ...scope, query };
}

function parseQuery(text: string): ScopeQuery | { problem: string } {
  if (!text) return { problem: 'has an empty query after "?"' };
  const pairs: Array<[string, string]> = [];
  for (const part of text.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) return { problem: `has query part "${part}"; each must be name=value` };
    const name = part.slice(0, eq);
    if (!SEARCH_PARAM_NAME.test(name)) return { problem: `has an invalid search parameter name "${name}"` };
    try {
      pairs.push([name, decodeURIComponent(part.slice(eq + 1))]);
    } catch {
      return { problem: `has query part "${part}" with broken percent-encoding` };
    }
  }
  pairs.sort(([an, av], [bn, bv]) => (an === bn ? compare(av, bv) : compare(an, bn)));
  return { pairs, text };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sameQuery(a: ScopeQuery | undefined, b: ScopeQuery | undefined): boolean {
  if (!a || !b) return a === b;
  return a.pairs.length === b.pairs.length && a.pairs.every(([n, v], i) => b.pairs[i]?.[0] === n && b.pairs[i]?.[1] === v);
}

/** The v1 keyword that means exactly these permissions, if there is one. */
export function v1Keyword(permissions: ReadonlySet<Permission>): string | undefined {
  for (const [keyword, letters] of Object.entries(V1_KEYWORDS)) {
    if (letters.length === permissions.size && letters.every((l) => permissions.has(l))) return keyword;
  }
  return undefined;
}

export function permissionString(permissions: ReadonlySet<Permission>): string {
  return PERMISSIONS.filter((p) => permissions.has(p)).join('');
}

/**
 * Prints a scope. For resource scopes `syntax` defaults to the one it was parsed from; v1 is used
 * only when a v1 keyword means exactly these permissions (SMART: echo v1 when v1 was asked for),
 * otherwise v2 letters in canonical order.
 */
export function formatScope(p: ParsedScope, syntax?: ScopeSyntax): string {
  if (p.kind !== 'resource') return p.raw;
  const keyword = (syntax ?? p.syntax) === 'v1' ? v1Keyword(p.permissions) : undefined;
  const suffix = keyword ?? permissionString(p.permissions);
  return `${p.context}/${p.resourceType}.${suffix}${p.query ? `?${p.query.text}` : ''}`;
}

/** Builds a resource scope and its `raw` text from parts (e.g. the result of an intersection). */
export function resourceScope(parts: Omit<ResourceScope, 'kind' | 'raw' | 'syntax'>, syntax: ScopeSyntax): ResourceScope {
  const effective: ScopeSyntax = syntax === 'v1' && v1Keyword(parts.permissions) ? 'v1' : 'v2';
  const base = {
    kind: 'resource',
    context: parts.context,
    resourceType: parts.resourceType,
    permissions: parts.permissions,
    syntax: effective,
    raw: '',
  } as const;
  const scope: ResourceScope = parts.query ? { ...base, query: parts.query } : base;
  return { ...scope, raw: formatScope(scope) };
}
