import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { registerResourceServer } from '../support/fixtures.js';

/**
 * `scim` and `introspect` tokens are bound to their own audiences (`<issuer>/scim/v2`,
 * `<issuer>/introspect`). The attack: a backend asks `scope=scim system/*.rs` (or `introspect
 * system/*.rs`), gets a token for its FHIR server, and that FHIR server — which is sent the token
 * on every call — replays it to /scim/v2 to administer the directory, or to /introspect.
 */

const FHIR_BASE = 'http://localhost:8080/fhir';
const ISSUER = 'http://localhost:3000';
const SCIM_AUD = `${ISSUER}/scim/v2`;
const INTROSPECT_AUD = `${ISSUER}/introspect`;
const TOKEN_URL = `${ISSUER}/token`;
const tag = randomUUID().slice(0, 6);
const ADMIN = `admin-${tag}`;
const GATEWAY = `gateway-${tag}`;
const RS = `rs-${tag}`;

let t: TestApp;
let key: BackendKey;

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const scimGet = (token: string) => t.request.get('/scim/v2/Users').set('Authorization', `Bearer ${token}`);
const introspectAsRs = (token: string) =>
  t.request
    .post('/introspect')
    .set('Authorization', basic(RS, `${RS}-secret`))
    .type('form')
    .send({ token });
const introspectWithBearer = (bearer: string, token: string) =>
  t.request.post('/introspect').set('Authorization', `Bearer ${bearer}`).type('form').send({ token });

async function token(clientId: string, form: Record<string, string>) {
  return tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL), form);
}

/** A client_credentials token as the previous version issued it: an admin scope for the FHIR server (still live at an upgrade). */
async function legacyToken(clientId: string, scope: string): Promise<string> {
  const client = (await t.app.Client.find(clientId))!;
  return new t.app.ClientCredentials({ client, scope, aud: FHIR_BASE }).save();
}

beforeAll(async () => {
  t = await createTestApp();
  key = await backendKey('ES384');
  await registerBackend(t, ADMIN, [key], { smart_scopes: ['system/*.rs', 'scim'], fhir_servers: [FHIR_BASE] });
  await registerBackend(t, GATEWAY, [key], { smart_scopes: ['system/*.rs', 'introspect'], fhir_servers: [FHIR_BASE] });
  await registerResourceServer(t, { id: RS, secret: `${RS}-secret` }, { fhir_servers: [FHIR_BASE] });
});
afterAll(async () => {
  await t.close();
});

describe('scim tokens have the SCIM audience', () => {
  test('a FHIR-server token requested with scope "scim system/*.rs" does not carry scim, and the FHIR server cannot replay it to /scim/v2', async () => {
    const res = await token(ADMIN, { scope: 'scim system/*.rs' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/*.rs');
    // What the FHIR server sees, and what it could try at /scim/v2.
    const seen = await introspectAsRs(res.body.access_token as string);
    expect(seen.body).toMatchObject({ active: true, aud: FHIR_BASE, scope: 'system/*.rs' });
    const replay = await scimGet(res.body.access_token as string);
    expect(replay.status).toBe(403);
    expect(replay.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
  });

  test('a token carrying scim for another audience is 401 invalid_token with a SCIM error body', async () => {
    const replay = await scimGet(await legacyToken(ADMIN, 'system/*.rs scim'));
    expect(replay.status).toBe(401);
    expect(replay.headers['www-authenticate']).toMatch(/^Bearer realm="scim", error="invalid_token"/);
    expect(replay.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '401',
      detail: expect.stringContaining(`resource=${SCIM_AUD}`),
    });
  });

  test('scope=scim naming no resource gets the SCIM audience and scim alone; the FHIR server learns nothing of it', async () => {
    const res = await token(ADMIN, { scope: 'scim' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('scim');
    expect((await scimGet(res.body.access_token as string)).status).toBe(200);
    expect((await introspectAsRs(res.body.access_token as string)).body).toEqual({ active: false });
  });

  test('resource=<issuer>/scim/v2 narrows the token to scim; without scim in the request it is invalid_scope', async () => {
    const narrowed = await token(ADMIN, { scope: 'scim system/*.rs', resource: SCIM_AUD });
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.scope).toBe('scim');
    const none = await token(ADMIN, { scope: 'system/*.rs', resource: SCIM_AUD });
    expect(none.status).toBe(400);
    expect(none.body.error).toBe('invalid_scope');
  });

  test('a FHIR-server request for scim alone is invalid_scope, naming the SCIM audience', async () => {
    const res = await token(ADMIN, { scope: 'scim', resource: FHIR_BASE });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_scope', error_description: expect.stringContaining(SCIM_AUD) });
  });

  test('scim and introspect cannot share one token', async () => {
    await registerBackend(t, `both-${tag}`, [key], { smart_scopes: ['scim', 'introspect'], fhir_servers: [FHIR_BASE] });
    const res = await token(`both-${tag}`, { scope: 'scim introspect' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
  });
});

describe('introspect tokens have the introspection audience', () => {
  test('a FHIR-server token requested with scope "introspect system/*.rs" does not carry introspect and cannot call /introspect', async () => {
    const res = await token(GATEWAY, { scope: 'introspect system/*.rs' });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/*.rs');
    const replay = await introspectWithBearer(res.body.access_token as string, res.body.access_token as string);
    expect(replay.status).toBe(403);
    expect(replay.body.error).toBe('insufficient_scope');
  });

  test('a token carrying introspect for another audience is 401 invalid_token', async () => {
    const data = await token(GATEWAY, { scope: 'system/*.rs' });
    const replay = await introspectWithBearer(await legacyToken(GATEWAY, 'system/*.rs introspect'), data.body.access_token as string);
    expect(replay.status).toBe(401);
    expect(replay.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    expect(replay.body).toMatchObject({ error: 'invalid_token', error_description: expect.stringContaining(`resource=${INTROSPECT_AUD}`) });
  });

  test('scope=introspect gets the introspection audience and still introspects its FHIR servers’ tokens', async () => {
    const bearer = await token(GATEWAY, { scope: 'introspect' });
    expect(bearer.status).toBe(200);
    expect(bearer.body.scope).toBe('introspect');
    const data = await token(GATEWAY, { scope: 'system/*.rs' });
    const res = await introspectWithBearer(bearer.body.access_token as string, data.body.access_token as string);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, aud: FHIR_BASE });
    // The bearer itself is nothing a FHIR server was sent.
    expect((await introspectAsRs(bearer.body.access_token as string)).body).toEqual({ active: false });
  });
});
