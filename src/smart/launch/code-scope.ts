import type { KoaContextWithOIDC } from 'oidc-provider';
import { formatScope, parseScope } from '../../domain/scopes/scope-syntax.js';
import { scopeAllows } from '../../domain/scopes/scopes.js';

/**
 * oidc-provider puts into an authorization code only the granted scopes that appear, letter for
 * letter, in the request's `scope`. Downscoping grants other spellings of what was asked:
 * `patient/Observation.rs` for a request of `patient/*.rs` when the app may only read
 * Observations, `patient/*.read` echoed for `patient/*.read` narrowed to `patient/Observation.read`.
 * Just before the code is made (the `authorization.accepted` event, emitted synchronously), the
 * request's scope is widened by exactly those granted scopes that some requested scope covers, so
 * the code, and the tokens made from it, carry what the user approved and never more than asked.
 */

/** True when `wider` (a requested scope) permits all of `narrower` (a granted one). */
function covers(wider: string, narrower: string): boolean {
  const w = parseScope(wider);
  const n = parseScope(narrower);
  if (w.kind !== 'resource' || n.kind !== 'resource') return false;
  const common = scopeAllows(w, n);
  return common !== undefined && formatScope(common, 'v2') === formatScope(n, 'v2');
}

/** The requested scopes plus every granted scope a requested one covers, in request order first. */
export function scopeWithGrantedNarrowings(requested: readonly string[], granted: readonly string[]): string[] {
  const out = new Set(requested);
  for (const g of granted) {
    if (!out.has(g) && requested.some((r) => covers(r, g))) out.add(g);
  }
  return [...out];
}

export function includeGrantedNarrowings(ctx: KoaContextWithOIDC): void {
  const { grant, params, resourceServers } = ctx.oidc;
  const scope = (params as { scope?: unknown } | undefined)?.scope;
  if (!grant || typeof scope !== 'string') return;
  const requested = scope.split(' ').filter(Boolean);
  const granted = Object.keys(resourceServers ?? {}).flatMap((resource) => grant.getResourceScope(resource).split(' ').filter(Boolean));
  const widened = scopeWithGrantedNarrowings(requested, granted);
  if (widened.length !== requested.length) (params as { scope?: string }).scope = widened.join(' ');
}
