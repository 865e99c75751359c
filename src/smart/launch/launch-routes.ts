import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Config } from '../../platform/config/schema.js';
import { readJson, type BodyRules, type JsonProblem } from '../../platform/http/body.js';
import { OAuthError, challenge, oauthErrors } from '../../platform/http/oauth-error.js';
import { CallerAuthError, type CallerAuthenticator, type ClientRecord } from '../../oauth/introspection/caller-auth.js';
import type { UserStore } from '../../records/directory/user-store.js';
import { LaunchRequestError, parseLaunchRequest } from './launch-request.js';
import type { LaunchContext, LaunchStore } from './launch-store.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { launchCreated } from '../../records/audit/events/admin-events.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * The EHR launch API: an `ehr_launcher` client posts the context an app should receive and gets
 * the opaque, short-lived `launch` value it then passes to the app with `iss` (SMART EHR launch).
 * The endpoint is a sequence of steps:
 *
 *   noStore → answerErrors → readLaunchBody → authenticateLauncher → parseLaunch → createLaunch
 *     → recordLaunch → answer
 */

export const LAUNCH_PATH = '/api/launch';

const BODY_LIMIT = 16 * 1024;
/** Client-authentication members of the JSON body; everything else is launch context. */
const CREDENTIAL_FIELDS = ['client_id', 'client_secret', 'client_assertion_type', 'client_assertion'] as const;

export interface LaunchRouteDeps {
  config: Config;
  auth: CallerAuthenticator;
  launches: LaunchStore;
  users: Pick<UserStore, 'get' | 'findByUserName'>;
  audit: AuditRecorder;
}

/** What the steps find out, in the order they run. */
interface LaunchRequest {
  /** The route's name in metrics and logs (platform/http/request-context.ts). */
  routeLabel: string;
  /** readLaunchBody: client_secret_post / private_key_jwt members, for the authenticator */
  credentials: URLSearchParams;
  /** readLaunchBody: the rest of the body, the launch context asked for */
  context: Record<string, unknown>;
  /** authenticateLauncher */
  caller: ClientRecord;
  /** parseLaunch */
  launch: LaunchContext;
  /** createLaunch: the `launch` value */
  value: string;
}

type Step = Middleware<LaunchRequest>;

/** The one place the API turns a failed authentication or a refused field into its wire error. */
function launchFailure(err: unknown): OAuthError | undefined {
  if (err instanceof CallerAuthError) {
    return new OAuthError(
      401,
      'invalid_client',
      `client authentication failed: ${err.problem}`,
      challenge('Basic', { realm: 'launch', error: 'invalid_client' }),
    );
  }
  if (err instanceof LaunchRequestError) return new OAuthError(400, 'invalid_request', err.message);
  return undefined;
}

const noStore: Step = async function noStore(ctx, next) {
  requestState(ctx).routeLabel = LAUNCH_PATH;
  ctx.set('Cache-Control', 'no-store');
  await next();
};

const LAUNCH_BODY: BodyRules<JsonProblem> = {
  types: ['application/json'],
  limit: BODY_LIMIT,
  refuse: (problem) => {
    switch (problem.kind) {
      case 'missing':
      case 'media-type':
        return new OAuthError(415, 'invalid_request', 'the body must be application/json');
      case 'too-large':
        return new OAuthError(413, 'invalid_request', `the request body exceeds ${problem.limit} bytes`);
      case 'not-json':
        return new OAuthError(400, 'invalid_request', 'the request body is not valid JSON');
    }
  },
};

/** A JSON object; its credentials (client_secret_post, private_key_jwt) are split off for the authenticator. */
const readLaunchBody: Step = async function readLaunchBody(ctx, next) {
  const body = await readJson(ctx, LAUNCH_BODY);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new OAuthError(400, 'invalid_request', 'the request body must be a JSON object');
  const credentials = new URLSearchParams();
  const context = { ...(body as Record<string, unknown>) };
  for (const field of CREDENTIAL_FIELDS) {
    const value = context[field];
    delete context[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new OAuthError(400, 'invalid_request', `${field} must be a string`);
    credentials.set(field, value);
  }
  ctx.state.credentials = credentials;
  ctx.state.context = context;
  await next();
};

function authenticateLauncher(deps: LaunchRouteDeps): Step {
  const url = `${deps.config.issuer}${LAUNCH_PATH}`;
  return async function authenticateLauncher(ctx, next) {
    const caller = await deps.auth.authenticate(ctx.get('Authorization') || undefined, ctx.state.credentials, url);
    if (caller.smart_client_kind !== 'ehr_launcher')
      throw new OAuthError(403, 'unauthorized_client', 'only ehr_launcher clients may create launch contexts');
    ctx.state.caller = caller;
    await next();
  };
}

function parseLaunch(deps: LaunchRouteDeps): Step {
  const parseDeps = { config: deps.config, users: deps.users, findClient: (id: string) => deps.auth.client(id) };
  return async function parseLaunch(ctx, next) {
    ctx.state.launch = await parseLaunchRequest(ctx.state.context, ctx.state.caller, parseDeps);
    await next();
  };
}

function createLaunch(deps: LaunchRouteDeps): Step {
  return async function createLaunch(ctx, next) {
    ctx.state.value = await deps.launches.create(ctx.state.launch);
    await next();
  };
}

function recordLaunch(deps: LaunchRouteDeps): Step {
  return async function recordLaunch(ctx, next) {
    const { caller, launch, value } = ctx.state;
    await deps.audit.record(
      launchCreated(
        { issuer: deps.config.issuer },
        {
          launcher: { clientId: caller.client_id, ip: ctx.ip },
          launch: value,
          expiresIn: deps.launches.ttlSeconds,
          ...(launch.clientId ? { appClientId: launch.clientId } : {}),
          ...(launch.patient ? { patient: launch.patient } : {}),
          ...(launch.encounter ? { encounter: launch.encounter } : {}),
          ...(launch.user ? { accountId: launch.user } : {}),
          aud: launch.aud,
        },
      ),
    );
    await next();
  };
}

function answer(deps: LaunchRouteDeps): Step {
  return async function answer(ctx) {
    ctx.status = 201;
    ctx.body = { launch: ctx.state.value, expires_in: deps.launches.ttlSeconds };
  };
}

export function launchRoutes(deps: LaunchRouteDeps): Router {
  const router = new Router();
  router.post(
    LAUNCH_PATH,
    noStore,
    oauthErrors(launchFailure),
    readLaunchBody,
    authenticateLauncher(deps),
    parseLaunch(deps),
    createLaunch(deps),
    recordLaunch(deps),
    answer(deps),
  );
  return router;
}
