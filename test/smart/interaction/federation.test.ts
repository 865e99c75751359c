import { ACR } from '../../../src/domain/authn/assurance.js';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { startUpstreamIdp, type UpstreamIdp } from '../../support/upstream-idp.js';
import { browse, exchange, pageOf, pkcePair, postForm, checkedValues, unescapeHtml, type Agent } from '../../support/smart-flow.js';
import { registerSmartApp } from '../../support/fixtures.js';
import { recordedBy, expectValid } from '../../records/audit/events-support.js';
import { createUserStore, type UserStore } from '../../../src/records/directory/user-store.js';
import { CORE_USER_SCHEMA, SMART_USER_SCHEMA } from '../../../src/records/directory/model.js';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../../../src/records/audit/disclosure.js';

/*
 * Federated sign-in against a real upstream OpenID Connect provider (a second oidc-provider on a
 * real port, test/support/upstream-idp.ts): the browser is a cookie-keeping supertest agent on this
 * server and another on the upstream, redirects followed as a browser would.
 */

const ISSUER = 'http://localhost:3000';
const CLIENT = 'fed-app';
const REDIRECT = 'https://app.example.org/cb';
const FHIR_BASE = 'http://localhost:8080/fhir';

let idp: UpstreamIdp;
let t: TestApp;
let users: UserStore;
let closedPort: number;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const callback = (id: string) => `${ISSUER}/federation/${id}/callback`;

function providersFile(entries: unknown[]): string {
  const file = join(tmpdir(), `smart-authz-federation-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(entries));
  return file;
}

beforeAll(async () => {
  closedPort = await freePort();
  idp = await startUpstreamIdp({ redirectUris: ['hospital', 'jit', 'mis', 'down', 'byname'].map(callback) });
  const base = { clientId: idp.clientId, clientSecret: idp.clientSecret };
  const link = [
    { claim: 'oid', attribute: 'externalId' },
    { claim: 'preferred_username', attribute: 'userName' },
    { claim: 'email', attribute: 'emails' },
  ];
  const file = providersFile([
    { ...base, id: 'hospital', displayName: 'General Hospital', issuer: idp.issuer, link, mfaAcrValues: ['urn:test:mfa'] },
    { ...base, id: 'byname', displayName: 'By Name', issuer: idp.issuer, link: [{ claim: 'preferred_username', attribute: 'userName' }] },
    {
      ...base,
      id: 'jit',
      displayName: 'JIT Provider',
      issuer: idp.issuer,
      link: [{ claim: 'oid', attribute: 'externalId' }],
      jit: { enabled: true },
    },
    { ...base, id: 'mis', displayName: 'Impostor', issuer: idp.misadvertisedIssuer, link },
    { ...base, id: 'down', displayName: 'Down IdP', issuer: `http://127.0.0.1:${closedPort}`, link },
  ]);
  t = await createTestApp({ AUTHZ_FEDERATION_PROVIDERS: file, AUTHZ_FHIR_SERVERS: FHIR_BASE });
  await registerSmartApp(t, { id: CLIENT, name: 'Chart', redirectUri: REDIRECT, scopes: ['openid', 'fhirUser', 'profile'] });
  users = createUserStore(t.config, t.redis, t.keyspace);
}, 30_000);

afterAll(async () => {
  await t?.close();
  await idp?.close();
});

let counter = 0;
/** A directory user plus an upstream person whose claims point at it. */
async function person(opts: {
  scim?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  amr?: string[];
  acr?: string;
  authTime?: number;
}): Promise<{ id: string; sub: string; userName: string }> {
  counter += 1;
  const userName = `clin-${counter}-${Date.now().toString(36)}`;
  const user = await users.create({
    schemas: [CORE_USER_SCHEMA, SMART_USER_SCHEMA],
    userName,
    [SMART_USER_SCHEMA]: { fhirUser: `Practitioner/pr-${counter}` },
    ...opts.scim,
  });
  const sub = `up-${counter}-${Math.random().toString(36).slice(2, 8)}`;
  idp.addUser({
    sub,
    claims: opts.claims ?? {},
    ...(opts.amr ? { amr: opts.amr } : {}),
    ...(opts.acr ? { acr: opts.acr } : {}),
    ...(opts.authTime ? { authTime: opts.authTime } : {}),
  });
  return { id: user.id, sub, userName };
}

function upstreamOnly(claims: Record<string, unknown>): string {
  counter += 1;
  const sub = `up-only-${counter}-${Math.random().toString(36).slice(2, 8)}`;
  idp.addUser({ sub, claims });
  return sub;
}

interface Trip {
  agent: Agent;
  verifier: string;
  uid: string;
  /** The 303 from our callback (to /interaction/:uid/federated), or the callback's page. */
  callback: supertest.Response;
  callbackUrl: URL;
}

/** Opens the sign-in page in a fresh browser. */
async function openSignIn(
  extra: Record<string, string> = {},
): Promise<{ agent: Agent; verifier: string; uid: string; page: supertest.Response }> {
  const agent = supertest.agent(t.app.callback());
  const { verifier, challenge } = pkcePair();
  const first = await agent.get('/authorize').query({
    client_id: CLIENT,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid fhirUser profile',
    state: 'app-state',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: FHIR_BASE,
    ...extra,
  });
  const stop = pageOf(await browse(agent, first));
  return { agent, verifier, uid: stop.uid, page: stop.res };
}

function buttonHref(html: string, displayName: string): string {
  const m = new RegExp(`<a class="button[^"]*" href="([^"]+)">Sign in with ${displayName}</a>`).exec(html);
  if (!m) throw new Error(`no "Sign in with ${displayName}" button`);
  return unescapeHtml(m[1]!);
}

/** Follows the upstream's redirects (its own agent, as its cookies are its own) until it sends the browser back here. */
async function throughUpstream(location: string): Promise<URL> {
  const upstream = supertest.agent(idp.issuer);
  let url = new URL(location);
  for (let i = 0; i < 10 && url.origin === idp.issuer; i++) {
    const res = await upstream.get(`${url.pathname}${url.search}`);
    if (res.status !== 302 && res.status !== 303) throw new Error(`upstream answered ${res.status}: ${res.text.slice(0, 300)}`);
    url = new URL(res.headers.location!, idp.issuer);
  }
  return url;
}

/** Sign-in page → provider button → upstream (signing in as `sub`) → our callback. */
async function tripUpstream(
  provider: string,
  displayName: string,
  sub: string | undefined,
  extra: Record<string, string> = {},
): Promise<Trip> {
  const { agent, verifier, uid, page } = await openSignIn(extra);
  const start = await agent.get(buttonHref(page.text, displayName)).set('Accept', 'text/html');
  if (start.status !== 303) throw new Error(`starting answered ${start.status}: ${start.text.slice(0, 300)}`);
  idp.signInAs(sub);
  const callbackUrl = await throughUpstream(start.headers.location!);
  const res = await agent.get(`${callbackUrl.pathname}${callbackUrl.search}`).set('Accept', 'text/html');
  return { agent, verifier, uid, callback: res, callbackUrl };
}

/** A whole federated authorization: through the consent page (allowing) back to the app, and the token response. */
async function signInThrough(provider: string, displayName: string, sub: string) {
  const trip = await tripUpstream(provider, displayName, sub);
  expect(trip.callback.status).toBe(303);
  let stop = await browse(trip.agent, trip.callback);
  if (stop.kind === 'page' && stop.prompt === 'consent')
    stop = await browse(
      trip.agent,
      await postForm(trip.agent, stop.uid, 'consent', stop.res, { decision: 'allow', scope: checkedValues(stop.res.text, 'scope') }),
    );
  if (stop.kind !== 'app' || !stop.code)
    throw new Error(`expected a code, got ${stop.kind} ${stop.res.status} ${stop.res.text?.slice(0, 300)}`);
  const token = await exchange(t, stop.code, trip.verifier, { client_id: CLIENT, redirect_uri: REDIRECT });
  expect(token.status).toBe(200);
  return { trip, idToken: decodeJwt(token.body.id_token as string) };
}

const isFederated = (e: AuditEvent) => e.subtype?.some((c) => c.system === LOCAL_SUBTYPE_SYSTEM && c.code === 'federated-login');
const failed = (e: AuditEvent) => e.outcome !== '0';
const reasonOf = (e: AuditEvent) => e.entity?.flatMap((en) => en.detail ?? []).find((d) => d.type === 'reason')?.valueString;
const localCodes = (e: AuditEvent) => (e.subtype ?? []).filter((c) => c.system === LOCAL_SUBTYPE_SYSTEM).map((c) => c.code);

function refusal(events: AuditEvent[], reason: string): AuditEvent {
  const found = events.filter((e) => isFederated(e) && failed(e) && reasonOf(e) === reason);
  if (found.length !== 1)
    throw new Error(`expected one ${reason} refusal, got [${events.map((e) => `${localCodes(e)}:${reasonOf(e)}`).join(', ')}]`);
  expectValid(found[0]!);
  return found[0]!;
}

const userIdOf = (e: AuditEvent) => e.agent.find((a) => a.type?.coding?.[0]?.code === 'IRCP')?.who?.identifier?.value;

describe('sign-in page', () => {
  test('shows one button per provider beside the password form; the button is a same-site link carrying the CSRF token', async () => {
    const { uid, page } = await openSignIn();
    expect(page.text).toContain(`<form method="post" action="/interaction/${uid}/login"`);
    for (const name of ['General Hospital', 'JIT Provider', 'Impostor', 'Down IdP']) {
      expect(buttonHref(page.text, name)).toMatch(new RegExp(`^/interaction/${uid}/federate/[a-z]+\\?csrf=.+`));
    }
    expect(page.text).not.toMatch(/<script/i);
  });

  test('starting without the CSRF token, from another site, or for an unknown provider is refused', async () => {
    const { agent, uid, page } = await openSignIn();
    expect((await agent.get(`/interaction/${uid}/federate/hospital`).set('Accept', 'text/html')).status).toBe(403);
    const href = buttonHref(page.text, 'General Hospital');
    expect((await agent.get(href).set('Accept', 'text/html').set('Sec-Fetch-Site', 'cross-site')).status).toBe(403);
    const other = href.replace('/federate/hospital', '/federate/nope');
    expect((await agent.get(other).set('Accept', 'text/html')).status).toBe(404);
    // Another browser (no interaction cookie) cannot start this interaction's trip.
    expect((await supertest(t.app.callback()).get(href).set('Accept', 'text/html')).status).toBe(400);
  });

  test('starting sends the browser upstream with PKCE S256, state, nonce and the fixed redirect URI', async () => {
    const { agent, page } = await openSignIn();
    const start = await agent.get(buttonHref(page.text, 'General Hospital')).set('Accept', 'text/html');
    expect(start.status).toBe(303);
    const url = new URL(start.headers.location!);
    expect(url.origin).toBe(idp.issuer);
    expect(url.searchParams.get('client_id')).toBe(idp.clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(callback('hospital'));
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(url.searchParams.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(url.searchParams.get('scope')).toBe('openid profile email');
    // The state is kept by digest only: the value itself is nowhere in Redis.
    const digest = createHash('sha256').update(url.searchParams.get('state')!).digest('base64url');
    expect(await t.redis.exists(t.keyspace.federationState(digest))).toBe(1);
    expect(await t.redis.ttl(t.keyspace.federationState(digest))).toBeGreaterThan(500);
  });
});

describe('a linked sign-in completes the authorization', () => {
  test('by externalId (oid): our ID token has the user as sub, the upstream amr and auth_time, and our level for its trusted multi-factor', async () => {
    const authTime = Math.floor(Date.now() / 1000) - 120;
    const p = await person({
      scim: { externalId: 'oid-aaa-1' },
      claims: { oid: 'oid-aaa-1', preferred_username: 'someone.else@example.org' },
      amr: ['pwd', 'mfa'],
      acr: 'urn:test:mfa',
      authTime,
    });
    const { result, events } = await recordedBy(t, () => signInThrough('hospital', 'General Hospital', p.sub));
    expect(result.idToken.sub).toBe(p.id);
    expect(result.idToken.amr).toEqual(['pwd', 'mfa']);
    // `acr` states this server's level (the upstream's words are in the audit trail, below): AAL2,
    // as the upstream did multi-factor and the provider's configuration trusts it.
    expect(result.idToken.acr).toBe(ACR.aal2);
    expect(result.idToken.auth_time).toBe(authTime);

    const linked = events.find((e) => localCodes(e).includes('identity-linked'))!;
    expectValid(linked);
    expect(userIdOf(linked)).toBe(p.id);
    const success = events.find((e) => isFederated(e) && !failed(e))!;
    expectValid(success);
    expect(userIdOf(success)).toBe(p.id);
    const upstream = success.entity!.find((en) => en.what?.identifier?.system === idp.issuer)!;
    expect(upstream.what!.identifier!.value).toBe(p.sub);
    expect(upstream.detail).toEqual(
      expect.arrayContaining([
        { type: 'provider', valueString: 'hospital' },
        { type: 'amr', valueString: 'pwd mfa' },
      ]),
    );
    // The audit events come before the authorization's own.
    expect(events.indexOf(success)).toBeLessThan(events.findIndex((e) => localCodes(e).includes('token-issued')));

    // A second sign-in is pinned to the same subject: no new link event.
    const again = await recordedBy(t, () => signInThrough('hospital', 'General Hospital', p.sub));
    expect(again.result.idToken.sub).toBe(p.id);
    expect(again.events.some((e) => localCodes(e).includes('identity-linked'))).toBe(false);
  });

  test('by userName, without regard to case', async () => {
    const p = await person({ claims: {} });
    idp.users.get(p.sub)!.claims = { preferred_username: p.userName.toUpperCase() };
    const { idToken } = await signInThrough('hospital', 'General Hospital', p.sub);
    expect(idToken.sub).toBe(p.id);
    expect(idToken.amr).toBeUndefined();
  });

  test('by a verified email address', async () => {
    const email = `dr.${counter}@hospital.example.org`;
    const p = await person({
      scim: { emails: [{ value: email, type: 'work' }] },
      claims: { email: email.toUpperCase(), email_verified: true },
    });
    const { idToken } = await signInThrough('hospital', 'General Hospital', p.sub);
    expect(idToken.sub).toBe(p.id);
  });
});

describe('refused', () => {
  test('an unverified email address links nobody', async () => {
    const email = `unverified.${counter}@hospital.example.org`;
    const p = await person({ scim: { emails: [{ value: email }] }, claims: { email, email_verified: false } });
    const { result, events } = await recordedBy(t, () => tripUpstream('hospital', 'General Hospital', p.sub));
    const page = await browseFederated(result);
    expect(page.status).toBe(403);
    expect(page.text).toContain('Your General Hospital account cannot be used to sign in here.');
    expect(refusal([...events, ...page.events], 'email_unverified')).toBeDefined();
  });

  test('an unknown user (JIT off): a generic page, audited without an account', async () => {
    const sub = upstreamOnly({ oid: 'nobody-here', preferred_username: 'nobody-here', email: 'nobody@example.org', email_verified: true });
    const trip = await tripUpstream('hospital', 'General Hospital', sub);
    const page = await browseFederated(trip);
    expect(page.status).toBe(403);
    expect(page.text).toContain('role="alert"');
    const event = refusal(page.events, 'unknown_user');
    expect(event.agent.some((a) => a.who?.display === 'unknown account')).toBe(true);
    expect(event.entity![0]!.what!.identifier).toEqual({ system: idp.issuer, value: sub });
    expect(await users.findBy('userName', 'nobody-here')).toEqual([]);
  });

  test('a disabled user, through any provider', async () => {
    const p = await person({ scim: { active: false, externalId: `off-${counter}` }, claims: { oid: `off-${counter}` } });
    const page = await browseFederated(await tripUpstream('hospital', 'General Hospital', p.sub));
    expect(page.status).toBe(403);
    expect(userIdOf(refusal(page.events, 'disabled_user'))).toBe(p.id);
  });

  test('an ambiguous match (two users with the externalId)', async () => {
    const oid = `twice-${counter}`;
    const p = await person({ scim: { externalId: oid }, claims: { oid } });
    await users.create({ userName: `${p.userName}-twin`, externalId: oid });
    const page = await browseFederated(await tripUpstream('hospital', 'General Hospital', p.sub));
    expect(page.status).toBe(403);
    refusal(page.events, 'ambiguous_match');
  });

  test('a linked user reached through another upstream subject (an upstream account renamed to their name)', async () => {
    const p = await person({ claims: {} });
    idp.users.get(p.sub)!.claims = { preferred_username: p.userName };
    await signInThrough('byname', 'By Name', p.sub);
    // Another upstream account now carries the same user name.
    const impostor = upstreamOnly({ preferred_username: p.userName });
    const page = await browseFederated(await tripUpstream('byname', 'By Name', impostor));
    expect(page.status).toBe(403);
    const event = refusal(page.events, 'subject_mismatch');
    expect(userIdOf(event)).toBe(p.id);
    // The real one still signs in.
    expect((await signInThrough('byname', 'By Name', p.sub)).idToken.sub).toBe(p.id);
  });

  test('an upstream subject linked to one user cannot become another (renamed to their name)', async () => {
    const a = await person({ claims: {} });
    idp.users.get(a.sub)!.claims = { preferred_username: a.userName };
    await signInThrough('byname', 'By Name', a.sub);
    const b = await person({ claims: {} });
    idp.users.get(a.sub)!.claims = { preferred_username: b.userName };
    const page = await browseFederated(await tripUpstream('byname', 'By Name', a.sub));
    expect(page.status).toBe(403);
    expect(userIdOf(refusal(page.events, 'subject_mismatch'))).toBe(b.id);
  });

  test('an upstream error response goes back to the sign-in page with a message', async () => {
    const { agent, page: signIn } = await openSignIn();
    const start = await agent.get(buttonHref(signIn.text, 'General Hospital')).set('Accept', 'text/html');
    idp.refuseNext('access_denied');
    const back = await throughUpstream(start.headers.location!);
    expect(back.searchParams.get('error')).toBe('access_denied');
    const { result: cb, events } = await recordedBy(t, () => agent.get(`${back.pathname}${back.search}`).set('Accept', 'text/html'));
    const event = refusal(events, 'upstream_error');
    expect(event.entity![0]!.detail).toEqual(expect.arrayContaining([{ type: 'upstream_error', valueString: 'access_denied' }]));
    expect(JSON.stringify(event)).not.toContain('refused by the test');
    expect(cb.status).toBe(303);
    const page = await agent.get(cb.headers.location!).set('Accept', 'text/html');
    expect(page.status).toBe(400);
    expect(page.text).toContain('Sign-in with General Hospital was cancelled or not allowed.');
    expect(page.text).toContain('<label for="password">');
  });

  test('a replayed callback (the same state twice) is refused the second time', async () => {
    const p = await person({ scim: { externalId: `replay-${counter}` }, claims: { oid: `replay-${counter}` } });
    const trip = await tripUpstream('hospital', 'General Hospital', p.sub);
    expect(trip.callback.status).toBe(303);
    const { result: again, events } = await recordedBy(t, () =>
      trip.agent.get(`${trip.callbackUrl.pathname}${trip.callbackUrl.search}`).set('Accept', 'text/html'),
    );
    expect(again.status).toBe(400);
    expect(again.text).toContain('expired or was already used');
    refusal(events, 'bad_state');
    // The hand-over is single-use too.
    await browse(trip.agent, trip.callback);
    const reused = await trip.agent.get(trip.callback.headers.location!).set('Accept', 'text/html');
    expect(reused.status).toBe(400);
  });

  test('an unknown state, and a state of another provider', async () => {
    const { result, events } = await recordedBy(t, () =>
      supertest(t.app.callback()).get('/federation/hospital/callback?code=abc&state=made-up').set('Accept', 'text/html'),
    );
    expect(result.status).toBe(400);
    expect(result.text).not.toMatch(/stack|Error:/);
    refusal(events, 'bad_state');

    const { agent, page } = await openSignIn();
    const start = await agent.get(buttonHref(page.text, 'General Hospital')).set('Accept', 'text/html');
    const state = new URL(start.headers.location!).searchParams.get('state')!;
    const crossed = await agent.get(`/federation/jit/callback?code=abc&state=${state}`).set('Accept', 'text/html');
    expect(crossed.status).toBe(400);
  });

  test("another browser cannot finish someone's sign-in (the interaction cookie is checked)", async () => {
    const p = await person({ scim: { externalId: `csrf-${counter}` }, claims: { oid: `csrf-${counter}` } });
    const trip = await tripUpstream('hospital', 'General Hospital', p.sub);
    const { result, events } = await recordedBy(t, () =>
      supertest(t.app.callback()).get(trip.callback.headers.location!).set('Accept', 'text/html'),
    );
    expect(result.status).toBe(400);
    refusal(events, 'bad_state');
    expect(events.some((e) => isFederated(e) && !failed(e))).toBe(false);
  });

  test('a tampered nonce (the ID token answers another) is refused', async () => {
    const p = await person({ scim: { externalId: `nonce-${counter}` }, claims: { oid: `nonce-${counter}` } });
    const { agent, page } = await openSignIn();
    const start = await agent.get(buttonHref(page.text, 'General Hospital')).set('Accept', 'text/html');
    const state = new URL(start.headers.location!).searchParams.get('state')!;
    const key = t.keyspace.federationState(createHash('sha256').update(state).digest('base64url'));
    const stored = JSON.parse((await t.redis.get(key))!) as Record<string, unknown>;
    await t.redis.set(key, JSON.stringify({ ...stored, nonce: 'not-the-nonce-that-was-sent' }), 'KEEPTTL');
    idp.signInAs(p.sub);
    const back = await throughUpstream(start.headers.location!);
    const { result, events } = await recordedBy(t, () => agent.get(`${back.pathname}${back.search}`).set('Accept', 'text/html'));
    refusal(events, 'invalid_response');
    const shown = await agent.get(result.headers.location!).set('Accept', 'text/html');
    expect(shown.status).toBe(400);
    expect(shown.text).toContain('could not be verified');
  });

  test('a provider whose tokens name another issuer than it advertises', async () => {
    const p = await person({ scim: { externalId: `iss-${counter}` }, claims: { oid: `iss-${counter}` } });
    // With the authorization response's `iss`: refused at the response.
    const withIss = await recordedBy(t, () => tripUpstream('mis', 'Impostor', p.sub));
    expect(withIss.result.callbackUrl.searchParams.get('iss')).toBe(idp.issuer);
    refusal(withIss.events, 'invalid_response');
    // Without it (stripped in transit): refused at the ID token's `iss`.
    const { agent, page } = await openSignIn();
    const start = await agent.get(buttonHref(page.text, 'Impostor')).set('Accept', 'text/html');
    idp.signInAs(p.sub);
    const back = await throughUpstream(start.headers.location!);
    back.searchParams.delete('iss');
    const { result, events } = await recordedBy(t, () => agent.get(`${back.pathname}${back.search}`).set('Accept', 'text/html'));
    refusal(events, 'invalid_response');
    expect((await agent.get(result.headers.location!).set('Accept', 'text/html')).status).toBe(400);
    expect(events.some((e) => isFederated(e) && !failed(e))).toBe(false);
  });

  test('an identity provider that cannot be reached: a readable 502 page, audited', async () => {
    const { agent, page } = await openSignIn();
    const { result, events } = await recordedBy(t, () => agent.get(buttonHref(page.text, 'Down IdP')).set('Accept', 'text/html'));
    expect(result.status).toBe(502);
    expect(result.headers['content-type']).toMatch(/^text\/html/);
    expect(result.text).toContain('The identity provider (Down IdP) could not be reached.');
    refusal(events, 'upstream_unreachable');
  });
});

describe('just-in-time users', () => {
  test('JIT creates an active user with only the allowed attributes: never roles, even when the upstream sends them', async () => {
    const oid = `jit-${counter}-${Date.now()}`;
    const sub = upstreamOnly({
      oid,
      preferred_username: `new.${oid}@hospital.example.org`,
      email: `new.${oid}@hospital.example.org`,
      email_verified: true,
      name: 'New Person',
      given_name: 'New',
      family_name: 'Person',
      roles: ['admin', 'break-the-glass'],
      fhirUser: 'Practitioner/evil',
    });
    const { result, events } = await recordedBy(t, () => signInThrough('jit', 'JIT Provider', sub));
    const [user] = await users.findBy('externalId', oid);
    expect(user).toBeDefined();
    expect(result.idToken.sub).toBe(user!.id);
    expect(user!.active).toBe(true);
    expect(user!.userName).toBe(`new.${oid}@hospital.example.org`);
    expect(user!.emails).toEqual([{ value: `new.${oid}@hospital.example.org`, type: 'work', primary: true }]);
    expect(user!.name).toEqual({ givenName: 'New', familyName: 'Person' });
    expect(user![SMART_USER_SCHEMA]).toBeUndefined();
    expect(user!.roles).toBeUndefined();
    expect(await t.redis.hget(t.keyspace.scimUser(user!.id), 'pw')).toBeNull();
    expect(await users.effectiveRoles(user!.id)).toEqual([]);
    const created = events.find((e) => localCodes(e).includes('user-provisioned'))!;
    expectValid(created);
    expect(created.action).toBe('C');
    // Signing in again finds the same user.
    expect((await signInThrough('jit', 'JIT Provider', sub)).idToken.sub).toBe(user!.id);
  });

  test('an unverified email is not given to a JIT user', async () => {
    const oid = `jit-unverified-${counter}-${Date.now()}`;
    const sub = upstreamOnly({ oid, preferred_username: oid, email: `${oid}@example.org`, email_verified: false });
    await signInThrough('jit', 'JIT Provider', sub);
    const [user] = await users.findBy('externalId', oid);
    expect(user!.emails).toBeUndefined();
  });
});

describe('the test upstream (for browsers)', () => {
  test('without a chosen account it shows a form whose post signs in', async () => {
    const p = await person({ scim: { externalId: `form-${counter}` }, claims: { oid: `form-${counter}` } });
    const { agent, page } = await openSignIn();
    const start = await agent.get(buttonHref(page.text, 'General Hospital')).set('Accept', 'text/html');
    idp.signInAs(undefined);
    const upstream = supertest.agent(idp.issuer);
    let res = await upstream.get(new URL(start.headers.location!).pathname + new URL(start.headers.location!).search);
    while (res.status === 303 || res.status === 302) res = await upstream.get(new URL(res.headers.location!, idp.issuer).pathname);
    expect(res.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(res.text)![1]!;
    res = await upstream.post(action).type('form').send({ sub: p.sub });
    let location = new URL(res.headers.location!, idp.issuer);
    while (location.origin === idp.issuer) {
      res = await upstream.get(`${location.pathname}${location.search}`);
      location = new URL(res.headers.location!, idp.issuer);
    }
    const handed = await agent.get(`${location.pathname}${location.search}`).set('Accept', 'text/html');
    expect(handed.status).toBe(303);
    expect(handed.headers.location).toMatch(/\/federated\?result=/);
  });
});

describe('password sign-in turned off', () => {
  let only: TestApp;
  beforeAll(async () => {
    const file = providersFile([
      {
        id: 'hospital',
        displayName: 'General Hospital',
        issuer: idp.issuer,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
        link: [{ claim: 'oid', attribute: 'externalId' }],
      },
    ]);
    only = await createTestApp({
      AUTHZ_FEDERATION_PROVIDERS: file,
      AUTHZ_FEDERATION_PASSWORD_SIGN_IN: 'false',
      AUTHZ_FHIR_SERVERS: FHIR_BASE,
    });
    await registerSmartApp(only, { id: CLIENT, name: 'Chart', redirectUri: REDIRECT, scopes: ['openid', 'fhirUser'] });
    await createUserStore(only.config, only.redis, only.keyspace).create({ userName: 'pw-user', password: 'a long enough password 1' });
  });
  afterAll(() => only.close());

  test('the page shows only the buttons, and a password post is refused', async () => {
    const agent = supertest.agent(only.app.callback());
    const { challenge } = pkcePair();
    const first = await agent.get('/authorize').query({
      client_id: CLIENT,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: FHIR_BASE,
    });
    const uid = /^\/interaction\/([^/]+)$/.exec(first.headers.location!)![1]!;
    const page = await agent.get(first.headers.location!).set('Accept', 'text/html');
    expect(page.status).toBe(200);
    expect(page.text).toContain('Sign in with General Hospital');
    expect(page.text).not.toContain('<label for="password">');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const { events, result } = await recordedBy(only, () =>
      agent
        .post(`/interaction/${uid}/login`)
        .type('form')
        .set('Accept', 'text/html')
        .send({ csrf, username: 'pw-user', password: 'a long enough password 1' }),
    );
    expect(result.status).toBe(403);
    expect(result.text).toContain('Password sign-in is not offered here.');
    expect(events.some((e) => e.outcome === '0')).toBe(false);
  });
});

/** Follows a trip's callback redirect to the interaction page, recording the events it causes. */
async function browseFederated(trip: Trip): Promise<supertest.Response & { events: AuditEvent[] }> {
  expect(trip.callback.status).toBe(303);
  const { result, events } = await recordedBy(t, () => trip.agent.get(trip.callback.headers.location!).set('Accept', 'text/html'));
  return Object.assign(result, { events });
}
