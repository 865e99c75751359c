import Router from '@koa/router';
import type Provider from 'oidc-provider';
import { HttpError } from '../http/errors.js';

/**
 * Interactive sign-in needs the user directory, which this build does not have yet: an
 * authorization request therefore ends on a clear page instead of a login form that cannot work.
 */
export function interactionRoutes(provider: Provider): Router {
  const router = new Router();
  router.all('/interaction/:uid', async (ctx) => {
    try {
      await provider.interactionDetails(ctx.req, ctx.res);
    } catch {
      throw new HttpError(400, 'invalid_request', 'This sign-in link has expired or was already used. Start again from the app.');
    }
    throw new HttpError(503, 'login_unavailable', 'Interactive sign-in is not enabled on this server yet: no user directory is configured.');
  });
  return router;
}
