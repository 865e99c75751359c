import Router from '@koa/router';
import { MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { manageContext, DISCLOSURES_PATH, SECURITY_PATHS, type ManageRouteDeps, type ManageState } from './context.js';
import { finishSignIn, signOut, signedIn, signedInOrSignIn, signedOutPage, verifiedForm } from './session-steps.js';
import { listAccess, withdrawAccess } from './access.js';
import { downloadBundle, downloadCsv, pickRecord, recordView, requireRecord, showDisclosures } from './disclosures.js';
import { recentSignIn } from './recent-sign-in.js';
import { showSecurity } from './security-page.js';
import { beginAuthenticatorApp, beginPasskey, confirmAuthenticatorApp, confirmPasskey } from './security-enrol.js';
import { makeRecoveryCodes, removeFactor } from './security-changes.js';

/**
 * The management page (`management_endpoint`), each route a pipeline of named steps:
 *
 *   GET  /manage                          signed in (or off to sign in) → the list of apps with access
 *   GET  /manage/callback                 the end of the page's own sign-in (authorization code)
 *   POST /manage/consents/:id/withdraw    a verified form → signed in → withdraw one
 *   POST /manage/logout                   a verified form → sign out (page and sign-in session)
 *   GET  /manage/disclosures              signed in → pick a record → record the view → "Who accessed my record"
 *   GET  /manage/disclosures.csv|.json    the same as downloads
 *   GET  /manage/security                 signed in (or off to sign in) → the person's second factors
 *   GET  /manage/security/authenticator-app   … → a recent sign-in (or off to sign in again) → a new secret as a QR code
 *   POST /manage/security/authenticator-app   a verified form → signed in → a recent sign-in → its first code adds it
 *   GET  /manage/security/passkey         … → a recent sign-in → WebAuthn registration options bound to this session
 *   POST /manage/security/passkey         a verified form → signed in → a recent sign-in → the registration adds it
 *   POST /manage/security/factors/:id/remove  a verified form → signed in → a recent sign-in → removed (not the last one the policy needs)
 *   POST /manage/security/recovery-codes  a verified form → signed in → a recent sign-in → new codes, shown once
 *   GET  /manage/signed-out               where sign-out comes back to
 */
export function manageRoutes(deps: ManageRouteDeps): Router<ManageState> {
  const m = manageContext(deps);
  const router = new Router<ManageState>();
  router.use(async function noStore(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get(MANAGE_PATHS.page, signedInOrSignIn(m, MANAGE_PATHS.page), listAccess(m));
  router.get(MANAGE_PATHS.callback, finishSignIn(m));
  router.post(`${MANAGE_PATHS.page}/consents/:id/withdraw`, verifiedForm(m, 'required'), signedIn(m), withdrawAccess(m));
  router.post(`${MANAGE_PATHS.page}/logout`, verifiedForm(m, 'optional'), signOut(m));
  const audit = deps.audit;
  if (audit) {
    router.get(
      DISCLOSURES_PATH,
      signedInOrSignIn(m, DISCLOSURES_PATH),
      pickRecord(),
      recordView(m, audit, 'page'),
      showDisclosures(m, audit),
    );
    router.get(`${DISCLOSURES_PATH}.csv`, signedIn(m), pickRecord(), requireRecord(), recordView(m, audit, 'csv'), downloadCsv(m, audit));
    router.get(
      `${DISCLOSURES_PATH}.json`,
      signedIn(m),
      pickRecord(),
      requireRecord(),
      recordView(m, audit, 'json'),
      downloadBundle(m, audit),
    );
    // Changes to second factors are recorded in the trail: without one, they are not offered.
    const trail = audit.trail;
    const changed = SECURITY_PATHS.page; // where a changing post returns after signing in again
    router.get(SECURITY_PATHS.page, signedInOrSignIn(m, SECURITY_PATHS.page), showSecurity(m));
    router.get(
      SECURITY_PATHS.authenticatorApp,
      signedInOrSignIn(m, SECURITY_PATHS.authenticatorApp),
      recentSignIn(m, SECURITY_PATHS.authenticatorApp),
      beginAuthenticatorApp(m),
    );
    router.post(
      SECURITY_PATHS.authenticatorApp,
      verifiedForm(m, 'required'),
      signedIn(m),
      recentSignIn(m, changed),
      confirmAuthenticatorApp(m, trail),
    );
    router.get(
      SECURITY_PATHS.passkey,
      signedInOrSignIn(m, SECURITY_PATHS.passkey),
      recentSignIn(m, SECURITY_PATHS.passkey),
      beginPasskey(m),
    );
    router.post(SECURITY_PATHS.passkey, verifiedForm(m, 'required'), signedIn(m), recentSignIn(m, changed), confirmPasskey(m, trail));
    router.post(
      `${SECURITY_PATHS.page}/factors/:id/remove`,
      verifiedForm(m, 'required'),
      signedIn(m),
      recentSignIn(m, changed),
      removeFactor(m, trail),
    );
    router.post(
      SECURITY_PATHS.recoveryCodes,
      verifiedForm(m, 'required'),
      signedIn(m),
      recentSignIn(m, changed),
      makeRecoveryCodes(m, trail),
    );
  }
  router.get(MANAGE_PATHS.signedOut, signedOutPage(m));
  return router;
}
