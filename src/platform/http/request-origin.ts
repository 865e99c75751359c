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
  // For a path-only request target (almost all) whether a URL can be made depends on the origin
  // only (any path parses after it), and a server sees few origins: the answer is kept per origin
  // instead of parsing every request's URL. Other targets (`*`, an absolute URL) are parsed whole.
  const valid = new Map<string, boolean>();
  const originIsValid = (origin: string) => {
    let ok = valid.get(origin);
    if (ok === undefined) {
      ok = URL.canParse(`${origin}/`);
      if (valid.size >= 1000) valid.clear();
      valid.set(origin, ok);
    }
    return ok;
  };
  return function validOrigin(ctx: Context, next: Next): Promise<void> {
    const protocol = ctx.protocol;
    const ok =
      (protocol === 'http' || protocol === 'https') &&
      (ctx.originalUrl.startsWith('/') ? originIsValid(`${protocol}://${ctx.host}`) : URL.canParse(ctx.href));
    if (ok) return next();
    return respondWithError(
      ctx,
      new PageError(400, 'invalid_request', 'The Host or X-Forwarded-Proto/X-Forwarded-Host header of this request is not valid.'),
    );
  };
}
