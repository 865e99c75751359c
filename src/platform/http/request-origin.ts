import type { Context, Next } from 'koa';
import { respondWithError } from './errors.js';
import { PageError } from './error-page.js';

/**
 * Refuses a request whose Host (or, behind a proxy, X-Forwarded-Proto / X-Forwarded-Host) does not
 * make a URL. oidc-provider builds its endpoint URLs from `ctx.href`, and `new URL` throws on such
 * input deep inside a route (a 500 from `/logout` with `X-Forwarded-Proto: ;`); a bad header is the
 * client's error, so it gets a 400 before any route runs.
 */
export function requireValidOrigin() {
  return async function validOrigin(ctx: Context, next: Next): Promise<void> {
    const protocol = ctx.protocol;
    if ((protocol !== 'http' && protocol !== 'https') || !URL.canParse(ctx.href)) {
      await respondWithError(
        ctx,
        new PageError(400, 'invalid_request', 'The Host or X-Forwarded-Proto/X-Forwarded-Host header of this request is not valid.'),
      );
      return;
    }
    await next();
  };
}
