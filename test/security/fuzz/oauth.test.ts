/*
 * Fuzzing the OAuth/OpenID endpoints: authorization (GET and POST), token (every grant type and
 * client authentication), introspection, revocation, registration and its management, userinfo,
 * the EHR launch API and discovery. Properties: see properties.ts.
 */
import fc from 'fast-check';
import { CLIENTS, FHIR_BASE, REDIRECT_URI, createFuzzWorld, type FuzzWorld } from './world.js';
import { fuzz, reportFigures, timeoutFor } from './properties.js';
import {
  VALID_ASSERTION,
  acceptHeader,
  authorizationHeader,
  contentType,
  encodeParams,
  formBody,
  garbageJwt,
  hostile,
  mutatedJson,
  mutatedParams,
  jsonBody,
  pct,
  type Params,
} from './arbitraries.js';
import { basic, sendRaw } from './send.js';

let w: FuzzWorld;

beforeAll(async () => {
  w = await createFuzzWorld(11);
});
afterAll(async () => {
  reportFigures('oauth');
  await w.close();
});

const FORM = 'application/x-www-form-urlencoded';

const authorizeParams = {
  client_id: CLIENTS.publicApp,
  response_type: 'code',
  redirect_uri: REDIRECT_URI,
  scope: 'openid fhirUser launch/patient patient/*.rs',
  state: 'st-1',
  aud: FHIR_BASE,
  code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  code_challenge_method: 'S256',
  launch: 'abc',
  prompt: 'consent',
  response_mode: 'query',
  nonce: 'n',
  request: 'x',
};

/** Replaces the placeholder with a freshly signed assertion of the admin client. */
async function withAssertion(params: Params): Promise<string> {
  const out: Params = [];
  for (const [k, v] of params) out.push([k, v === VALID_ASSERTION ? await w.assertion() : v]);
  return encodeParams(out);
}

describe('OAuth endpoints: no 5xx, no internals, no state change on refusal', () => {
  test(
    'GET /authorize',
    () =>
      fuzz(w, 'GET /authorize', fc.tuple(mutatedParams(authorizeParams), acceptHeader), ([params, accept]) =>
        sendRaw(w.t.request, { method: 'get', path: `/authorize?${encodeParams(params)}`, headers: { Accept: accept } }),
      ),
    timeoutFor(),
  );

  test(
    'POST /authorize',
    () =>
      fuzz(w, 'POST /authorize', fc.tuple(formBody(mutatedParams(authorizeParams)), contentType), ([body, type]) =>
        sendRaw(w.t.request, { method: 'post', path: '/authorize', headers: { 'Content-Type': type ?? FORM }, body }),
      ),
    timeoutFor(),
  );

  test(
    'POST /token client_credentials with private_key_jwt (valid, garbage and mutated assertions)',
    () =>
      fuzz(
        w,
        'POST /token client_credentials',
        mutatedParams(
          {
            grant_type: 'client_credentials',
            scope: 'system/*.rs',
            resource: FHIR_BASE,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: VALID_ASSERTION,
            client_id: CLIENTS.admin,
            purpose_of_use: 'TREAT',
          },
          fc.oneof(garbageJwt, fc.constant(VALID_ASSERTION)),
        ),
        async (params) =>
          sendRaw(w.t.request, { method: 'post', path: '/token', headers: { 'Content-Type': FORM }, body: await withAssertion(params) }),
      ),
    timeoutFor(),
  );

  test(
    'POST /token authorization_code, refresh_token and unknown grants, every client authentication',
    () =>
      fuzz(
        w,
        'POST /token code/refresh',
        fc.tuple(
          mutatedParams(
            {
              grant_type: 'authorization_code',
              code: 'not-a-code',
              redirect_uri: REDIRECT_URI,
              code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
              client_id: CLIENTS.confidential,
              client_secret: CLIENTS.confidentialSecret,
              refresh_token: 'not-a-refresh-token',
              scope: 'patient/*.rs',
            },
            fc.constantFrom(
              'refresh_token',
              'authorization_code',
              'urn:ietf:params:oauth:grant-type:device_code',
              'password',
              'implicit',
              CLIENTS.publicApp,
            ),
          ),
          fc.oneof(fc.constant(undefined), fc.constant(basic(CLIENTS.confidential, CLIENTS.confidentialSecret)), authorizationHeader),
          contentType,
        ),
        ([params, auth, type]) =>
          sendRaw(w.t.request, {
            method: 'post',
            path: '/token',
            headers: { 'Content-Type': type ?? FORM, Authorization: auth },
            body: encodeParams(params),
          }),
      ),
    timeoutFor(),
  );

  test(
    'GET and POST /userinfo',
    () =>
      fuzz(
        w,
        '/userinfo',
        fc.tuple(
          fc.constantFrom('get', 'post') as fc.Arbitrary<'get' | 'post'>,
          fc.oneof(fc.constant(`Bearer ${w.tokens.patientApp}`), authorizationHeader),
          formBody(mutatedParams({ access_token: w.tokens.patientApp })),
          acceptHeader,
        ),
        ([method, auth, body, accept]) =>
          sendRaw(w.t.request, { method, path: '/userinfo', headers: { Authorization: auth, Accept: accept, 'Content-Type': FORM }, body }),
      ),
    timeoutFor(),
  );

  test(
    'POST /introspect (resource server and backend callers)',
    () =>
      fuzz(
        w,
        'POST /introspect',
        fc.tuple(
          mutatedParams(
            { token: w.tokens.patientApp, token_type_hint: 'access_token' },
            fc.oneof(garbageJwt, fc.constantFrom(w.tokens.scim, 'refresh_token', 'jwt')),
          ),
          fc.oneof(fc.constant(basic(CLIENTS.resourceServer, CLIENTS.resourceServerSecret)), authorizationHeader),
          acceptHeader,
        ),
        ([params, auth, accept]) =>
          sendRaw(w.t.request, {
            method: 'post',
            path: '/introspect',
            headers: { Authorization: auth, Accept: accept, 'Content-Type': FORM },
            body: encodeParams(params),
          }),
      ),
    timeoutFor(),
  );

  test(
    'POST /api/launch (EHR launcher)',
    () =>
      fuzz(
        w,
        'POST /api/launch',
        fc.tuple(
          jsonBody(
            mutatedJson({
              patient: 'pat-1',
              encounter: 'enc-1',
              aud: FHIR_BASE,
              user: w.userId,
              need_patient_banner: true,
              smart_style_url: 'https://ehr.example.org/style.json',
              intent: 'reconcile-medications',
              tenant: 't1',
              fhirContext: [{ reference: 'Observation/o-1' }, { canonical: 'http://example.org/Questionnaire/q|1', type: 'Questionnaire' }],
            }),
          ),
          fc.oneof(
            { weight: 4, arbitrary: fc.constant(basic(CLIENTS.launcher, CLIENTS.launcherSecret)) },
            { weight: 1, arbitrary: authorizationHeader },
          ),
          fc.oneof(fc.constant('application/json'), contentType),
        ),
        ([body, auth, type]) =>
          sendRaw(w.t.request, { method: 'post', path: '/api/launch', headers: { Authorization: auth, 'Content-Type': type }, body }),
      ),
    timeoutFor(),
  );

  test(
    'POST /register (RFC 7591) with an initial access token',
    () =>
      fuzz(
        w,
        'POST /register',
        fc.tuple(
          jsonBody(
            mutatedJson({
              client_name: 'Fuzzed',
              smart_client_kind: 'public_app',
              redirect_uris: ['https://fuzz.example.org/cb'],
              smart_scopes: ['openid', 'launch/patient', 'patient/*.rs'],
              fhir_servers: [FHIR_BASE],
              token_endpoint_auth_method: 'none',
              grant_types: ['authorization_code', 'refresh_token'],
              jwks: { keys: [{ kty: 'EC', crv: 'P-384', x: 'x', y: 'y', kid: 'k' }] },
              logo_uri: 'https://fuzz.example.org/logo.png',
            }),
          ),
          fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${w.initialAccessToken}`) }, { weight: 1, arbitrary: authorizationHeader }),
          fc.oneof(fc.constant('application/json'), contentType),
        ),
        ([body, auth, type]) =>
          sendRaw(w.t.request, { method: 'post', path: '/register', headers: { Authorization: auth, 'Content-Type': type }, body }),
      ),
    timeoutFor(),
  );

  test(
    'GET, PUT and DELETE /register/:id (RFC 7592)',
    () =>
      fuzz(
        w,
        '/register/:id',
        fc.tuple(
          fc.constantFrom('get', 'put', 'delete') as fc.Arbitrary<'get' | 'put' | 'delete'>,
          fc.oneof(fc.constantFrom(CLIENTS.publicApp, CLIENTS.admin, 'nope'), hostile.map(pct)),
          authorizationHeader,
          jsonBody(
            mutatedJson({
              client_id: CLIENTS.publicApp,
              smart_client_kind: 'public_app',
              redirect_uris: [REDIRECT_URI],
              smart_scopes: ['system/*.cruds'],
            }),
          ),
        ),
        ([method, id, auth, body]) =>
          sendRaw(w.t.request, {
            method,
            path: `/register/${id}`,
            headers: { Authorization: auth, 'Content-Type': 'application/json' },
            body,
          }),
      ),
    timeoutFor(),
  );

  test(
    'discovery documents and JWKS',
    () =>
      fuzz(
        w,
        'discovery',
        fc.tuple(
          fc.constantFrom(
            '/.well-known/openid-configuration',
            '/.well-known/smart-configuration',
            '/.well-known/jwks.json',
            '/.well-known/oauth-authorization-server',
            '/fhir/.well-known/smart-configuration',
          ),
          fc.constantFrom('get', 'post', 'options', 'head') as fc.Arbitrary<'get'>,
          hostile,
          acceptHeader,
        ),
        ([path, method, q, accept]) => sendRaw(w.t.request, { method, path: `${path}?${pct(q)}=${pct(q)}`, headers: { Accept: accept } }),
      ),
    timeoutFor(),
  );

  // Last: a successful revocation ends the seeded tokens the other properties use.
  test(
    'POST /revoke',
    () =>
      fuzz(
        w,
        'POST /revoke',
        fc.tuple(
          mutatedParams(
            { token: 'not-a-token', token_type_hint: 'refresh_token', client_id: CLIENTS.confidential },
            fc.oneof(garbageJwt, fc.constantFrom('access_token', w.tokens.scim)),
          ),
          fc.oneof(
            fc.constant(basic(CLIENTS.confidential, CLIENTS.confidentialSecret)),
            fc.constant(basic(CLIENTS.resourceServer, CLIENTS.resourceServerSecret)),
            authorizationHeader,
          ),
        ),
        ([params, auth]) =>
          sendRaw(w.t.request, {
            method: 'post',
            path: '/revoke',
            headers: { Authorization: auth, 'Content-Type': FORM },
            body: encodeParams(params),
          }),
      ),
    timeoutFor(),
  );
});
