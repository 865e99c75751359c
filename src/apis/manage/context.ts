import type { Context } from 'koa';
import type { RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';
import type { JWKS } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import { renderView } from '../../platform/http/views.js';
import type { ConsentService } from '../../records/consent/consent-service.js';
import type { UserStore } from '../../records/directory/user-store.js';
import type { SecondFactors } from '../../records/directory/factors/second-factors.js';
import type { AuditStore } from '../../records/audit/store.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import type { GrantUsage } from '../../smart/launch/grant-usage.js';
import { userContextOf } from '../../smart/interaction/facts/user-context.js';
import { type UserContext } from '../../smart/interaction/facts/fhir-user.js';
import { MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import type { Manager } from './consent-list.js';
import { inProcessClient, type InProcessRequest, type InProcessResponse } from './in-process-http.js';
import { ManageSessions, type ManageSession } from './manage-session.js';
import { beginSignIn, type Reauthentication } from './sign-in.js';

export interface ManageRouteDeps {
  config: Config;
  provider: Provider;
  consents: Pick<ConsentService, 'withdraw' | 'store'>;
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  /** The person's own second factors (/manage/security). */
  factors: Pick<
    SecondFactors,
    'snapshot' | 'hasAny' | 'beginTotp' | 'confirmTotp' | 'registrationOptions' | 'verifyRegistration' | 'newRecoveryCodes' | 'remove'
  >;
  usage: Pick<GrantUsage, 'lastUsed'>;
  jwks: JWKS;
  cookieKeys: readonly string[];
  /** Registers the internal client when it is missing (first use on a fresh store). */
  ensureClient: () => Promise<void>;
  logger?: Logger;
  /**
   * The audit trail, for "Who accessed my record" (/manage/disclosures): its reader, and the
   * trail itself, where each view or download is recorded before any of it is shown; and where
   * every change to a person's second factors (/manage/security) is recorded before the page is
   * sent (without it, the security pages are not offered).
   */
  audit?: { store: AuditStore; trail: Pick<AuditTrail, 'record'> };
}

/** What the steps of one /manage request learn, in the order they learn it (Koa's ctx.state). */
export interface ManageState {
  session?: ManageSession;
  user?: UserContext;
  manager?: Manager;
  /** The submitted form, once its CSRF token is verified. */
  form?: URLSearchParams;
  /** Set by the request-context step for every request. */
  requestId?: string;
  /** The record a disclosure view is about (absent: the person looks after none). */
  patientId?: string | undefined;
}

/** One named step of a /manage route. */
export type Step = RouterMiddleware<ManageState>;

export const TITLE = 'Apps with access to health records';
export const DISCLOSURES_PATH = `${MANAGE_PATHS.page}/disclosures`;
export const SECURITY_PATHS = {
  page: `${MANAGE_PATHS.page}/security`,
  authenticatorApp: `${MANAGE_PATHS.page}/security/authenticator-app`,
  passkey: `${MANAGE_PATHS.page}/security/passkey`,
  recoveryCodes: `${MANAGE_PATHS.page}/security/recovery-codes`,
} as const;

/** The pages a sign-in may come back to: only these, never a URL from the request (no open redirect). */
export const MANAGE_RETURN_PAGES: ReadonlySet<string> = new Set([
  MANAGE_PATHS.page,
  DISCLOSURES_PATH,
  SECURITY_PATHS.page,
  SECURITY_PATHS.authenticatorApp,
  SECURITY_PATHS.passkey,
]);
export const SESSION_ENDED = 'Your session on this page has ended. Open the page again to sign in.';

/** What every /manage step shares: the dependencies and the page's own session handling. */
export interface Manage {
  deps: ManageRouteDeps;
  config: Config;
  provider: Provider;
  sessions: ManageSessions;
  /** Calls this server's own endpoints in-process (the code exchange of the page's sign-in). */
  send: (req: InProcessRequest) => Promise<InProcessResponse>;
  /** The signed-in user behind a management session, or undefined when the account is gone. */
  userOf(session: ManageSession): Promise<UserContext | undefined>;
  /** Off to this server's sign-in, coming back to `returnTo`; with `reauth`, a sign-in again whatever session there is. */
  signIn(ctx: Context, returnTo?: string, reauth?: Reauthentication): Promise<void>;
  /** The management page itself, with a status and what to show. */
  page(ctx: Context, status: number, data: Record<string, unknown>): Promise<void>;
}

export function manageContext(deps: ManageRouteDeps): Manage {
  const { config, provider } = deps;
  const sessions = new ManageSessions({
    provider,
    keys: deps.cookieKeys,
    secure: new URL(config.issuer).protocol === 'https:',
    sessionSeconds: config.ttl.session,
  });
  let clientReady: Promise<void> | undefined;
  const ensureClient = () => {
    clientReady ??= deps.ensureClient().catch((err: unknown) => {
      clientReady = undefined;
      throw err;
    });
    return clientReady;
  };
  return {
    deps,
    config,
    provider,
    sessions,
    send: inProcessClient(() => provider.callback(), new URL(config.issuer).host),
    async userOf(session) {
      const user = await deps.users.get(session.sub);
      if (!user || user.active === false) return undefined;
      return userContextOf(user, config.fhirServers[0]!.base, undefined, { staffRoles: config.hcs.staffRoles });
    },
    async signIn(ctx, returnTo = MANAGE_PATHS.page, reauth) {
      await ensureClient();
      const { pending, authorizePath } = beginSignIn(config.issuer, Date.now(), reauth);
      sessions.savePending(ctx, { ...pending, returnTo });
      ctx.status = 303;
      ctx.redirect(authorizePath);
    },
    async page(ctx, status, data) {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = await renderView('manage', { title: TITLE, rows: [], notice: '', csrf: '', userName: '', signedIn: true, ...data });
    },
  };
}
