import { randomUUID } from 'node:crypto';
import { cliLines as cli } from '../support/cli.js';
import { authorizeAndExchange, startAuthorizationIn, type Agent, type AuthorizeParams } from '../support/smart-flow.js';
import { createPerson, introspect, registerResourceServer, registerSmartApp } from '../support/fixtures.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { createScimApp, patchOps, type ScimTestApp } from '../apis/scim/support.js';
import { UserStore } from '../../src/records/directory/user-store.js';

/**
 * Revocation follows the account and the client (issue 14, item 6): disabling or deleting a user,
 * or removing a client, ends every grant, token and session at once — through SCIM, the CLI and
 * RFC 7592 — and bringing the user or client id back revives none of it. Everything here goes
 * through real HTTP (or the in-process CLI) against one app on the suite's Redis.
 */

const FHIR = 'http://localhost:8080/fhir';
const CB = 'https://app.example.org/cb';
const TOKEN_URL = 'http://localhost:3000/token';
const SCOPE = 'openid fhirUser patient/*.rs offline_access';

const prefix = `rev-${randomUUID().slice(0, 8)}:`;
const env = { REDIS_URL: process.env.REDIS_URL!, AUTHZ_REDIS_PREFIX: prefix, AUTHZ_LOG_LEVEL: 'silent', AUTHZ_FHIR_SERVERS: FHIR };
const saved = { ...process.env };

let t: ScimTestApp;
let key: BackendKey;

beforeAll(async () => {
  // The CLI reads its configuration from the environment: same Redis and prefix as the app.
  Object.assign(process.env, env);
  t = await createScimApp({ AUTHZ_REDIS_PREFIX: prefix });
  key = await backendKey('ES384');
  await registerSmartApp(t, { id: 'chart', redirectUri: CB, scopes: ['openid', 'fhirUser', 'offline_access', 'patient/*.rs'] });
  await registerSmartApp(t, { id: 'growth', redirectUri: CB, scopes: ['openid', 'fhirUser', 'offline_access', 'patient/*.rs'] });
  await registerResourceServer(t);
});
afterAll(async () => {
  process.env = saved;
  await t.close();
});

interface UserTokens {
  access: string;
  refresh: string;
  agent: Agent;
}

async function userTokens(accountId: string, clientId = 'chart'): Promise<UserTokens> {
  const { token, flow } = await authorizeAndExchange(t, { client_id: clientId, redirect_uri: CB, scope: SCOPE, aud: FHIR }, accountId, {
    patient: 'pat-1',
  });
  if (token.status !== 200) throw new Error(`token exchange failed: ${token.status} ${JSON.stringify(token.body)}`);
  return { access: token.body.access_token as string, refresh: token.body.refresh_token as string, agent: flow.agent };
}

async function active(token: string): Promise<boolean> {
  const res = await introspect(t, token);
  expect(res.status).toBe(200);
  return res.body.active === true;
}

function refresh(refreshToken: string, clientId = 'chart') {
  return t.request.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });
}

async function clientToken(clientId: string): Promise<string> {
  const res = await tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL));
  if (res.status !== 200) throw new Error(`client_credentials failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

async function patient(userName: string): Promise<string> {
  return (await createPerson(t, { fhirUser: 'Patient/pat-1' }, { userName })).id;
}

function setActive(id: string, value: boolean) {
  return t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'active', value }));
}

/** What the browser of `tokens` meets when it asks again: the login page when its SSO session is gone. */
async function promptInSameBrowser(tokens: UserTokens): Promise<string | undefined> {
  const params: AuthorizeParams = { client_id: 'chart', redirect_uri: CB, scope: 'openid fhirUser patient/*.rs', aud: FHIR };
  const { first } = await startAuthorizationIn(tokens.agent, params);
  const location = new URL(first.headers.location!, 'http://127.0.0.1');
  const uid = /^\/interaction\/([^/]+)$/.exec(location.pathname)?.[1];
  if (!uid) return location.searchParams.get('code') ? 'none (a code was issued)' : undefined;
  const interaction = (await t.app.Interaction.find(uid)) as unknown as { prompt: { name: string } } | undefined;
  return interaction?.prompt.name;
}

/** A user and a client nobody touches: their tokens must outlive every revocation in this file. */
let bystander: UserTokens;
let bystanderClientToken: string;
beforeAll(async () => {
  bystander = await userTokens(await patient('bystander'));
  await registerBackend(t, 'bystander-backend', [key]);
  bystanderClientToken = await clientToken('bystander-backend');
});

describe('a user disabled through SCIM', () => {
  test('PATCH active:false ends access and refresh at once; re-enabling revives neither tokens nor the SSO session', async () => {
    const id = await patient('pat.patch');
    const tokens = await userTokens(id);
    const other = await userTokens(id, 'growth');
    expect(await active(tokens.access)).toBe(true);
    expect(await promptInSameBrowser(tokens)).not.toBe('login');

    expect((await setActive(id, false)).status).toBe(200);
    expect(await active(tokens.access)).toBe(false);
    expect(await active(other.access)).toBe(false);
    expect(await active(tokens.refresh)).toBe(false);
    const refused = await refresh(tokens.refresh);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_grant');

    expect((await setActive(id, true)).status).toBe(200);
    expect(await active(tokens.access)).toBe(false);
    expect((await refresh(other.refresh, 'growth')).body.error).toBe('invalid_grant');
    const userinfo = await t.request.get('/userinfo').set('Authorization', `Bearer ${tokens.access}`);
    expect(userinfo.status).toBe(401);
    expect(await promptInSameBrowser(tokens)).toBe('login');

    // Re-enabled, the user signs in afresh and gets working tokens (the revoked mark is lifted).
    const fresh = await userTokens(id);
    expect(await active(fresh.access)).toBe(true);
    expect((await refresh(fresh.refresh)).status).toBe(200);
  });

  test('PUT with active:false does the same', async () => {
    const id = await patient('pat.put');
    const tokens = await userTokens(id);
    const current = (await t.get(`/Users/${id}`)).body as Record<string, unknown>;
    const { meta: _meta, groups: _groups, ...rest } = current;
    expect((await t.put(`/Users/${id}`, { ...rest, active: false })).status).toBe(200);
    expect(await active(tokens.access)).toBe(false);
    expect((await refresh(tokens.refresh)).body.error).toBe('invalid_grant');
  });

  test('DELETE ends every grant and token of the user', async () => {
    const id = await patient('pat.delete');
    const tokens = await userTokens(id);
    expect((await t.del(`/Users/${id}`)).status).toBe(204);
    expect(await active(tokens.access)).toBe(false);
    expect(await active(tokens.refresh)).toBe(false);
    expect((await refresh(tokens.refresh)).body.error).toBe('invalid_grant');
  });

  test('DELETE of an id that owns nothing is a 404 that writes nothing (found by the fuzz suite)', async () => {
    const id = 'http://a.aa';
    expect((await t.del(`/Users/${encodeURIComponent(id)}`)).status).toBe(404);
    expect(await t.redis.exists(t.keyspace.ownerRevoked('account', id))).toBe(0);
  });

  test('a DELETE retried after a deletion that did not finish ending access still ends it', async () => {
    const id = await patient('pat.delete-retry');
    const tokens = await userTokens(id);
    // The first delete removed the record, then failed before ending access: a store without its
    // access part does exactly the first half.
    const halfway = new UserStore({
      redis: t.redis,
      keyspace: t.keyspace,
      passwords: t.config.passwords,
      scimBase: `${t.config.issuer}/scim/v2`,
      limits: t.config.scim,
    });
    expect(await halfway.delete(id)).toBe(true);
    expect(await active(tokens.access)).toBe(true);
    expect((await t.del(`/Users/${id}`)).status).toBe(404);
    expect(await active(tokens.access)).toBe(false);
    expect((await refresh(tokens.refresh)).body.error).toBe('invalid_grant');
  });

  test('under concurrency: several grants and refreshes in flight while the user is disabled, nothing survives', async () => {
    const id = await patient('pat.concurrent');
    const grants = await Promise.all([userTokens(id), userTokens(id), userTokens(id, 'growth'), userTokens(id, 'growth')]);
    const clientOf = (i: number) => (i < 2 ? 'chart' : 'growth');
    // Refreshes race the disable; whatever they mint must be dead once it has returned.
    const [disabled, ...raced] = await Promise.all([
      setActive(id, false),
      ...grants.map((g, i) => refresh(g.refresh, clientOf(i))),
      ...grants.map((g, i) => refresh(g.refresh, clientOf(i))),
    ]);
    expect(disabled!.status).toBe(200);
    for (const res of raced) expect([200, 400]).toContain(res.status);

    const minted = raced.filter((r) => r.status === 200).map((r) => r.body as { access_token: string; refresh_token: string });
    const accessTokens = [...grants.map((g) => g.access), ...minted.map((m) => m.access_token)];
    const refreshTokens = grants
      .map((g, i) => [g.refresh, clientOf(i)] as const)
      .concat(minted.map((m) => [m.refresh_token, 'chart'] as const));
    for (const access of accessTokens) expect(await active(access)).toBe(false);
    for (const [value] of refreshTokens) expect(await active(value)).toBe(false);
    await setActive(id, true);
    const again = await Promise.all(grants.map((g, i) => refresh(g.refresh, clientOf(i))));
    for (const res of again) expect(res.body.error).toBe('invalid_grant');
  });
});

describe('a user disabled with the CLI', () => {
  test('`smart-authz users disable` ends access at once; `enable` revives nothing', async () => {
    const id = await patient('pat.cli');
    const tokens = await userTokens(id);
    const said = await cli('users', 'disable', 'pat.cli');
    expect(await active(tokens.access)).toBe(false);
    expect(said).toEqual(['user "pat.cli" disabled: it can no longer sign in, and its sessions and tokens have ended']);
    expect((await refresh(tokens.refresh)).body.error).toBe('invalid_grant');
    await cli('users', 'enable', 'pat.cli');
    expect(await active(tokens.access)).toBe(false);
    expect((await refresh(tokens.refresh)).body.error).toBe('invalid_grant');
  });
});

describe('a removed client', () => {
  test('`smart-authz clients remove` ends its client-credentials tokens; the id registered again inherits none', async () => {
    await registerBackend(t, 'bulk-gone', [key]);
    const tokens = await Promise.all([clientToken('bulk-gone'), clientToken('bulk-gone'), clientToken('bulk-gone')]);
    for (const token of tokens) expect(await active(token)).toBe(true);

    expect(await cli('clients', 'remove', 'bulk-gone')).toEqual(['removed client "bulk-gone"']);
    for (const token of tokens) expect(await active(token)).toBe(false);

    await registerBackend(t, 'bulk-gone', [key]);
    for (const token of tokens) expect(await active(token)).toBe(false);
    expect(await active(await clientToken('bulk-gone'))).toBe(true);
  });

  test('RFC 7592 DELETE ends the grants of every user of the client; the id re-created inherits no token', async () => {
    const [iat] = await cli('registration', 'token', '--expires-in', '600');
    const registered = await t.request
      .post('/register')
      .set('Authorization', `Bearer ${iat}`)
      .send({
        smart_client_kind: 'public_app',
        client_name: 'Short-lived app',
        redirect_uris: [CB],
        smart_scopes: ['openid', 'fhirUser', 'offline_access', 'patient/*.rs'],
      });
    expect(registered.status).toBe(201);
    const { client_id: clientId, registration_access_token: rat } = registered.body as {
      client_id: string;
      registration_access_token: string;
    };

    const [alice, bob] = await Promise.all([patient('pat.7592a'), patient('pat.7592b')]);
    const users = await Promise.all([userTokens(alice, clientId), userTokens(bob, clientId), userTokens(alice, clientId)]);
    const kept = await userTokens(alice, 'chart');
    for (const u of users) expect(await active(u.access)).toBe(true);

    const deleted = await t.request.delete(`/register/${clientId}`).set('Authorization', `Bearer ${rat}`);
    expect(deleted.status).toBe(204);
    for (const u of users) {
      expect(await active(u.access)).toBe(false);
      expect(await active(u.refresh)).toBe(false);
    }

    // The same client id registered again (by an operator) gets none of the old grants back.
    await registerSmartApp(t, { id: clientId, redirectUri: CB, scopes: ['openid', 'fhirUser', 'offline_access', 'patient/*.rs'] });
    for (const u of users) {
      expect(await active(u.access)).toBe(false);
      expect((await refresh(u.refresh, clientId)).body.error).toBe('invalid_grant');
    }
    const oldRegistrationToken = await t.request.get(`/register/${clientId}`).set('Authorization', `Bearer ${rat}`);
    expect(oldRegistrationToken.status).toBe(401);

    // The user's grant with another client is not the removed client's to end.
    expect(await active(kept.access)).toBe(true);
  });
});

describe('no over-revocation', () => {
  test('a user and a client nobody touched keep their tokens', async () => {
    expect(await active(bystander.access)).toBe(true);
    expect(await active(bystanderClientToken)).toBe(true);
    const next = await refresh(bystander.refresh);
    expect(next.status).toBe(200);
    expect(await active(next.body.access_token as string)).toBe(true);
  });
});
