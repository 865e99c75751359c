import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { renderView } from './views.js';
import { isRedisOutage } from '../redis/outage.js';

/** How long a client should wait before retrying a 503 caused by the store. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** Paths whose callers are programs: they always get JSON errors, whatever they `Accept`. */
const API_PATHS = [/^\/token$/, /^\/introspect$/, /^\/revoke$/, /^\/register(\/|$)/, /^\/userinfo$/, /^\/\.well-known\//, /^\/metrics$/, /^\/(healthz|readyz)$/, /^\/api\//, /^\/scim\//];

export function isApiRequest(ctx: Context): boolean {
  if (API_PATHS.some((re) => re.test(ctx.path))) return true;
  return ctx.accepts('html', 'json') !== 'html';
}

/** An error a handler throws on purpose: status, OAuth-style code and a safe description. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

const TITLES: Record<number, string> = {
  400: 'The request could not be understood',
  401: 'Sign-in required',
  403: 'Not allowed',
  404: 'Page not found',
  405: 'Method not allowed',
  413: 'Request too large',
  429: 'Too many requests',
  503: 'Service temporarily unavailable',
};

export async function respondWithError(ctx: Context, status: number, error: string, description: string): Promise<void> {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (isApiRequest(ctx)) {
    ctx.body = { error, error_description: description };
    return;
  }
  ctx.type = 'html';
  ctx.body = await renderView('error', {
    title: TITLES[status] ?? 'Something went wrong',
    message: description,
    code: error,
    requestId: ctx.state.requestId as string | undefined,
  });
}

const UNAVAILABLE = 'The service cannot reach its data store. Try again shortly.';

/**
 * 503 + Retry-After because the store cannot answer, in the wire format of the endpoint: a SCIM
 * error under /scim/, an OperationOutcome under /fhir/, OAuth error JSON for programs, an HTML
 * page for people.
 */
export async function respondStoreUnavailable(ctx: Context, opts: { description?: string; retryAfterSeconds?: number } = {}): Promise<void> {
  const description = opts.description ?? UNAVAILABLE;
  ctx.set('Retry-After', String(opts.retryAfterSeconds ?? STORE_RETRY_AFTER_SECONDS));
  if (ctx.path.startsWith('/scim/')) {
    ctx.status = 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503', detail: description });
    ctx.type = 'application/scim+json; charset=utf-8';
    return;
  }
  if (ctx.path.startsWith('/fhir/')) {
    ctx.status = 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: description }] });
    ctx.type = 'application/fhir+json; charset=utf-8';
    return;
  }
  await respondWithError(ctx, 503, 'temporarily_unavailable', description);
}

/**
 * Outermost error boundary for everything that is not an oidc-provider route (those render
 * through `renderError`). Unknown routes answer 404 instead of falling off the end; unexpected
 * exceptions become a generic 500 whose detail only goes to the log.
 */
export function errorBoundary(logger: Logger, redisReady: () => boolean) {
  return async function errors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        await respondWithError(ctx, 404, 'not_found', `Nothing is served at ${ctx.method} ${ctx.path}.`);
      } else if (ctx.status >= 500 && ctx.status !== 503 && (!redisReady() || isRedisOutage(ctx.state.serverError))) {
        // oidc-provider turns a failed store call into server_error ("oops! something went
        // wrong"; its error is kept in ctx.state.serverError by app.ts); when the cause is the
        // store being down, hung or failing over, say so: clients should retry later rather than
        // treat it as a bug.
        await respondStoreUnavailable(ctx);
      }
    } catch (err) {
      if (err instanceof HttpError) {
        await respondWithError(ctx, err.status, err.error, err.description);
        return;
      }
      const status = (err as { status?: number; expose?: boolean }).status;
      const expose = (err as { expose?: boolean }).expose;
      if (status && status >= 400 && status < 500 && expose) {
        // Koa/http-errors thrown deliberately (e.g. body too large); their message is safe.
        await respondWithError(ctx, status, status === 413 ? 'request_too_large' : 'invalid_request', (err as Error).message);
        return;
      }
      if (isRedisOutage(err) || !redisReady()) {
        logger.warn({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, 'store unavailable');
        await respondStoreUnavailable(ctx);
        return;
      }
      logger.error({ err, requestId: ctx.state.requestId }, 'unhandled error');
      await respondWithError(ctx, 500, 'server_error', 'An unexpected error occurred.');
    }
  };
}

/** Fails fast with 503 while Redis is down instead of letting requests hang or half-run. */
export function requireRedis(redisReady: () => boolean, exempt: RegExp) {
  return async function redisGate(ctx: Context, next: Next): Promise<void> {
    if (!exempt.test(ctx.path) && !redisReady()) {
      await respondStoreUnavailable(ctx);
      return;
    }
    await next();
  };
}
