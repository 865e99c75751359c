import type Router from '@koa/router';
import type { Middleware } from 'koa';

/** The literal start of a route path: up to its first parameter, wildcard or group. */
function literalStart(path: unknown): string {
  if (typeof path !== 'string') return '';
  const end = path.search(/[:(*?{[]/);
  return (end < 0 ? path : path.slice(0, end)).toLowerCase();
}

/**
 * A router's middleware behind a test of where the path starts. A request meets every feature
 * router in the pipeline before oidc-provider's endpoints, and most requests (every /token,
 * /introspect, /authorize) match none of them: a string comparison per route start is cheaper than
 * each router matching its routes and composing its middleware. Routes match case-insensitively
 * in @koa/router, so the test does too. A router with a route that starts with a parameter or a
 * pattern is not gated. Skipping a router whose routes cannot match changes nothing: @koa/router
 * runs a router's `use` middleware only when one of its routes matched.
 */
export function gatedRoutes(router: Router): Middleware {
  const routes = router.routes() as unknown as Middleware;
  // Only routes count: a router runs its `use` middleware only for a path one of its routes matches.
  const starts = [...new Set(router.stack.filter((layer) => layer.methods.length > 0).map((layer) => literalStart(layer.path)))];
  if (starts.some((start) => start === '' || start === '/')) return routes;
  return function gated(ctx, next) {
    const path = ctx.path.toLowerCase();
    for (const start of starts) if (path.startsWith(start)) return routes(ctx, next);
    return next();
  };
}
