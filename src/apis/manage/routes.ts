import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { JWKS } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import type { ConsentService } from '../../records/consent/consent-service.js';
import type { StoredConsent } from '../../records/consent/consent-store.js';
import { FHIR_ID } from '../../domain/fhir/references.js';
import { HttpError } from '../../platform/http/errors.js';
import { renderView } from '../../platform/http/views.js';
import { readForm } from '../../smart/interaction/pages/form.js';
import { refuseCrossSite } from '../../smart/interaction/pages/interaction-http.js';
import { ROUTES } from '../../oauth/paths.js';
import { longDate } from '../../smart/interaction/pages/client-display.js';
import { choicesOf } from '../../smart/interaction/consent/consent-gate.js';
import { describeScope } from '../../smart/interaction/consent/scope-descriptions.js';
import { userContextOf, type UserContext } from '../../smart/interaction/facts/user-context.js';
import type { GrantUsage } from '../../smart/launch/grant-usage.js';
import type { UserStore } from '../../records/directory/user-store.js';
import { consentsToManage, managerOf, mayManage, type Manager } from './consent-list.js';
import { inProcessClient } from './in-process-http.js';
import { MANAGE_CLIENT_ID, MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { ManageSessions, type ManageSession } from './manage-session.js';
import { SignInError, beginSignIn, completeSignIn } from './sign-in.js';
import type { AuditStore } from '../../records/audit/store.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import { disclosureBundle, disclosureCsv, disclosureEvents, disclosureRows } from '../../records/audit/disclosure-report.js';
import { trailAccessed } from '../../records/audit/trail-events.js';

/**
 * The management page (`management_endpoint`): a signed-in person sees every app with access to
 * their record, or to the records of the patients they act for, or that they allowed themselves,
 * and withdraws one. Withdrawing ends the Consent and every grant tied to it at once: the app's
 * access and refresh tokens introspect as inactive and refreshes fail.
 *
 *   GET  /manage                              the list (or off to sign in first)
 *   GET  /manage/callback                     end of the sign-in (authorization code)
 *   POST /manage/consents/:id/withdraw        withdraw one (form with CSRF token)
 *   POST /manage/logout                       end this page's session and the sign-in session
 *   GET  /manage/signed-out                   where sign-out comes back to
 */

export interface ManageRouteDeps {
  config: Config;
  provider: Provider;
  consents: Pick<ConsentService, 'withdraw' | 'store'>;
  users: Pick<UserStore, 'get'>;
  usage: Pick<GrantUsage, 'lastUsed'>;
  jwks: JWKS;
  cookieKeys: readonly string[];
  /** Registers the internal client when it is missing (first use on a fresh store). */
  ensureClient: () => Promise<void>;
  logger?: Logger;
  /**
   * The audit trail, for "Who accessed my record" (/manage/disclosures): its reader, and the
   * trail itself, where each view or download is recorded before any of it is shown.
   */
  audit?: { store: AuditStore; trail: Pick<AuditTrail, 'record'> };
}

const TITLE = 'Apps with access to health records';
const DISCLOSURES_PATH = `${MANAGE_PATHS.page}/disclosures`;
const SESSION_ENDED = 'Your session on this page has ended. Open the page again to sign in.';

interface Row {
  id: string;
  app: string;
  patient: string;
  decidedBy: string;
  scopes: string[];
  since: { iso: string; text: string };
  until: { iso: string; text: string };
  lastUsed: { iso: string; text: string } | undefined;
}

function when(epochMs: number): { iso: string; text: string } {
  return { iso: new Date(epochMs).toISOString(), text: longDate(epochMs) };
}

async function appName(provider: Provider, clientId: string): Promise<string> {
  const client = await provider.Client.find(clientId).catch(() => undefined);
  return client?.clientName ?? `An app registered as ${clientId}`;
}

function patientName(user: UserContext, patientId: string): { name: string; self: boolean } {
  if (patientId === user.ownPatient) return { name: 'your own record', self: true };
  const proxy = user.proxies.find((p) => p.id === patientId);
  return { name: proxy ? proxy.display : `Patient ${patientId}`, self: false };
}

async function rowOf(deps: ManageRouteDeps, user: UserContext, manager: Manager, c: StoredConsent): Promise<Row> {
  const patient = patientName(user, c.patientId);
  const reader = { self: patient.self, ...(patient.self ? {} : { patientName: patient.name }) };
  // What the person chose; identity and launch scopes only when there is nothing else to show.
  const choices = choicesOf(c.scopes);
  const shown = choices.length ? choices : c.scopes;
  const grants = await deps.consents.store.grantsOf(c.resource.id);
  const lastUsed = grants.length ? await deps.usage.lastUsed(grants) : undefined;
  const start = Date.parse(c.resource.provision?.period?.start ?? c.resource.dateTime);
  const decider = c.resource.performer[0];
  return {
    id: c.resource.id,
    app: await appName(deps.provider, c.clientId),
    patient: patient.name,
    decidedBy: c.performer === manager.performer ? 'you' : (decider?.display ?? c.performer),
    scopes: shown.map((s) => describeScope(s, reader)),
    since: when(start),
    until: when(c.end ?? start),
    lastUsed: lastUsed === undefined ? undefined : when(lastUsed),
  };
}

export function manageRoutes(deps: ManageRouteDeps): Router {
  const { config, provider } = deps;
  const sessions = new ManageSessions({
    provider,
    keys: deps.cookieKeys,
    secure: new URL(config.issuer).protocol === 'https:',
    sessionSeconds: config.ttl.session,
  });
  const send = inProcessClient(() => provider.callback(), new URL(config.issuer).host);
  let clientReady: Promise<void> | undefined;
  const ensureClient = () => {
    clientReady ??= deps.ensureClient().catch((err: unknown) => {
      clientReady = undefined;
      throw err;
    });
    return clientReady;
  };
  const router = new Router();

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  /** The signed-in user behind a management session, or undefined when the account is gone. */
  async function userOf(session: ManageSession): Promise<UserContext | undefined> {
    const user = await deps.users.get(session.sub);
    if (!user || user.active === false) return undefined;
    return userContextOf(user, config.fhirServers[0]!.base, undefined, { staffRoles: config.hcs.staffRoles });
  }

  async function signIn(ctx: Context, returnTo: string = MANAGE_PATHS.page): Promise<void> {
    await ensureClient();
    const { pending, authorizePath } = beginSignIn(config.issuer);
    sessions.savePending(ctx, { ...pending, returnTo });
    ctx.status = 303;
    ctx.redirect(authorizePath);
  }

  async function page(ctx: Context, status: number, data: Record<string, unknown>): Promise<void> {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = await renderView('manage', { title: TITLE, rows: [], notice: '', csrf: '', userName: '', signedIn: true, ...data });
  }

  router.get(MANAGE_PATHS.page, async (ctx) => {
    const session = await sessions.current(ctx);
    const user = session && (await userOf(session));
    if (!session || !user) {
      if (session) sessions.end(ctx);
      await signIn(ctx);
      return;
    }
    const manager = managerOf(user);
    const now = Date.now();
    const consents = await consentsToManage(deps.consents.store, manager, now);
    const rows = await Promise.all(consents.map((c) => rowOf(deps, user, manager, c)));
    let notice = '';
    const withdrawn = ctx.query.withdrawn;
    if (typeof withdrawn === 'string' && FHIR_ID.test(withdrawn)) {
      const gone = await deps.consents.store.get(withdrawn);
      if (gone && gone.status === 'inactive' && mayManage(manager, gone)) {
        notice = `Access withdrawn: ${await appName(provider, gone.clientId)} can no longer use ${patientName(user, gone.patientId).name}.`;
      }
    }
    await page(ctx, 200, { rows, notice, csrf: sessions.csrfToken(session), userName: user.displayName ?? '' });
  });

  router.get(MANAGE_PATHS.callback, async (ctx) => {
    const pending = sessions.takePending(ctx);
    const { code, state, error } = ctx.query;
    if (typeof error === 'string') {
      // Cancelled sign-in and the like: nothing to do here but offer to start again.
      await page(ctx, 400, { signedIn: false, notice: 'You did not sign in. Open the page again to try once more.' });
      return;
    }
    if (!pending || typeof state !== 'string' || state !== pending.state || typeof code !== 'string' || !code) {
      throw new HttpError(400, 'invalid_request', 'This sign-in link has expired or was already used. Open the page again to sign in.');
    }
    let signedIn;
    try {
      signedIn = await completeSignIn({ issuer: config.issuer, jwks: deps.jwks, send }, pending, code);
    } catch (err) {
      if (!(err instanceof SignInError)) throw err;
      deps.logger?.warn({ err: { message: err.message } }, 'management sign-in failed');
      throw new HttpError(400, 'invalid_request', 'The sign-in could not be completed. Open the page again to sign in.');
    }
    sessions.start(ctx, signedIn.sub);
    ctx.status = 303;
    // Only a page of this app, never a URL from the request (no open redirect).
    ctx.redirect(pending.returnTo === DISCLOSURES_PATH ? DISCLOSURES_PATH : MANAGE_PATHS.page);
  });

  router.post(`${MANAGE_PATHS.page}/consents/:id/withdraw`, async (ctx) => {
    refuseCrossSite(ctx);
    const session = await sessions.current(ctx);
    if (!session) throw new HttpError(401, 'login_required', SESSION_ENDED);
    const form = await readForm(ctx);
    if (!sessions.verifyCsrf(session, form.get('csrf'))) {
      throw new HttpError(403, 'invalid_csrf', 'The form could not be verified: it may be out of date. Go back, reload the page and try again.');
    }
    const user = await userOf(session);
    if (!user) throw new HttpError(401, 'login_required', SESSION_ENDED);
    const manager = managerOf(user);
    const id = ctx.params.id ?? '';
    const consent = FHIR_ID.test(id) ? await deps.consents.store.get(id) : undefined;
    // Someone else's Consent looks exactly like one that does not exist.
    if (!consent || !mayManage(manager, consent) || consent.status === 'rejected' || !manager.performer) {
      throw new HttpError(404, 'not_found', 'There is no such app access to withdraw. Go back to the list and reload it.');
    }
    await deps.consents.withdraw(id, { reference: manager.performer, ...(user.displayName ? { display: user.displayName } : {}) });
    ctx.status = 303;
    ctx.redirect(`${MANAGE_PATHS.page}?withdrawn=${encodeURIComponent(id)}`);
  });

  router.post(`${MANAGE_PATHS.page}/logout`, async (ctx) => {
    refuseCrossSite(ctx);
    const session = await sessions.current(ctx);
    const form = await readForm(ctx);
    if (session && !sessions.verifyCsrf(session, form.get('csrf'))) {
      throw new HttpError(403, 'invalid_csrf', 'The form could not be verified: it may be out of date. Go back, reload the page and try again.');
    }
    sessions.end(ctx);
    // This server's sign-out page ends the sign-in session too, then comes back here.
    const query = new URLSearchParams({ client_id: MANAGE_CLIENT_ID, post_logout_redirect_uri: `${config.issuer}${MANAGE_PATHS.signedOut}` });
    ctx.status = 303;
    ctx.redirect(`${ROUTES.end_session}?${query.toString()}`);
  });

  /*
   * "Who accessed my record": the accounting of disclosures of the records the signed-in person
   * looks after (their own, and those of the patients they act for), as a page, a CSV and a FHIR
   * Bundle. The `patient` query picks one of those records; any other id is refused like a
   * record that does not exist. Each view or download of a record is itself recorded in the
   * trail (IHE BALP Query) before the trail is read; when it cannot be, nothing is shown (503).
   */
  const audit = deps.audit;
  if (audit) {
    const policy = { showStaffNames: config.audit.disclosureShowStaffNames };

    /** Who is asking and for which record; undefined when no one is signed in any more. */
    const readerOf = async (ctx: Context) => {
      const session = await sessions.current(ctx);
      const user = session && (await userOf(session));
      if (!session || !user) {
        if (session) sessions.end(ctx);
        return undefined;
      }
      const manager = managerOf(user);
      const asked = typeof ctx.query.patient === 'string' ? ctx.query.patient : undefined;
      if (asked !== undefined && !manager.patients.includes(asked)) throw new HttpError(404, 'not_found', 'There is no such record among those you look after.');
      return { accountId: session.sub, user, manager, patientId: asked ?? manager.patients[0] };
    };

    /** Records this view or download, or refuses it: the trail is never read unrecorded. */
    const recordView = async (ctx: Context, reader: { accountId: string; user: UserContext }, patientId: string, format: 'page' | 'csv' | 'json') => {
      const user = { accountId: reader.accountId, ...(reader.user.fhirUser ? { fhirUser: reader.user.fhirUser } : {}), ...(reader.user.displayName ? { name: reader.user.displayName } : {}), ...(ctx.ip ? { ip: ctx.ip } : {}) };
      try {
        await audit.trail.record(trailAccessed(config.issuer, { reader: { client: { clientId: MANAGE_CLIENT_ID }, user }, access: { kind: 'disclosures', patient: patientId, format } }));
      } catch (err) {
        deps.logger?.error({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, 'a view of the accounting of disclosures could not be audited: refused');
        ctx.set('Retry-After', '5');
        throw new HttpError(503, 'temporarily_unavailable', 'Who accessed your record cannot be shown right now, because showing it could not be recorded. Nothing was shown. Try again in a few minutes.');
      }
    };

    /** The report of one record, once its reading is recorded. */
    const reportFor = async (ctx: Context, reader: { accountId: string; user: UserContext }, patientId: string, format: 'page' | 'csv' | 'json') => {
      await recordView(ctx, reader, patientId, format);
      return disclosureEvents(audit.store, `Patient/${patientId}`);
    };

    router.get(DISCLOSURES_PATH, async (ctx) => {
      const reader = await readerOf(ctx);
      if (!reader) return signIn(ctx, DISCLOSURES_PATH);
      const { user, manager, patientId } = reader;
      const { events, total } = patientId ? await reportFor(ctx, reader, patientId, 'page') : { events: [], total: 0 };
      const rows = patientId ? disclosureRows(events, `Patient/${patientId}`, policy).map((r) => ({ ...r, when: longDate(Date.parse(r.last)) })) : [];
      const records = manager.patients.map((id) => ({ id, name: patientName(user, id).name, current: id === patientId }));
      const title = 'Who accessed my record';
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = await renderView('disclosures', {
        title,
        userName: user.displayName ?? '',
        patientId: patientId ?? '',
        recordName: patientId ? patientName(user, patientId).name : 'your record',
        records,
        rows,
        total,
        shown: events.length,
        truncated: total > events.length,
      });
    });

    /** A download of the signed-in person's report of one record. */
    const download = async (ctx: Context, format: 'csv' | 'json') => {
      const reader = await readerOf(ctx);
      if (!reader) throw new HttpError(401, 'login_required', SESSION_ENDED);
      const { patientId } = reader;
      if (!patientId) throw new HttpError(404, 'not_found', 'No patient record is linked to your account.');
      return { patientId, events: (await reportFor(ctx, reader, patientId, format)).events };
    };

    router.get(`${MANAGE_PATHS.page}/disclosures.csv`, async (ctx) => {
      const { patientId, events } = await download(ctx, 'csv');
      ctx.type = 'text/csv; charset=utf-8';
      ctx.set('Content-Disposition', `attachment; filename="disclosures-${patientId}.csv"`);
      ctx.body = disclosureCsv(disclosureRows(events, `Patient/${patientId}`, policy));
    });

    router.get(`${MANAGE_PATHS.page}/disclosures.json`, async (ctx) => {
      const { patientId, events } = await download(ctx, 'json');
      ctx.type = 'application/fhir+json; charset=utf-8';
      ctx.set('Content-Disposition', `attachment; filename="disclosures-${patientId}.json"`);
      ctx.body = JSON.stringify(disclosureBundle(events, `Patient/${patientId}`, policy, config.issuer));
    });
  }

  router.get(MANAGE_PATHS.signedOut, async (ctx) => {
    sessions.end(ctx);
    await page(ctx, 200, { signedIn: false, notice: 'You are signed out.' });
  });

  return router;
}
