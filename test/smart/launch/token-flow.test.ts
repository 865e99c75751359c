import { jest } from '@jest/globals';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { authorizeAndExchange, grantContextsOf, launchStoreOf, type Agent, type AuthorizeParams } from '../../support/smart-flow.js';
import { createPerson, introspect, registerResourceServer, registerSmartApp } from '../../support/fixtures.js';

const FHIR = 'http://localhost:8080/fhir';
const EAST = 'https://east.example.org/fhir';
const CB = 'https://app.example.org/cb';

let t: TestApp;
let drId: string;
let patId: string;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: `${FHIR},east=${EAST}` });
  await registerSmartApp(t, {
    id: 'chart',
    redirectUri: CB,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.rs', 'user/*.rs'],
  });
  await registerSmartApp(t, { id: 'narrow', redirectUri: CB, scopes: ['openid', 'offline_access', 'patient/Observation.rs'] });
  await registerSmartApp(t, {
    id: 'no-refresh',
    redirectUri: CB,
    scopes: ['openid', 'online_access', 'offline_access', 'user/*.rs'],
    metadata: { grant_types: ['authorization_code'] },
  });
  await registerResourceServer(t);
  drId = (await createPerson(t, { fhirUser: 'Practitioner/dr-1', staff: true }, { userName: 'dr.token' })).id;
  patId = (await createPerson(t, { fhirUser: 'Patient/pat-1' }, { userName: 'pat.token' })).id;
});
afterAll(() => t.close());

function refresh(clientId: string, refreshToken: string, scope?: string) {
  return t.request
    .post('/token')
    .type('form')
    .send({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, ...(scope ? { scope } : {}) });
}

function scopeSet(scope: unknown): string[] {
  return String(scope).split(' ').sort();
}

const LAUNCH = {
  patient: 'pat-1',
  encounter: 'enc-9',
  fhirContext: [{ reference: 'ImagingStudy/img-1' }, { canonical: 'http://example.org/Questionnaire/phq9|1.0', type: 'Questionnaire' }],
  need_patient_banner: false,
  smart_style_url: 'https://ehr.example.org/smart-style.json',
  intent: 'reconcile-medications',
  tenant: 'east',
};

async function ehrLaunch(scope: string) {
  const launch = await launchStoreOf(t).create({ ...LAUNCH, aud: EAST, clientId: 'chart', createdBy: 'ehr' });
  const params: AuthorizeParams = { client_id: 'chart', redirect_uri: CB, scope, aud: EAST, launch };
  return { launch, ...(await authorizeAndExchange(t, params, drId)) };
}

async function logout(agent: Agent): Promise<void> {
  const page = await agent.get('/logout');
  expect(page.status).toBe(200);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)?.[1];
  expect(xsrf).toBeDefined();
  const done = await agent.post('/logout/confirm').type('form').send({ xsrf: xsrf!, logout: 'yes' });
  expect([302, 303]).toContain(done.status);
}

describe('EHR launch token response', () => {
  const scope = 'launch openid fhirUser patient/*.rs offline_access';
  let result: Awaited<ReturnType<typeof ehrLaunch>>;
  beforeAll(async () => {
    result = await ehrLaunch(scope);
  });

  test('carries the tokens, the granted scope and every launch context field, never cached', () => {
    const { token } = result;
    expect(token.status).toBe(200);
    expect(token.headers['cache-control']).toBe('no-store');
    expect(token.headers.pragma).toBe('no-cache');
    expect(token.body.token_type).toBe('Bearer');
    expect(typeof token.body.expires_in).toBe('number');
    expect(token.body.expires_in).toBeLessThanOrEqual(3600);
    expect(typeof token.body.access_token).toBe('string');
    expect(typeof token.body.refresh_token).toBe('string');
    expect(typeof token.body.id_token).toBe('string');
    expect(scopeSet(token.body.scope)).toEqual(scopeSet(scope));
    expect(token.body).toMatchObject(LAUNCH);
  });

  test('uses the launch up', async () => {
    expect(await launchStoreOf(t).get(result.launch)).toBeUndefined();
  });

  test('the id_token is RS256, verifies against the published JWKS and names the user with an absolute fhirUser', async () => {
    const idToken = result.token.body.id_token as string;
    expect(decodeProtectedHeader(idToken).alg).toBe('RS256');
    const jwks = (await t.request.get('/.well-known/jwks.json')).body;
    const { payload: claims } = await jwtVerify(idToken, createLocalJWKSet(jwks), {
      issuer: 'http://localhost:3000',
      audience: 'chart',
      algorithms: ['RS256'],
    });
    expect(claims.aud).toBe('chart');
    expect(claims.sub).toBe(drId);
    expect(claims.fhirUser).toBe(`${FHIR}/Practitioner/dr-1`);
  });

  test('introspection shows the same scope, the context and fhirUser', async () => {
    const res = await introspect(t, result.token.body.access_token);
    expect(res.body.active).toBe(true);
    expect(scopeSet(res.body.scope)).toEqual(scopeSet(result.token.body.scope));
    expect(res.body).toMatchObject({ ...LAUNCH, client_id: 'chart', sub: drId, aud: EAST, fhirUser: `${FHIR}/Practitioner/dr-1` });
  });

  test('a refresh answers with the same context and scope, never cached', async () => {
    const res = await refresh('chart', result.token.body.refresh_token);
    expect(res.status).toBe(200);
    expect(res.headers.pragma).toBe('no-cache');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject(LAUNCH);
    expect(scopeSet(res.body.scope)).toEqual(scopeSet(scope));
    expect(typeof res.body.expires_in).toBe('number');
    expect(res.body.refresh_token).not.toBe(result.token.body.refresh_token);
    const again = await introspect(t, res.body.access_token);
    expect(again.body).toMatchObject({ active: true, patient: 'pat-1', encounter: 'enc-9' });
  });

  test('errors from the token endpoint are not cached either', async () => {
    const res = await refresh('chart', 'not-a-refresh-token-at-all-xxxxxxxx');
    expect(res.status).toBe(400);
    expect(res.headers.pragma).toBe('no-cache');
    expect(res.headers['cache-control']).toBe('no-store');
  });
});

describe('refresh scope rules', () => {
  const scope = 'launch openid fhirUser patient/*.rs user/*.rs offline_access';

  test('an equal scope is accepted, a subset narrows, a superset is invalid_scope', async () => {
    const { token } = await ehrLaunch(scope);
    const equal = await refresh('chart', token.body.refresh_token, scope);
    expect(equal.status).toBe(200);
    expect(scopeSet(equal.body.scope)).toEqual(scopeSet(scope));

    const narrow = await refresh('chart', equal.body.refresh_token, 'patient/*.rs offline_access');
    expect(narrow.status).toBe(200);
    expect(scopeSet(narrow.body.scope)).toEqual(['offline_access', 'patient/*.rs']);
    expect(narrow.body.patient).toBe('pat-1');
    expect((await introspect(t, narrow.body.access_token)).body.scope).toBe(narrow.body.scope);

    const wider = await refresh('chart', narrow.body.refresh_token, `${scope} patient/Observation.cruds`);
    expect(wider.status).toBe(400);
    expect(wider.body.error).toBe('invalid_scope');

    // A narrowed refresh does not shrink the grant: the next plain refresh has the full scope.
    const plain = await refresh('chart', narrow.body.refresh_token);
    expect(plain.status).toBe(200);
    expect(scopeSet(plain.body.scope)).toEqual(scopeSet(scope));
  });

  test('reusing a rotated refresh token revokes the whole grant and its context', async () => {
    const { token } = await ehrLaunch(scope);
    const grantId = (await t.app.RefreshToken.find(token.body.refresh_token))!.grantId!;
    expect(await grantContextsOf(t).get(grantId)).toBeDefined();
    const first = await refresh('chart', token.body.refresh_token);
    expect(first.status).toBe(200);
    const reuse = await refresh('chart', token.body.refresh_token);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    expect((await refresh('chart', first.body.refresh_token)).body.error).toBe('invalid_grant');
    expect((await introspect(t, first.body.access_token)).body).toEqual({ active: false });
    await new Promise((r) => setTimeout(r, 50));
    expect(await grantContextsOf(t).get(grantId)).toBeUndefined();
  });

  test('a second exchange of a code revokes the grant and its context', async () => {
    const { token, flow, verifier } = await ehrLaunch('launch openid patient/*.rs');
    const grantId = (await t.app.AccessToken.find(token.body.access_token))!.grantId!;
    const again = await t.request
      .post('/token')
      .type('form')
      .send({ grant_type: 'authorization_code', code: flow.code!, redirect_uri: CB, code_verifier: verifier, client_id: 'chart' });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    expect((await introspect(t, token.body.access_token)).body).toEqual({ active: false });
    await new Promise((r) => setTimeout(r, 50));
    expect(await grantContextsOf(t).get(grantId)).toBeUndefined();
  });
});

describe('offline and online refresh tokens', () => {
  test('online_access gives a refresh token that ends with the session', async () => {
    const { token, flow } = await ehrLaunch('launch openid patient/*.rs online_access');
    expect(scopeSet(token.body.scope)).toContain('online_access');
    expect(typeof token.body.refresh_token).toBe('string');
    const before = await refresh('chart', token.body.refresh_token);
    expect(before.status).toBe(200);
    await logout(flow.agent);
    const after = await refresh('chart', before.body.refresh_token);
    expect(after.status).toBe(400);
    expect(after.body.error).toBe('invalid_grant');
    expect((await introspect(t, before.body.access_token)).body).toEqual({ active: false });
  });

  test('offline_access gives a refresh token that outlives the session', async () => {
    const { token, flow } = await ehrLaunch('launch openid patient/*.rs offline_access');
    await logout(flow.agent);
    const after = await refresh('chart', token.body.refresh_token);
    expect(after.status).toBe(200);
    expect(after.body.patient).toBe('pat-1');
    expect((await introspect(t, after.body.access_token)).body.active).toBe(true);
  });

  test('no refresh scope, or a client without the refresh_token grant, gets no refresh token', async () => {
    const { token } = await ehrLaunch('launch openid patient/*.rs');
    expect(token.body.refresh_token).toBeUndefined();
    const other = await authorizeAndExchange(
      t,
      { client_id: 'no-refresh', redirect_uri: CB, scope: 'openid online_access user/*.rs', aud: FHIR },
      drId,
    );
    expect(other.token.status).toBe(200);
    expect(other.token.body.refresh_token).toBeUndefined();
  });
});

describe('standalone grants', () => {
  test('tenant comes from the FHIR server when the launch names none', async () => {
    const east = await authorizeAndExchange(
      t,
      { client_id: 'chart', redirect_uri: CB, scope: 'openid fhirUser user/*.rs', aud: EAST },
      drId,
    );
    expect(east.token.body.tenant).toBe('east');
    expect(east.token.body.patient).toBeUndefined();
    expect((await introspect(t, east.token.body.access_token)).body.tenant).toBe('east');
    const main = await authorizeAndExchange(
      t,
      { client_id: 'chart', redirect_uri: CB, scope: 'openid fhirUser user/*.rs', aud: FHIR },
      drId,
    );
    expect(main.token.body.tenant).toBeUndefined();
  });

  test('a narrowed grant reaches the token: patient/*.rs for an app that may only read Observations', async () => {
    const { token } = await authorizeAndExchange(
      t,
      { client_id: 'narrow', redirect_uri: CB, scope: 'openid patient/*.rs', aud: FHIR },
      patId,
      { patient: 'pat-1' },
    );
    expect(token.status).toBe(200);
    expect(scopeSet(token.body.scope)).toEqual(['openid', 'patient/Observation.rs']);
    expect(token.body.patient).toBe('pat-1');
  });

  test('v1 requests come back in v1, narrowed too', async () => {
    const { token } = await authorizeAndExchange(
      t,
      { client_id: 'narrow', redirect_uri: CB, scope: 'openid patient/*.read', aud: FHIR },
      patId,
      { patient: 'pat-1' },
    );
    expect(scopeSet(token.body.scope)).toEqual(['openid', 'patient/Observation.read']);
  });

  test('granular scopes keep their query through code, token and refresh', async () => {
    const scope =
      'openid offline_access patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory';
    const { token } = await authorizeAndExchange(t, { client_id: 'chart', redirect_uri: CB, scope, aud: FHIR }, patId, {
      patient: 'pat-1',
    });
    expect(scopeSet(token.body.scope)).toEqual(scopeSet(scope));
    expect(scopeSet((await introspect(t, token.body.access_token)).body.scope)).toEqual(scopeSet(scope));
    const next = await refresh('chart', token.body.refresh_token);
    expect(scopeSet(next.body.scope)).toEqual(scopeSet(scope));
  });

  test('a patient user gets no user/ scopes', async () => {
    const { token } = await authorizeAndExchange(
      t,
      { client_id: 'chart', redirect_uri: CB, scope: 'openid patient/*.rs user/*.rs', aud: FHIR },
      patId,
      { patient: 'pat-1' },
    );
    expect(scopeSet(token.body.scope)).toEqual(['openid', 'patient/*.rs']);
  });
});

describe('scopes_supported', () => {
  test('every advertised app scope can be granted together, each echoed as asked', async () => {
    const { SCOPES_SUPPORTED } = await import('../../../src/smart/discovery/smart-configuration.js');
    const appScopes = SCOPES_SUPPORTED.filter((s) => !s.startsWith('system/'));
    await registerSmartApp(t, { id: 'everything', redirectUri: CB, scopes: appScopes });
    const launch = await launchStoreOf(t).create({ patient: 'pat-1', encounter: 'enc-1', createdBy: 'ehr', aud: FHIR });
    const { token } = await authorizeAndExchange(
      t,
      { client_id: 'everything', redirect_uri: CB, scope: appScopes.join(' '), aud: FHIR, launch },
      drId,
    );
    expect(token.status).toBe(200);
    expect(scopeSet(token.body.scope)).toEqual(scopeSet(appScopes.join(' ')));
    expect(token.body).toMatchObject({ patient: 'pat-1', encounter: 'enc-1' });
    expect(typeof token.body.refresh_token).toBe('string');
  });
});

describe('one grant-context read per token request', () => {
  test('a refresh reads the launch context once for both the token and the response', async () => {
    const { GrantContextStore } = await import('../../../src/oauth/tokens/grant-context.js');
    const flow = await authorizeAndExchange(
      t,
      { client_id: 'chart', redirect_uri: CB, scope: 'openid fhirUser offline_access user/*.rs', aud: FHIR },
      drId,
    );
    const spy = jest.spyOn(GrantContextStore.prototype, 'get');
    try {
      const res = await refresh('chart', flow.token.body.refresh_token);
      expect(res.status).toBe(200);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});
