import { parseScope, sameQuery, type ParsedScope, type Permission } from '../../domain/scopes/scope-syntax.js';
import { scopeAllows } from '../../domain/scopes/scopes.js';

/**
 * Whether scopes someone already consented to cover a new request. A resource scope is covered
 * when the consented scopes together permit all of it: the same resource type (a consented `*`
 * reaches every type), the same query constraint (or none on the consented side), and every
 * permission letter, possibly from several scopes (`.r` and `.s` cover `.rs`). Any other scope
 * (openid, launch, offline_access, …) is covered only by itself.
 */

function covered(consented: readonly ParsedScope[], requested: ParsedScope): boolean {
  if (requested.kind !== 'resource') return consented.some((c) => c.raw === requested.raw);
  const permissions = new Set<Permission>();
  for (const c of consented) {
    const common = scopeAllows(c, requested);
    if (common?.kind !== 'resource' || common.resourceType !== requested.resourceType || !sameQuery(common.query, requested.query))
      continue;
    for (const p of common.permissions) permissions.add(p);
  }
  return [...requested.permissions].every((p) => permissions.has(p));
}

/** The requested scopes the consented ones do not cover, in request order, without duplicates. */
export function uncoveredScopes(consented: readonly string[], requested: readonly string[]): string[] {
  const parsed = consented.map(parseScope);
  return [...new Set(requested)].filter((s) => !covered(parsed, parseScope(s)));
}

export function coversAll(consented: readonly string[], requested: readonly string[]): boolean {
  return uncoveredScopes(consented, requested).length === 0;
}

/** The patient/ resource scopes among some scopes: the ones a patient's consent must cover. */
export function patientScopes(scopes: readonly string[]): string[] {
  return scopes.filter((s) => {
    const p = parseScope(s);
    return p.kind === 'resource' && p.context === 'patient';
  });
}
