import { createHash, randomBytes } from 'node:crypto';
import supertest from 'supertest';
import type { TestApp } from '../../../support/test-app.js';
import { registerSmartApp } from '../../../support/fixtures.js';
import { createUserStore, type UserStore } from '../../../../src/records/directory/user-store.js';
import { LoginLockout } from '../../../../src/records/directory/lockout.js';
import { SMART_USER_SCHEMA, type ScimUser } from '../../../../src/records/directory/model.js';

export const REDIRECT_URI = 'https://app.example.org/cb';
export const FHIR_BASE = 'http://localhost:8080/fhir';

export type Agent = ReturnType<typeof supertest.agent>;

/** The user directory and lock-out over the app's Redis and prefix, as the app builds them. */
export function directoryOf(t: TestApp): { users: UserStore; lockout: LoginLockout } {
  const lockout = new LoginLockout(t.redis, t.keyspace, t.config.login);
  return { users: createUserStore(t.config, t.redis, t.keyspace, lockout), lockout };
}

export async function registerApp(t: TestApp, clientId = 'login-test-app', clientName = 'Growth Chart'): Promise<string> {
  await registerSmartApp(t, {
    id: clientId,
    name: clientName,
    redirectUri: REDIRECT_URI,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs'],
  });
  return clientId;
}

export async function createUser(
  users: UserStore,
  userName: string,
  password: string,
  extra: Record<string, unknown> = {},
): Promise<ScimUser> {
  return users.create({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', SMART_USER_SCHEMA],
    userName,
    password,
    name: { givenName: 'Alex', familyName: 'Smith' },
    [SMART_USER_SCHEMA]: { fhirUser: 'Practitioner/alex-1' },
    ...extra,
  });
}

/** Starts an authorization request in a fresh browser; returns it with the interaction uid. */
export async function startLogin(t: TestApp, clientId: string): Promise<{ agent: Agent; uid: string; page: supertest.Response }> {
  const agent = supertest.agent(t.app.callback());
  const verifier = randomBytes(32).toString('base64url');
  const res = await agent.get('/authorize').query({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid fhirUser',
    state: 's',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource: FHIR_BASE,
  });
  if (res.status !== 303) throw new Error(`authorize answered ${res.status}: ${res.text}`);
  const uid = /^\/interaction\/([^/?]+)$/.exec(res.headers.location!)?.[1];
  if (!uid) throw new Error(`unexpected redirect ${res.headers.location}`);
  const page = await agent.get(`/interaction/${uid}`).set('Accept', 'text/html');
  return { agent, uid, page };
}

export function csrfOf(html: string): string {
  const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error('no csrf token in the page');
  return token;
}

export async function submitLogin(agent: Agent, uid: string, form: Record<string, string>): Promise<supertest.Response> {
  return agent.post(`/interaction/${uid}/login`).type('form').set('Accept', 'text/html').send(form);
}
