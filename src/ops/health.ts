import Router from '@koa/router';
import type { RedisClient } from '../redis/connection.js';
import type { Metrics } from './metrics.js';
import { STATIC_CSS } from '../http/views.js';

/**
 * `/healthz` answers while the process can serve HTTP at all (liveness); `/readyz` also proves a
 * Redis round trip (readiness: take the instance out of the load balancer, don't restart it).
 */
export function opsRoutes(redis: RedisClient, metrics: Metrics, isShuttingDown: () => boolean): Router {
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
    try {
      if (redis.status !== 'ready') throw new Error('not connected');
      await redis.ping();
      ctx.body = { status: 'ready', redis: 'ok' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', redis: 'unreachable' };
    }
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await metrics.registry.metrics();
  });
  router.get('/static/app.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STATIC_CSS;
  });
  return router;
}
