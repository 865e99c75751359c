import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { FhirError } from '../../domain/fhir/errors.js';
import { ScimError } from '../../domain/scim/errors.js';
import { isRedisOutage, STORE_RETRY_AFTER_SECONDS } from '../redis/outage.js';
import { PageError, sendErrorPage } from './error-page.js';
import { sendOperationOutcome } from './fhir.js';
import { OAuthError, sendOAuthError } from './oauth-error.js';
import { sendScimError } from './scim.js';
import { requestState } from './request-state.js';

declare module './request-state.js' {
  interface RequestState {
    /** The error behind oidc-provider's generic server_error answer (its `server_error` event, app/provider.ts). */
    serverError?: unknown;
  }
}

/**
 * The generic error boundary, for everything outside the APIs' own boundaries and oidc-provider's
 * routes: each error in the wire format of its endpoint (oauth-error.ts, scim.ts, fhir.ts), or
 * for a person in a browser, an HTML page (error-page.ts).
 */

/** Paths whose callers are programs: they always get JSON errors, whatever they `Accept`. */
const API_PATHS = [
  /^\/token$/,
  /^\/introspect$/,
  /^\/revoke$/,
  /^\/register(\/|$)/,
  /^\/userinfo$/,
  /^\/\.well-known\//,
  /^\/metrics$/,
  /^\/(healthz|readyz)$/,
  /^\/api\//,
  /^\/scim\//,
];

export function isApiRequest(ctx: Context): boolean {
  if (API_PATHS.some((re) => re.test(ctx.path))) return true;
  return ctx.accepts('html', 'json') !== 'html';
}

/** Answers `err` for whoever asked: OAuth JSON for a program, an HTML page for a person. */
export async function respondWithError(ctx: Context, err: PageError): Promise<void> {
  if (isApiRequest(ctx)) sendOAuthError(ctx, err);
  else await sendErrorPage(ctx, err);
}

const UNAVAILABLE = 'The service cannot reach its data store. Try again shortly.';

/**
 * 503 + Retry-After because the store cannot answer, in the wire format of the endpoint: a SCIM
 * error under /scim/, an OperationOutcome under /fhir/, OAuth error JSON for programs, an HTML
 * page for people.
 */
export async function respondStoreUnavailable(
  ctx: Context,
  opts: { description?: string; retryAfterSeconds?: number } = {},
): Promise<void> {
  const description = opts.description ?? UNAVAILABLE;
  ctx.set('Retry-After', String(opts.retryAfterSeconds ?? STORE_RETRY_AFTER_SECONDS));
  if (ctx.path.startsWith('/scim/')) sendScimError(ctx, new ScimError(503, undefined, description));
  else if (ctx.path.startsWith('/fhir/')) sendOperationOutcome(ctx, new FhirError(503, 'transient', description));
  else await respondWithError(ctx, new PageError(503, 'temporarily_unavailable', description));
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
        await respondWithError(ctx, new PageError(404, 'not_found', `Nothing is served at ${ctx.method} ${ctx.path}.`));
      } else if (ctx.status >= 500 && ctx.status !== 503 && (!redisReady() || isRedisOutage(requestState(ctx).serverError))) {
        // oidc-provider turns a failed store call into server_error ("oops! something went
        // wrong"; its error is kept in the request state by app/provider.ts); when the cause is the
        // store being down, hung or failing over, say so: clients should retry later rather than
        // treat it as a bug.
        await respondStoreUnavailable(ctx);
      }
    } catch (err) {
      if (err instanceof OAuthError) {
        // An OAuth API's own error: its callers are programs.
        sendOAuthError(ctx, err);
        return;
      }
      if (err instanceof PageError) {
        await respondWithError(ctx, err);
        return;
      }
      const status = (err as { status?: number; expose?: boolean }).status;
      const expose = (err as { expose?: boolean }).expose;
      if (status && status >= 400 && status < 500 && expose) {
        // Koa/http-errors thrown deliberately (e.g. body too large); their message is safe.
        await respondWithError(
          ctx,
          new PageError(status, status === 413 ? 'request_too_large' : 'invalid_request', (err as Error).message),
        );
        return;
      }
      if (isRedisOutage(err) || !redisReady()) {
        logger.warn({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, 'store unavailable');
        await respondStoreUnavailable(ctx);
        return;
      }
      logger.error({ err, requestId: ctx.state.requestId }, 'unhandled error');
      await respondWithError(ctx, new PageError(500, 'server_error', 'An unexpected error occurred.'));
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
