import Router from '@koa/router';
import { MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { manageContext, DISCLOSURES_PATH, type ManageRouteDeps, type ManageState } from './context.js';
import { finishSignIn, signOut, signedIn, signedInOrSignIn, signedOutPage, verifiedForm } from './session-steps.js';
import { listAccess, withdrawAccess } from './access.js';
import { downloadBundle, downloadCsv, pickRecord, recordView, requireRecord, showDisclosures } from './disclosures.js';

/**
 * The management page (`management_endpoint`), each route a pipeline of named steps:
 *
 *   GET  /manage                          signed in (or off to sign in) → the list of apps with access
 *   GET  /manage/callback                 the end of the page's own sign-in (authorization code)
 *   POST /manage/consents/:id/withdraw    a verified form → signed in → withdraw one
 *   POST /manage/logout                   a verified form → sign out (page and sign-in session)
 *   GET  /manage/disclosures              signed in → pick a record → record the view → "Who accessed my record"
 *   GET  /manage/disclosures.csv|.json    the same as downloads
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
  }
  router.get(MANAGE_PATHS.signedOut, signedOutPage(m));
  return router;
}
