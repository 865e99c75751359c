import { NOT_A_SCOPE, parseScope, type ScopeContext } from '../../domain/scopes/scope-syntax.js';
/**
 * The scopes a client may be registered for (`smart_scopes`). A registered pattern is an upper
 * bound: the issuing policy intersects requests with it (src/domain/scopes/scopes.ts), so it may use
 * wildcards. The grammar lives in src/domain/scopes/scope-syntax.ts; this is the registration view of it,
 * which additionally refuses extension scopes (nothing grants them yet).
 */

/**
 * Scopes for this server's own administration APIs rather than for FHIR data: `scim` lets a
 * backend_service client manage the user directory at /scim/v2; `introspect` lets it call
 * /introspect with its bearer token (for gateways that hold a token rather than a client
 * credential). Granted on exact match only.
 */
export const ADMIN_SCOPES = ['scim', 'introspect'] as const;

export type ParsedScopePattern =
  | { kind: 'non-resource'; scope: string }
  | { kind: 'admin'; scope: string }
  | { kind: 'resource'; context: ScopeContext; resourceType: string; permissions: string; query?: string };

/** Returns the parsed pattern, or a sentence saying what is wrong with it. */
export function parseScopePattern(scope: string): ParsedScopePattern | { problem: string } {
  if ((ADMIN_SCOPES as readonly string[]).includes(scope)) return { kind: 'admin', scope };
  const parsed = parseScope(scope);
  switch (parsed.kind) {
    case 'invalid':
      return { problem: parsed.problem };
    case 'other':
      return { problem: NOT_A_SCOPE };
    case 'context':
      return { kind: 'non-resource', scope };
    case 'resource': {
      // The suffix as written: v1 keywords and in-order v2 letters both survive the round trip.
      const suffix = scope.slice(scope.indexOf('.') + 1).split('?')[0] ?? '';
      const base = { kind: 'resource', context: parsed.context, resourceType: parsed.resourceType, permissions: suffix } as const;
      return parsed.query ? { ...base, query: parsed.query.text } : base;
    }
  }
}
