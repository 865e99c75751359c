import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { WriteScope, type WriteTracker } from '../redis/write-acks.js';
import { isRedisOutage } from '../redis/outage.js';
import { respondStoreUnavailable } from './errors.js';

/**
 * Nothing is answered on the strength of a write Redis may still lose (platform/redis/write-acks.ts).
 *
 * The request runs with its Redis commands tracked. Before the response leaves (Koa sends it
 * after the last middleware returns), two checks:
 *  - a command met a store that cannot take it (READONLY from a demoted master, NOREPLICAS, a
 *    connection dropped by a failover): 503, whatever the handler made of the error;
 *  - with AUTHZ_REDIS_MIN_REPLICAS > 0, a request that wrote waits for one WAIT; fewer replicas
 *    than asked, or a reconnect between its writes and the WAIT: 503.
 * The 503 replaces the whole response: no token, no code in a Location, no session cookie.
 */
export function durableWrites(tracker: WriteTracker | undefined, logger: Logger) {
  return async function confirmWrites(ctx: Context, next: Next): Promise<void> {
    if (!tracker) return next();
    const scope = new WriteScope(tracker);
    let failure: unknown;
    try {
      await tracker.run(scope, next);
    } catch (err) {
      if (!isRedisOutage(err)) throw err;
      failure = err;
    }
    const unavailable = failure ?? scope.unavailable;
    if (unavailable) {
      logger.warn(
        { requestId: ctx.state.requestId, err: { message: (unavailable as Error).message } },
        'request refused: the data store failed it mid-way',
      );
      await refuse(ctx);
      return;
    }
    if (!(await tracker.confirmed(scope))) {
      logger.warn(
        { requestId: ctx.state.requestId, minReplicas: tracker.minReplicas },
        'request refused: its writes were not acknowledged by the replicas',
      );
      await refuse(ctx);
    }
  };
}

async function refuse(ctx: Context): Promise<void> {
  ctx.remove('Location');
  ctx.remove('Set-Cookie');
  // In the endpoint's own wire format (SCIM error, OperationOutcome, OAuth JSON or a page).
  await respondStoreUnavailable(ctx, {
    description: 'The service could not confirm that this request was stored safely. Try again shortly.',
    retryAfterSeconds: 1,
  });
}
