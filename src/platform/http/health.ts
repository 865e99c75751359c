import Router from '@koa/router';
import type { Context } from 'koa';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { StoreHealth } from '../redis/circuit-breaker.js';
import type { Metrics } from '../ops/metrics.js';
import { MetricsUnavailableError } from '../ops/cluster-metrics.js';
import { STATIC_CSS, STATIC_SCRIPTS } from './views.js';
import { OAuthError, challenge, sendOAuthError } from './oauth-error.js';

/**
 * `/healthz` answers while the process can serve HTTP at all (liveness); `/readyz` also proves a
 * Redis round trip (readiness: take the instance out of the load balancer, don't restart it).
 * `/readyz` answers within READY_TIMEOUT_MS whatever Redis does: a load balancer's probe must not
 * hang on the store it is asking about.
 */
export const READY_TIMEOUT_MS = 250;

/** How `/metrics` is guarded: a bearer token, open (development, or a private network), or off. */
export type MetricsAccess = { token: string } | { open: boolean };

export function metricsAccessFor(settings: { token?: string; open?: boolean }, mode: 'development' | 'production'): MetricsAccess {
  if (settings.token) return { token: settings.token };
  return { open: settings.open ?? mode === 'development' };
}

export function opsRoutes(store: StoreHealth, metrics: Metrics, isShuttingDown: () => boolean, access: MetricsAccess): Router {
  const mayReadMetrics = metricsGuard(access);
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (isShuttingDown()) {
      ctx.status = 503;
      ctx.body = { status: 'shutting_down' };
      return;
    }
    if (store.available() && (await store.ping(READY_TIMEOUT_MS))) {
      ctx.body = { status: 'ready', redis: 'ok' };
    } else {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', redis: 'unreachable' };
    }
  });
  router.get('/metrics', async (ctx) => {
    if (!mayReadMetrics(ctx)) return;
    ctx.set('Cache-Control', 'no-store');
    let text: string;
    try {
      text = await metrics.scrape();
    } catch (err) {
      // A partial total would read as counters going down; the scraper retries at its next interval.
      if (!(err instanceof MetricsUnavailableError)) throw err;
      sendOAuthError(ctx, new OAuthError(503, 'temporarily_unavailable', `metrics unavailable: ${err.message}`));
      return;
    }
    ctx.type = metrics.registry.contentType;
    ctx.body = text;
  });
  router.get('/static/app.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STATIC_CSS;
  });
  for (const [path, script] of STATIC_SCRIPTS) {
    router.get(path, (ctx) => {
      ctx.type = 'text/javascript';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = script;
    });
  }
  return router;
}

/**
 * Refuses a scrape that lacks the configured token (401, with the challenge a scraper expects) and
 * answers 404 where metrics are off, as if the route did not exist. Both sides are hashed before
 * the constant-time compare so the token's length does not leak either.
 */
function metricsGuard(access: MetricsAccess): (ctx: Context) => boolean {
  if ('open' in access) {
    return (ctx) => {
      if (access.open) return true;
      sendOAuthError(
        ctx,
        new OAuthError(404, 'not_found', '/metrics is off: set AUTHZ_METRICS_TOKEN (or AUTHZ_METRICS_OPEN=true on a private network)'),
      );
      return false;
    };
  }
  const expected = sha256(access.token);
  return (ctx) => {
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(ctx.get('authorization'));
    if (match && timingSafeEqual(sha256(match[1]!), expected)) return true;
    sendOAuthError(
      ctx,
      new OAuthError(401, 'invalid_token', 'metrics need the configured bearer token', challenge('Bearer', { realm: 'metrics' })),
    );
    return false;
  };
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
