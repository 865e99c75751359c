/*
 * Fuzzing what a browser sends: the interaction forms (login, abort, patient, encounter, consent)
 * against a live interaction, with and without its cookies and CSRF token; the management pages
 * and logout; and any method, path and headers (Content-Type, Authorization, Cookie, Accept,
 * X-Forwarded-*) on every route. Properties: see properties.ts.
 */
import fc from 'fast-check';
import supertest from 'supertest';
import { CLIENTS, FHIR_BASE, REDIRECT_URI, USER, createFuzzWorld, type FuzzWorld } from './world.js';
import { fuzz, reportFigures, timeoutFor } from './properties.js';
import {
  acceptHeader,
  authorizationHeader,
  contentType,
  cookieHeader,
  encodeParams,
  formBody,
  forwardedHeaders,
  headerText,
  hostile,
  mutatedParams,
  pct,
} from './arbitraries.js';
import { sendRaw, type Method } from './send.js';
import { csrfFrom, pkcePair } from '../../support/smart-flow.js';

let w: FuzzWorld;

beforeAll(async () => {
  w = await createFuzzWorld(13);
});
afterAll(async () => {
  reportFigures('browser');
  await w.close();
});

/** A browser at the login page of a new authorization: its cookies, the interaction uid and the page's CSRF token. */
async function atLoginPage() {
  const agent = supertest.agent(w.t.app.callback());
  const first = await agent.get('/authorize').query({
    client_id: CLIENTS.publicApp,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid fhirUser launch/patient patient/*.rs',
    state: 's',
    aud: FHIR_BASE,
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
  });
  const uid = /^\/interaction\/([^/?]+)$/.exec(first.headers.location ?? '')?.[1];
  if (!uid) throw new Error(`authorize answered ${first.status} ${first.headers.location ?? first.text.slice(0, 200)}`);
  const page = await agent.get(`/interaction/${uid}`).set('Accept', 'text/html');
  return { agent, uid, csrf: csrfFrom(page.text) };
}

const ACTIONS = ['login', 'abort', 'consent', 'patient', 'patient-search', 'encounter'];

describe('browser-facing routes: no 5xx, no internals, no state change on refusal', () => {
  test(
    'interaction forms with and without cookies and CSRF',
    () =>
      fuzz(
        w,
        'POST /interaction/:uid/*',
        fc.record({
          action: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ACTIONS) }, { weight: 1, arbitrary: hostile.map(pct) }),
          uid: fc.constantFrom('live', 'live', 'live', 'other', '%00', '..'),
          cookies: fc.constantFrom('kept', 'kept', 'none', 'forged'),
          form: mutatedParams({
            csrf: 'CSRF',
            username: USER.userName,
            password: USER.password,
            decision: 'allow',
            scope: 'patient/*.rs',
            patient: 'pat-1',
            encounter: 'none',
            name: 'Smith',
            birthdate: '1970-01-01',
            identifier: 'x',
          }),
          forged: cookieHeader,
          origin: fc.option(fc.oneof(fc.constant('http://localhost:3000'), fc.webUrl(), headerText)),
          fetchSite: fc.option(fc.constantFrom('same-origin', 'cross-site', 'none', 'same-site')),
          type: fc.oneof({ weight: 4, arbitrary: fc.constant('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: contentType }),
        }),
        async (input) => {
          const live = await atLoginPage();
          const uid = input.uid === 'live' ? live.uid : input.uid;
          const body = encodeParams(input.form.map(([k, v]) => [k, v === 'CSRF' ? live.csrf : v]));
          const client = input.cookies === 'kept' ? live.agent : w.t.request;
          return sendRaw(client, {
            method: 'post',
            path: `/interaction/${uid}/${input.action}`,
            headers: {
              'Content-Type': input.type,
              Accept: 'text/html',
              Cookie: input.cookies === 'forged' ? input.forged : undefined,
              Origin: input.origin ?? undefined,
              'Sec-Fetch-Site': input.fetchSite ?? undefined,
            },
            body,
          });
        },
      ),
    timeoutFor(undefined, 300),
  );

  test(
    'management pages, their forms and logout',
    () =>
      fuzz(
        w,
        '/manage and /logout',
        fc.tuple(
          fc.constantFrom<[Method, string]>(
            ['get', '/manage'],
            ['get', '/manage/callback'],
            ['get', '/manage/signed-out'],
            ['get', '/manage/disclosures'],
            ['get', '/manage/disclosures.csv'],
            ['get', '/manage/disclosures.json'],
            ['post', '/manage/consents/ID/withdraw'],
            ['post', '/manage/logout'],
            ['get', '/manage/security'],
            ['get', '/manage/security/authenticator-app'],
            ['post', '/manage/security/authenticator-app'],
            ['get', '/manage/security/passkey'],
            ['post', '/manage/security/passkey'],
            ['post', '/manage/security/factors/ID/remove'],
            ['post', '/manage/security/recovery-codes'],
            ['get', '/logout'],
            ['post', '/logout'],
            ['get', '/session/end'],
            ['get', '/interaction/ID'],
          ),
          hostile.map(pct),
          mutatedParams({
            code: 'x',
            state: 'y',
            iss: 'http://localhost:3000',
            csrf: 'z',
            xsrf: 'z',
            post_logout_redirect_uri: REDIRECT_URI,
            id_token_hint: 'x',
            client_id: CLIENTS.publicApp,
            logout: 'yes',
            from: '2024-01-01',
            to: '2024-12-31',
            page: '2',
            label: 'My phone',
            response: '{"id":"x"}',
          }),
          cookieHeader,
          acceptHeader,
        ),
        ([[method, path], id, params, cookie, accept]) =>
          sendRaw(w.t.request, {
            method,
            path: `${path.replace('ID', id)}${method === 'get' ? `?${encodeParams(params)}` : ''}`,
            headers: { Cookie: cookie, Accept: accept, 'Content-Type': 'application/x-www-form-urlencoded' },
            body: method === 'post' ? encodeParams(params) : undefined,
          }),
      ),
    timeoutFor(),
  );

  test(
    'any method, path and headers',
    () =>
      fuzz(
        w,
        'any route, any headers',
        fc.record({
          method: fc.constantFrom<Method>('get', 'post', 'put', 'patch', 'delete', 'head', 'options'),
          path: fc.oneof(
            {
              weight: 3,
              arbitrary: fc.constantFrom(
                '/authorize',
                '/token',
                '/introspect',
                '/revoke',
                '/register',
                '/register/fuzz-app',
                '/userinfo',
                '/api/launch',
                '/interaction/x/login',
                '/scim/v2/Users',
                '/scim/v2/Groups',
                '/fhir/Consent',
                '/fhir/AuditEvent',
                '/fhir/AuditEvent/$export',
                '/manage',
                '/logout',
                '/.well-known/openid-configuration',
                '/.well-known/smart-configuration',
                '/.well-known/jwks.json',
                '/healthz',
                '/readyz',
                '/static/app.css',
                '/',
              ),
            },
            { weight: 1, arbitrary: fc.array(hostile.map(pct), { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.join('/')}`) },
            {
              weight: 1,
              arbitrary: fc.constantFrom(
                '//',
                '/%2e%2e/%2e%2e/etc/passwd',
                '/scim/v2/../../token',
                '/token/',
                '/TOKEN',
                '/fhir/Consent/..',
                '/%ZZ',
                '/a?b=%',
              ),
            },
          ),
          query: fc.option(formBody(fc.array(fc.tuple(hostile, hostile), { maxLength: 4 }))),
          headers: fc
            .tuple(forwardedHeaders, contentType, authorizationHeader, cookieHeader, acceptHeader)
            .map(([fwd, type, auth, cookie, accept]): Record<string, string | undefined> => ({
              ...fwd,
              'Content-Type': type,
              Authorization: auth,
              Cookie: cookie,
              Accept: accept,
            })),
          body: fc.option(fc.oneof(hostile, fc.json({ maxDepth: 3 }), formBody(fc.array(fc.tuple(hostile, hostile), { maxLength: 4 })))),
        }),
        ({ method, path, query, headers, body }) =>
          sendRaw(w.t.request, {
            method,
            path: `${path}${query ? `${path.includes('?') ? '&' : '?'}${query}` : ''}`,
            headers,
            ...(body !== null ? { body } : {}),
          }),
        // Found by this property: a forwarded protocol that is not a URL scheme was a 500 at /logout.
        {
          examples: [
            {
              method: 'get',
              path: '/logout',
              query: null,
              headers: { 'X-Forwarded-Proto': ';', 'Content-Type': '', Authorization: 'Bearer ', Cookie: undefined, Accept: undefined },
              body: null,
            },
          ],
        },
      ),
    timeoutFor(),
  );
});
