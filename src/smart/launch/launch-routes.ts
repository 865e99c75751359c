import Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../platform/config/schema.js';
import { CallerAuthError, type CallerAuthenticator } from '../../oauth/introspection/caller-auth.js';
import type { UserStore } from '../../records/directory/user-store.js';
import { readBodyWithin } from '../../platform/http/read-body.js';
import { LaunchRequestError, parseLaunchRequest } from './launch-request.js';
import type { LaunchStore } from './launch-store.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { launchCreated } from '../../records/audit/events/admin-events.js';

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

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  if (!ctx.is('application/json')) throw new ApiError(415, 'invalid_request', 'the body must be application/json');
  const raw = await readBodyWithin(ctx.req, BODY_LIMIT);
  if (!raw) throw new ApiError(413, 'invalid_request', `the request body exceeds ${BODY_LIMIT} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'invalid_request', 'the request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'invalid_request', 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Splits the credentials (client_secret_post, private_key_jwt) off the body for the authenticator. */
function credentialsOf(body: Record<string, unknown>): { form: URLSearchParams; context: Record<string, unknown> } {
  const form = new URLSearchParams();
  const context = { ...body };
  for (const field of CREDENTIAL_FIELDS) {
    const value = context[field];
    delete context[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new ApiError(400, 'invalid_request', `${field} must be a string`);
    form.set(field, value);
  }
  return { form, context };
}

/**
 * The EHR launch API: an `ehr_launcher` client posts the context an app should receive and gets
 * the opaque, short-lived `launch` value it then passes to the app with `iss` (SMART EHR launch).
 */
export function launchRoutes(deps: LaunchRouteDeps): Router {
  const router = new Router();
  const endpointUrl = `${deps.config.issuer}${LAUNCH_PATH}`;

  router.post(LAUNCH_PATH, async (ctx) => {
    ctx.state.routeLabel = LAUNCH_PATH;
    ctx.set('Cache-Control', 'no-store');
    try {
      const { form, context } = credentialsOf(await readJson(ctx));
      let caller;
      try {
        caller = await deps.auth.authenticate(ctx.get('Authorization') || undefined, form, endpointUrl);
      } catch (err) {
        if (err instanceof CallerAuthError) throw new ApiError(401, 'invalid_client', `client authentication failed: ${err.problem}`);
        throw err;
      }
      if (caller.smart_client_kind !== 'ehr_launcher') throw new ApiError(403, 'unauthorized_client', 'only ehr_launcher clients may create launch contexts');

      let launch;
      try {
        launch = await parseLaunchRequest(context, caller, { config: deps.config, users: deps.users, findClient: (id) => deps.auth.client(id) });
      } catch (err) {
        if (err instanceof LaunchRequestError) throw new ApiError(400, 'invalid_request', err.message);
        throw err;
      }
      const value = await deps.launches.create(launch);
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
      ctx.status = 201;
      ctx.body = { launch: value, expires_in: deps.launches.ttlSeconds };
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      ctx.status = err.status;
      if (err.status === 401) ctx.set('WWW-Authenticate', 'Basic realm="launch", error="invalid_client"');
      ctx.body = { error: err.error, error_description: err.description };
    }
  });

  return router;
}
