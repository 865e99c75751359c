import type { Context } from 'koa';
import { PageError } from '../../platform/http/error-page.js';
import { readForm } from '../../smart/interaction/pages/form.js';
import { refuseCrossSite } from '../../smart/interaction/pages/interaction-http.js';
import { ROUTES } from '../../oauth/paths.js';
import { MANAGE_CLIENT_ID, MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { managerOf } from './consent-list.js';
import { SignInError, completeSignIn } from './sign-in.js';
import { MANAGE_RETURN_PAGES, SESSION_ENDED, type Manage, type ManageState, type Step } from './context.js';

/**
 * The steps every /manage route is built from: who is signed in, whether a form is really theirs,
 * and the page's own sign-in and sign-out.
 */

const STALE_FORM = 'The form could not be verified: it may be out of date. Go back, reload the page and try again.';

/** Puts the signed-in person into ctx.state; false (and the page's session ended) when there is none. */
async function loadSignedIn(m: Manage, ctx: Context & { state: ManageState }): Promise<boolean> {
  const session = await m.sessions.current(ctx);
  const user = session && (await m.userOf(session));
  if (!session || !user) {
    if (session) m.sessions.end(ctx);
    return false;
  }
  ctx.state.session = session;
  ctx.state.user = user;
  ctx.state.manager = managerOf(user);
  return true;
}

/** A page: someone must be signed in, or is sent to sign in and comes back to `returnTo`. */
export function signedInOrSignIn(m: Manage, returnTo: string): Step {
  return async function signedInOrSignIn(ctx, next) {
    if (!(await loadSignedIn(m, ctx))) return m.signIn(ctx, returnTo);
    await next();
  };
}

/** A download: someone must be signed in, or it is refused (401). */
export function signedIn(m: Manage): Step {
  return async function signedIn(ctx, next) {
    if (!(await loadSignedIn(m, ctx))) throw new PageError(401, 'login_required', SESSION_ENDED);
    await next();
  };
}

/**
 * A form post of this page, from this site, carrying the session's CSRF token. With
 * `session: 'required'` a post without a session is refused (401) before the form is read; with
 * `'optional'` (sign-out) it goes on, and the token is checked only when there is a session.
 */
export function verifiedForm(m: Manage, session: 'required' | 'optional'): Step {
  return async function verifiedForm(ctx, next) {
    refuseCrossSite(ctx);
    const current = await m.sessions.current(ctx);
    if (!current && session === 'required') throw new PageError(401, 'login_required', SESSION_ENDED);
    const form = await readForm(ctx);
    if (current && !m.sessions.verifyCsrf(current, form.get('csrf'))) throw new PageError(403, 'invalid_csrf', STALE_FORM);
    ctx.state.form = form;
    await next();
  };
}

/** The end of the page's sign-in: the authorization code comes back and becomes a session. */
export function finishSignIn(m: Manage): Step {
  return async function finishSignIn(ctx) {
    const pending = m.sessions.takePending(ctx);
    const { code, state, error } = ctx.query;
    if (typeof error === 'string') {
      // Cancelled sign-in and the like: nothing to do here but offer to start again.
      await m.page(ctx, 400, { signedIn: false, notice: 'You did not sign in. Open the page again to try once more.' });
      return;
    }
    if (!pending || typeof state !== 'string' || state !== pending.state || typeof code !== 'string' || !code) {
      throw new PageError(400, 'invalid_request', 'This sign-in link has expired or was already used. Open the page again to sign in.');
    }
    let signedInUser;
    try {
      signedInUser = await completeSignIn({ issuer: m.config.issuer, jwks: m.deps.jwks, send: m.send }, pending, code);
    } catch (err) {
      if (!(err instanceof SignInError)) throw err;
      m.deps.logger?.warn({ err: { message: err.message } }, 'management sign-in failed');
      throw new PageError(400, 'invalid_request', 'The sign-in could not be completed. Open the page again to sign in.');
    }
    m.sessions.start(ctx, signedInUser);
    ctx.status = 303;
    // Only a page of this app, never a URL from the request (no open redirect).
    ctx.redirect(pending.returnTo && MANAGE_RETURN_PAGES.has(pending.returnTo) ? pending.returnTo : MANAGE_PATHS.page);
  };
}

/** Ends this page's session, then this server's sign-out ends the sign-in session and comes back. */
export function signOut(m: Manage): Step {
  return async function signOut(ctx) {
    m.sessions.end(ctx);
    const query = new URLSearchParams({
      client_id: MANAGE_CLIENT_ID,
      post_logout_redirect_uri: `${m.config.issuer}${MANAGE_PATHS.signedOut}`,
    });
    ctx.status = 303;
    ctx.redirect(`${ROUTES.end_session}?${query.toString()}`);
  };
}

export function signedOutPage(m: Manage): Step {
  return async function signedOutPage(ctx) {
    m.sessions.end(ctx);
    await m.page(ctx, 200, { signedIn: false, notice: 'You are signed out.' });
  };
}
