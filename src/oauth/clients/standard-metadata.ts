import { errors } from 'oidc-provider';
import { inferKind } from './client-kinds.js';
import { parseScopePattern } from './scope-patterns.js';

/**
 * Standard RFC 7591 / OpenID Dynamic Client Registration metadata read as SMART metadata, so a
 * registrant that knows only the standards (an OpenID dynamic-registration client) can register:
 *
 * - `scope` (space-separated) is the client's SMART scopes. It becomes `smart_scopes` before
 *   oidc-provider sees it (oidc-provider would refuse any `scope` value that is not one of its
 *   static scopes, and SMART resource scopes never are). A request with both must name the same
 *   scopes: a disagreement is refused rather than merged, so what the client reads back is what it
 *   meant. The one exception is an RFC 7592 update where one member still holds the client's
 *   current scopes (the echo of a read) and the other a new list: the new list is the update.
 *   Responses carry the scopes as `scope` too (registration-http.ts).
 * - a missing `smart_client_kind` is inferred from the auth method and grant types (client-kinds.ts).
 *
 * Everything read here is then held to the registration policy like `smart_scopes` and
 * `smart_client_kind` are: it only changes how the request is spelled, never what it may get.
 */

export interface StandardMetadataReading {
  /** How the kind was inferred, when the request did not name it. */
  inferredKindBasis?: string;
}

function fail(description: string): never {
  throw new errors.InvalidClientMetadata(description);
}

function quote(value: string): string {
  return `'${value.length > 80 ? `${value.slice(0, 77)}...` : value}'`;
}

function scopeMember(value: unknown): string[] {
  if (typeof value !== 'string') fail('scope must be a string of space-separated scope values (RFC 7591 §2)');
  const scopes = [...new Set(value.split(' ').filter(Boolean))];
  for (const scope of scopes) {
    const parsed = parseScopePattern(scope);
    if ('problem' in parsed) fail(`scope value ${quote(scope)} ${parsed.problem}`);
  }
  return scopes;
}

function sameScopes(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((s) => set.has(s));
}

function adoptScopeMember(properties: Record<string, unknown>, currentScopes: readonly string[] | undefined): void {
  if (properties.scope === undefined) return;
  const fromScope = scopeMember(properties.scope);
  delete properties.scope;
  const smart = properties.smart_scopes;
  if (smart === undefined) {
    properties.smart_scopes = fromScope;
    return;
  }
  if (!Array.isArray(smart) || !smart.every((s) => typeof s === 'string')) fail('smart_scopes must be an array of strings');
  if (sameScopes(fromScope, smart)) return;
  // An RFC 7592 update is a read, a change and a write of the whole record: a member that still
  // repeats the client's current scopes is the echo of the read, and the other one is the change.
  if (currentScopes && sameScopes(smart, currentScopes)) {
    properties.smart_scopes = fromScope;
    return;
  }
  if (currentScopes && sameScopes(fromScope, currentScopes)) return;
  const onlyScope = fromScope.filter((s) => !smart.includes(s));
  const onlySmart = [...new Set(smart as string[])].filter((s) => !fromScope.includes(s));
  const parts = [
    ...(onlyScope.length ? [`only in scope: ${onlyScope.join(' ')}`] : []),
    ...(onlySmart.length ? [`only in smart_scopes: ${onlySmart.join(' ')}`] : []),
  ];
  fail(
    `scope and smart_scopes name different scopes (${parts.join('; ')}); send the client's scopes in one of them, or the same scopes in both`,
  );
}

export interface ReadingContext {
  /** What the registration policy allows, named when a kind cannot be inferred. */
  allowedKinds?: string;
  /** RFC 7592 updates: the client's scopes before this update. */
  currentScopes?: readonly string[];
}

/**
 * Rewrites `properties` in place (see above); refuses what it cannot read with RFC 7591
 * `invalid_client_metadata`.
 */
export function readStandardMetadata(properties: Record<string, unknown>, context: ReadingContext = {}): StandardMetadataReading {
  adoptScopeMember(properties, context.currentScopes);
  if (properties.smart_client_kind !== undefined) return {};
  const inferred = inferKind(properties);
  if ('problem' in inferred) fail(context.allowedKinds ? `${inferred.problem} (${context.allowedKinds})` : inferred.problem);
  properties.smart_client_kind = inferred.kind;
  return { inferredKindBasis: inferred.basis };
}
