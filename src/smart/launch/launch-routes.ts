import Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../platform/config/schema.js';
import { CallerAuthError, type CallerAuthenticator } from '../../oauth/introspection/caller-auth.js';
import type { UserStore } from '../../records/directory/user-store.js';
import { readJson, type BodyRules, type JsonProblem } from '../../platform/http/body.js';
import { OAuthError, challenge, sendOAuthError } from '../../platform/http/oauth-error.js';
import { LaunchRequestError, parseLaunchRequest } from './launch-request.js';
import type { LaunchStore } from './launch-store.js';
import type { AuditRecorder } from '../../records/audit/hooks/provider-audit.js';
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

async function readJsonObject(ctx: Context): Promise<Record<string, unknown>> {
  const body = await readJson(ctx, LAUNCH_BODY);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new OAuthError(400, 'invalid_request', 'the request body must be a JSON object');
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
    if (typeof value !== 'string') throw new OAuthError(400, 'invalid_request', `${field} must be a string`);
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
      const { form, context } = credentialsOf(await readJsonObject(ctx));
      let caller;
      try {
        caller = await deps.auth.authenticate(ctx.get('Authorization') || undefined, form, endpointUrl);
      } catch (err) {
        if (err instanceof CallerAuthError) throw new OAuthError(401, 'invalid_client', `client authentication failed: ${err.problem}`, challenge('Basic', { realm: 'launch', error: 'invalid_client' }));
        throw err;
      }
      if (caller.smart_client_kind !== 'ehr_launcher') throw new OAuthError(403, 'unauthorized_client', 'only ehr_launcher clients may create launch contexts');

      let launch;
      try {
        launch = await parseLaunchRequest(context, caller, { config: deps.config, users: deps.users, findClient: (id) => deps.auth.client(id) });
      } catch (err) {
        if (err instanceof LaunchRequestError) throw new OAuthError(400, 'invalid_request', err.message);
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
      if (!(err instanceof OAuthError)) throw err;
      sendOAuthError(ctx, err);
    }
  });

  return router;
}
