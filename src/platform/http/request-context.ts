import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { Metrics } from '../ops/metrics.js';
import { requestState } from './request-state.js';

declare module './request-state.js' {
  interface RequestState {
    /** The metrics label of a route our own routers answer outside their pattern (e.g. `introspection`). */
    routeLabel?: string;
  }
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

/** The label for metrics: oidc-provider's route name, our router's pattern, or "unmatched". */
function routeLabel(ctx: Context): string {
  const oidcRoute = (ctx as Context & { oidc?: { route?: string } }).oidc?.route;
  if (oidcRoute) return oidcRoute;
  const matched = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  if (typeof matched === 'string') return matched;
  return requestState(ctx).routeLabel ?? 'unmatched';
}

/**
 * Gives every request an id (honouring a well-formed upstream `X-Request-Id`), logs one line per
 * request and records metrics. The logged path never includes the query string: authorization
 * codes, tokens and `state` travel there.
 */
export function requestContext(logger: Logger, metrics: Metrics) {
  return async function requestLog(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    const incoming = ctx.get('X-Request-Id');
    const requestId = SAFE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel(ctx);
      metrics.requests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.latency.observe({ method: ctx.method, route }, seconds);
      const body = ctx.body as { error?: unknown } | undefined;
      if (ctx.status >= 400 && body && typeof body === 'object' && typeof body.error === 'string') {
        metrics.oauthErrors.inc({ route, error: body.error });
      }
      if (route !== '/healthz' && route !== '/metrics') {
        logger.info(
          { requestId, method: ctx.method, path: ctx.path, route, status: ctx.status, ms: Math.round(seconds * 1e4) / 10, ip: ctx.ip },
          'request',
        );
      }
    }
  };
}
