import { levelOfAmr } from '../../domain/authn/assurance.js';
import type { ManageSession } from './manage-session.js';
import type { Manage, Step } from './context.js';

/**
 * Changing second factors (adding one, removing one, new recovery codes) needs a recent sign-in:
 * a browser left signed in on an unlocked screen must not let whoever sits down swap the person's
 * factors for their own. "Recent" is at most RECENT_SIGN_IN_SECONDS since the person last
 * authenticated (the id_token's `auth_time`, not when the page's session began: a session made
 * from an old sign-in session is not recent). A person who has a second factor must have used it
 * in that sign-in, so a stolen password alone cannot add the thief's authenticator or remove the
 * person's own (as at sign-in, second-factor-page.ts). Otherwise they are sent to sign in again
 * (`prompt=login`, and `acr_values` AAL2 when they have a factor), and come back to `returnTo`;
 * nothing is changed meanwhile.
 */

export const RECENT_SIGN_IN_SECONDS = 600;

const nowSeconds = () => Math.floor(Date.now() / 1000);

export function isRecentEnough(session: ManageSession, hasFactor: boolean, now: number = nowSeconds()): boolean {
  if (session.authTime === undefined || now - session.authTime > RECENT_SIGN_IN_SECONDS) return false;
  return !hasFactor || levelOfAmr(session.amr) >= 2;
}

/** Goes on only after a recent enough sign-in; else off to sign in again, back to `returnTo`. */
export function recentSignIn(m: Manage, returnTo: string): Step {
  return async function recentSignIn(ctx, next) {
    const session = ctx.state.session!;
    const hasFactor = await m.deps.factors.hasAny(session.sub);
    if (isRecentEnough(session, hasFactor)) return next();
    await m.signIn(ctx, returnTo, { secondFactor: hasFactor });
  };
}
