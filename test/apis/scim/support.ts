import type { Logger } from 'pino';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';

export const SCIM = '/scim/v2';
export const SCIM_JSON = 'application/scim+json';
export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SMART = 'urn:smart-authz:params:scim:schemas:extension:smart:2.0:User';
export const SMART_GROUP = 'urn:smart-authz:params:scim:schemas:extension:smart:2.0:Group';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const TOKEN_URL = 'http://localhost:3000/token';

export interface ScimTestApp extends TestApp {
  key: BackendKey;
  /** An access token of the admin client, with the scim scope. */
  token: string;
  /** Another token of a backend client allowed only system/*.rs. */
  tokenWithoutScim: string;
  get(path: string): ReturnType<TestApp['request']['get']>;
  post(path: string, body: unknown): ReturnType<TestApp['request']['post']>;
  put(path: string, body: unknown): ReturnType<TestApp['request']['put']>;
  patch(path: string, body: unknown): ReturnType<TestApp['request']['patch']>;
  del(path: string): ReturnType<TestApp['request']['delete']>;
}

export async function adminToken(t: TestApp, clientId: string, key: BackendKey, scope = 'scim'): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL), { scope });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

/** The app with an admin client (backend_service, smart_scopes: ['scim']) and its token. */
export async function createScimApp(env: Record<string, string> = {}, opts: { logger?: Logger } = {}): Promise<ScimTestApp> {
  const t = await createTestApp(env, opts.logger ? { logger: opts.logger } : {});
  const key = await backendKey('ES384');
  await registerBackend(t, 'scim-admin', [key], { smart_scopes: ['scim'] });
  await registerBackend(t, 'bulk-reader', [key], { smart_scopes: ['system/*.rs'] });
  const token = await adminToken(t, 'scim-admin', key);
  const tokenWithoutScim = await adminToken(t, 'bulk-reader', key, 'system/*.rs');
  const auth = `Bearer ${token}`;
  return {
    ...t,
    key,
    token,
    tokenWithoutScim,
    get: (path) => t.request.get(`${SCIM}${path}`).set('Authorization', auth),
    post: (path, body) =>
      t.request.post(`${SCIM}${path}`).set('Authorization', auth).set('Content-Type', SCIM_JSON).send(JSON.stringify(body)),
    put: (path, body) =>
      t.request.put(`${SCIM}${path}`).set('Authorization', auth).set('Content-Type', SCIM_JSON).send(JSON.stringify(body)),
    patch: (path, body) =>
      t.request.patch(`${SCIM}${path}`).set('Authorization', auth).set('Content-Type', SCIM_JSON).send(JSON.stringify(body)),
    del: (path) => t.request.delete(`${SCIM}${path}`).set('Authorization', auth),
  };
}

export function patchOps(...operations: Array<Record<string, unknown>>): Record<string, unknown> {
  return { schemas: [PATCH_OP], Operations: operations };
}

/** A resource as the API returned it, typed just enough for assertions. */
export interface Resource {
  id: string;
  userName: string;
  displayName: string;
  emails: Array<{ value: string; type?: string; primary?: boolean }>;
  meta: { version: string; created: string; location?: string };
  [key: string]: unknown;
}
