import {
  formatScope,
  parseScope,
  PERMISSIONS,
  resourceScope,
  sameQuery,
  type ParsedScope,
  type Permission,
  type ResourceScope,
  type ScopeContext,
  type ScopeSyntax,
} from './scope-syntax.js';

/**
 * Downscoping: what a client gets is what it asked for intersected with what it may have
 * (SMART GR-02/GR-08: requested ∩ allowed, never more than requested). Every result is itself
 * a scope that the request and some allowed pattern both permit, so nothing is ever widened.
 */

/**
 * The part of `requested` that `allowed` permits, or undefined when nothing is left. A wildcard
 * request meets a typed pattern as that type (`system/*.rs` ∩ `system/Observation.r` is
 * `system/Observation.r`). Query constraints only narrow: a pattern's constraint is imposed on an
 * unconstrained request, a constrained request keeps its own, and two different constraints on
 * both sides have no common part we can express, so they give nothing.
 */
export function scopeAllows(allowed: ParsedScope, requested: ParsedScope): ParsedScope | undefined {
  if (allowed.kind !== 'resource' || requested.kind !== 'resource') {
    const exact =
      (allowed.kind === 'context' || allowed.kind === 'other') && allowed.kind === requested.kind && allowed.raw === requested.raw;
    return exact ? requested : undefined;
  }
  if (allowed.context !== requested.context) return undefined;
  let resourceType: string;
  if (allowed.resourceType === '*') resourceType = requested.resourceType;
  else if (requested.resourceType === '*' || requested.resourceType === allowed.resourceType) resourceType = allowed.resourceType;
  else return undefined;
  const permissions = new Set(PERMISSIONS.filter((p) => allowed.permissions.has(p) && requested.permissions.has(p)));
  if (!permissions.size) return undefined;
  if (allowed.query && requested.query && !sameQuery(allowed.query, requested.query)) return undefined;
  const query = requested.query ?? allowed.query;
  return resourceScope({ context: requested.context, resourceType, permissions, ...(query ? { query } : {}) }, requested.syntax);
}

export interface DownscopeOptions {
  /** The resource-scope contexts this client may use at all (e.g. ['system'] for a backend service). */
  contexts: ScopeContext[];
  /** Echo v1 scopes in v1 syntax when the grant is expressible in it (default true, SMART SC-10). */
  keepV1Syntax?: boolean;
  /**
   * The FHIR resource types the server knows (e.g. from the FHIR server's CapabilityStatement).
   * When given, a request naming any other type is refused (SMART GR-03); without it any
   * well-formed type name is taken on trust.
   */
  resourceTypes?: Iterable<string>;
}

export interface DownscopeResult {
  /** De-duplicated, in request order. */
  granted: string[];
  /** Requested scopes of which nothing was granted; `reason` is a predicate that follows the scope. */
  refused: Array<{ scope: string; reason: string }>;
}

export function downscope(requested: string[], allowedPatterns: string[], opts: DownscopeOptions): DownscopeResult {
  const allowed = allowedPatterns.map(parseScope).filter((p): p is ResourceScope => p.kind === 'resource');
  const allowedExact = new Set(allowedPatterns);
  const granted = new Set<string>();
  const refused = new Map<string, string>();
  const knownTypes = opts.resourceTypes ? new Set(opts.resourceTypes) : undefined;
  for (const raw of new Set(requested)) {
    const scope = parseScope(raw);
    switch (scope.kind) {
      case 'invalid':
        refused.set(raw, scope.problem);
        break;
      case 'context':
      case 'other':
        if (allowedExact.has(raw)) granted.add(raw);
        else refused.set(raw, 'is not among the scopes this client may be granted');
        break;
      case 'resource': {
        if (!opts.contexts.includes(scope.context)) {
          refused.set(raw, contextRefusal(scope.context, opts.contexts));
          break;
        }
        if (knownTypes && scope.resourceType !== '*' && !knownTypes.has(scope.resourceType)) {
          refused.set(raw, `names the resource type "${scope.resourceType}", which this server does not know`);
          break;
        }
        const parts = grantedParts(scope, allowed);
        if (!parts.length) {
          refused.set(raw, 'is not permitted by any scope this client may be granted');
          break;
        }
        const syntax: ScopeSyntax = opts.keepV1Syntax === false ? 'v2' : scope.syntax;
        for (const part of parts) granted.add(formatScope(part, syntax));
        break;
      }
    }
  }
  return { granted: [...granted], refused: [...refused].map(([scope, reason]) => ({ scope, reason })) };
}

function contextRefusal(context: ScopeContext, contexts: ScopeContext[]): string {
  if (!contexts.length) return `is a ${context}/ scope; this client may not be granted resource scopes`;
  return `is a ${context}/ scope; this client may only be granted ${contexts.map((c) => `${c}/`).join(' or ')} scopes`;
}

/**
 * The union of what each pattern permits of one requested scope: permissions of parts with the
 * same type and constraint are merged (`.r` + `.s` = `.rs`), and a part another part already
 * covers is dropped, so the request gets the fewest scopes that say the same thing.
 */
function grantedParts(requested: ResourceScope, allowed: ResourceScope[]): ResourceScope[] {
  const merged = new Map<string, ResourceScope>();
  for (const pattern of allowed) {
    const part = scopeAllows(pattern, requested);
    if (part?.kind !== 'resource') continue;
    const key = JSON.stringify([part.resourceType, part.query?.pairs ?? null]);
    const previous = merged.get(key);
    if (!previous) {
      merged.set(key, part);
      continue;
    }
    const permissions = new Set<Permission>([...previous.permissions, ...part.permissions]);
    merged.set(key, resourceScope({ ...previous, permissions }, requested.syntax));
  }
  const parts = [...merged.values()];
  return parts.filter((p) => !parts.some((q) => q !== p && covers(q, p)));
}

function covers(wider: ResourceScope, narrower: ResourceScope): boolean {
  const common = scopeAllows(wider, narrower);
  return (
    common?.kind === 'resource' &&
    common.resourceType === narrower.resourceType &&
    common.permissions.size === narrower.permissions.size &&
    sameQuery(common.query, narrower.query)
  );
}

/**
 * The resource types named by resource scopes, for showing what an app may see: "*" first (all
 * types), then the rest alphabetically. Non-resource and invalid scopes are ignored.
 */
export function resourceTypesOf(scopes: string[]): string[] {
  const types = new Set<string>();
  for (const s of scopes) {
    const p = parseScope(s);
    if (p.kind === 'resource') types.add(p.resourceType);
  }
  return [...types].sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : a < b ? -1 : a > b ? 1 : 0));
}
