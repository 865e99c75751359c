import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Config, FhirServer } from '../../platform/config/schema.js';
import { OAuthError, sendOAuthError } from '../../platform/http/oauth-error.js';
import { ROUTES } from '../../oauth/paths.js';
import { MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { CONTEXT_SCOPES } from '../../domain/scopes/scope-syntax.js';
import { serveSmartStyle } from './smart-style.js';

/**
 * SMART capabilities this build really implements. Each string is a promise to clients (SMART
 * App Launch 2.2 "Capabilities"), so one is added only together with the code that keeps it.
 */
export const SMART_CAPABILITIES: readonly string[] = [
  'launch-ehr',
  'launch-standalone',
  'authorize-post',
  'client-public',
  'client-confidential-symmetric',
  'client-confidential-asymmetric',
  'sso-openid-connect',
  'context-banner',
  'context-style',
  'context-ehr-patient',
  'context-ehr-encounter',
  // The patient and encounter pickers (smart/interaction/select-patient, select-encounter).
  'context-standalone-patient',
  'context-standalone-encounter',
  'permission-offline',
  'permission-online',
  'permission-patient',
  'permission-user',
  'permission-v1',
  'permission-v2',
];

/**
 * Scopes any client may be registered for and granted (SMART: the server SHALL support every one
 * listed). Resource scopes are shown as their widest v2 and v1 read forms; narrower ones, other
 * permissions and granular `?param=value` constraints work too.
 */
export const SCOPES_SUPPORTED: readonly string[] = [
  ...CONTEXT_SCOPES,
  'patient/*.rs',
  'user/*.rs',
  'system/*.rs',
  'patient/*.read',
  'user/*.read',
  'system/*.read',
];

export function smartConfiguration(config: Config, server?: FhirServer): Record<string, unknown> {
  const url = (path: string) => `${config.issuer}${path}`;
  return {
    issuer: config.issuer,
    jwks_uri: url(ROUTES.jwks),
    authorization_endpoint: url(ROUTES.authorization),
    token_endpoint: url(ROUTES.token),
    introspection_endpoint: url(ROUTES.introspection),
    revocation_endpoint: url(ROUTES.revocation),
    // Where a person sees the apps with access to their records and withdraws them (manage/).
    management_endpoint: url(MANAGE_PATHS.page),
    ...(config.registration.enabled ? { registration_endpoint: url(ROUTES.registration) } : {}),
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: config.clientAuthSigningAlgs,
    scopes_supported: [...SCOPES_SUPPORTED],
    capabilities: [...SMART_CAPABILITIES],
    ...(server?.tenant ? { tenant: server.tenant } : {}),
  };
}

/** Discovery is public and read by browser apps from any origin (SMART: CORS for any origin). */
async function openCors(ctx: Context, next: Next): Promise<void> {
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Access-Control-Allow-Methods', 'GET, OPTIONS');
  ctx.set('Access-Control-Max-Age', '86400');
  if (ctx.method === 'OPTIONS') {
    ctx.set('Access-Control-Allow-Headers', ctx.get('Access-Control-Request-Headers') || 'Accept');
    ctx.status = 204;
    return;
  }
  await next();
}

/**
 * Served at the issuer, at `/{tenant}/.well-known/smart-configuration` for each named tenant, and
 * at `{path}/.well-known/smart-configuration` for each FHIR base that shares this server's origin
 * (a FHIR server elsewhere proxies its own `.well-known` here).
 */
export function smartConfigurationRoutes(config: Config): Router {
  const router = new Router();
  const issuerOrigin = new URL(config.issuer).origin;
  const serve = (path: string, server?: FhirServer) => {
    const body = smartConfiguration(config, server);
    router.all(path, openCors, (ctx) => {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.set('Allow', 'GET, HEAD, OPTIONS');
        sendOAuthError(ctx, new OAuthError(405, 'invalid_request', 'use GET'));
        return;
      }
      ctx.type = 'application/json';
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.body = body;
    });
  };
  serve('/.well-known/smart-configuration');
  serveSmartStyle(router, openCors);
  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  for (const server of config.fhirServers) {
    if (server.tenant) serve(`/${server.tenant}/.well-known/smart-configuration`, server);
    const base = new URL(server.base);
    if (base.origin === issuerOrigin && base.pathname !== '/' && base.pathname !== issuerPath) {
      serve(`${base.pathname.replace(/\/$/, '')}/.well-known/smart-configuration`, server);
    }
  }
  return router;
}
