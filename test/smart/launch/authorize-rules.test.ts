import supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { LaunchStore } from '../../../src/smart/launch/launch-store.js';
import { launchStoreOf, pkcePair, startAuthorization, type AuthorizeParams } from '../../support/smart-flow.js';
import { registerSmartApp } from '../../support/fixtures.js';

const FHIR = 'http://localhost:8080/fhir';
const EAST = 'https://east.example.org/fhir';
const CB = 'https://app.example.org/cb';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: `${FHIR},east=${EAST}` });
  const scopes = ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.rs'];
  await registerSmartApp(t, { id: 'chart', redirectUri: CB, scopes });
  await registerSmartApp(t, { id: 'other-app', redirectUri: CB, scopes });
  await registerSmartApp(t, { id: 'main-only', redirectUri: CB, scopes, fhirServers: [FHIR] });
});
afterAll(() => t.close());

function base(extra: Partial<AuthorizeParams> = {}): AuthorizeParams {
  return { client_id: 'chart', redirect_uri: CB, scope: 'openid fhirUser patient/*.rs', aud: FHIR, ...extra };
}

/** Where the authorization went: an interaction page (it carries on) or back to the app. */
function outcome(res: supertest.Response): { interaction?: string; error?: string; description?: string; code?: string; state?: string } {
  expect([302, 303]).toContain(res.status);
  const location = new URL(res.headers.location!, 'http://as.local');
  const interaction = /^\/interaction\/([^/]+)$/.exec(location.pathname)?.[1];
  if (interaction) return { interaction };
  expect(`${location.origin}${location.pathname}`).toBe(CB);
  // Errors for response types that would use the fragment come back in the fragment.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const get = (n: string) => location.searchParams.get(n) ?? fragment.get(n) ?? undefined;
  return { error: get('error'), description: get('error_description'), code: get('code'), state: get('state') };
}

async function authorize(extra: Partial<AuthorizeParams>) {
  return outcome((await startAuthorization(t, base(extra))).first);
}

describe('aud', () => {
  test('a configured FHIR base carries on to sign-in; one trailing slash is tolerated', async () => {
    expect((await authorize({})).interaction).toBeDefined();
    expect((await authorize({ aud: `${FHIR}/` })).interaction).toBeDefined();
  });

  test('the resource indicator becomes the canonical base named by aud', async () => {
    const { interaction } = await authorize({ aud: `${FHIR}/` });
    const stored = await t.app.Interaction.find(interaction!);
    expect(stored!.params.resource).toBe(FHIR);
  });

  test.each([
    ['an unknown server', 'https://evil.example.org/fhir'],
    ['a prefix of a configured base', 'http://localhost:8080'],
    ['a longer path', `${FHIR}/extra`],
    ['not a URL', 'fhir'],
  ])('%s gets no code: back to the app with invalid_request and the state', async (_name, aud) => {
    const r = await authorize({ aud, state: 'a b&c=d/é' });
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
    expect(r.description).toMatch(/^aud .* is not a FHIR server this app may use$/);
    expect(r.state).toBe('a b&c=d/é');
  });

  test('a FHIR server the client is not registered for gets no code', async () => {
    const r = await authorize({ client_id: 'main-only', aud: EAST });
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
    expect((await authorize({ client_id: 'chart', aud: EAST })).interaction).toBeDefined();
  });

  test('without aud or resource the request is refused', async () => {
    const r = await authorize({ aud: '' });
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
    expect(r.description).toMatch(/^aud is required/);
  });

  test('resource is accepted as a synonym, and must agree with aud when both are sent', async () => {
    expect((await authorize({ aud: '', resource: FHIR })).interaction).toBeDefined();
    expect((await authorize({ aud: `${FHIR}/`, resource: FHIR })).interaction).toBeDefined();
    const r = await authorize({ aud: FHIR, resource: EAST });
    expect(r.error).toBe('invalid_request');
    expect(r.description).toBe('aud and resource must name the same FHIR server');
    const unknown = await authorize({ aud: '', resource: 'https://evil.example.org/fhir' });
    expect(unknown.code).toBeUndefined();
    expect(unknown.error).toBe('invalid_target');
  });
});

describe('launch', () => {
  const ehrScope = 'launch openid fhirUser patient/*.rs';

  test('a live launch made for this app and server carries on to sign-in, without being used up', async () => {
    const launch = await launchStoreOf(t).create({ patient: 'p1', aud: FHIR, clientId: 'chart', createdBy: 'ehr' });
    expect((await authorize({ scope: ehrScope, launch })).interaction).toBeDefined();
    expect(await launchStoreOf(t).get(launch)).toBeDefined();
  });

  test('an unknown launch gets no code', async () => {
    const r = await authorize({ scope: ehrScope, launch: 'A'.repeat(43) });
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
    expect(r.description).toBe('launch is unknown, expired or already used');
  });

  test('a used launch gets no code', async () => {
    const store = launchStoreOf(t);
    const launch = await store.create({ patient: 'p1', createdBy: 'ehr', aud: FHIR });
    await store.consume(launch);
    expect((await authorize({ scope: ehrScope, launch })).description).toBe('launch is unknown, expired or already used');
  });

  test('an expired launch gets no code', async () => {
    const launch = await new LaunchStore(t.redis, t.keyspace, 1).create({ patient: 'p1', createdBy: 'ehr', aud: FHIR });
    await new Promise((r) => setTimeout(r, 1100));
    expect((await authorize({ scope: ehrScope, launch })).description).toBe('launch is unknown, expired or already used');
  });

  test('a launch made for another app gets no code', async () => {
    const launch = await launchStoreOf(t).create({ patient: 'p1', clientId: 'other-app', createdBy: 'ehr', aud: FHIR });
    const r = await authorize({ scope: ehrScope, launch });
    expect(r.code).toBeUndefined();
    expect(r.description).toBe('launch was made for a different app');
  });

  test('a launch made for another FHIR server than aud gets no code', async () => {
    const launch = await launchStoreOf(t).create({ patient: 'p1', aud: EAST, createdBy: 'ehr' });
    const r = await authorize({ scope: ehrScope, launch, aud: FHIR });
    expect(r.code).toBeUndefined();
    expect(r.description).toBe('launch was made for a different FHIR server than aud');
    expect((await authorize({ scope: ehrScope, launch, aud: `${EAST}/` })).interaction).toBeDefined();
  });

  test('the launch scope without a launch parameter is refused, and the reverse', async () => {
    const r = await authorize({ scope: ehrScope });
    expect(r.error).toBe('invalid_request');
    expect(r.description).toBe('the launch scope needs the launch parameter the EHR gave the app');
    const launch = await launchStoreOf(t).create({ patient: 'p1', createdBy: 'ehr', aud: FHIR });
    const reverse = await authorize({ scope: 'openid patient/*.rs', launch });
    expect(reverse.error).toBe('invalid_request');
    expect(reverse.description).toBe('a launch parameter needs the launch scope');
  });
});

describe('the rest of the request', () => {
  test('offline_access and online_access make the request ask for consent, keeping the scope', async () => {
    for (const scope of ['openid offline_access patient/*.rs', 'openid online_access patient/*.rs']) {
      const { interaction } = await authorize({ scope });
      const stored = await t.app.Interaction.find(interaction!);
      expect(String(stored!.params.prompt).split(' ')).toContain('consent');
      expect(String(stored!.params.scope).split(' ')).toEqual(scope.split(' '));
    }
    const withLogin = await authorize({ scope: 'offline_access patient/*.rs', prompt: 'login' });
    expect((await t.app.Interaction.find(withLogin.interaction!))!.params.prompt).toBe('login consent');
  });

  test.each([
    ['plain', { code_challenge_method: 'plain' }],
    ['a missing challenge', { code_challenge: '', code_challenge_method: '' }],
    ['a challenge without method', { code_challenge_method: '' }],
    ['a challenge of the wrong shape', { code_challenge: 'short' }],
  ])('PKCE: %s gets invalid_request and no code', async (_name, pkce) => {
    const r = await authorize(pkce);
    expect(r.code).toBeUndefined();
    expect(r.error).toBe('invalid_request');
  });

  test('a redirect_uri that is not registered exactly gets an error page, never a redirect', async () => {
    for (const redirect of [`${CB}/x`, 'https://app.example.org/c', `${CB}?a=1`, 'https://evil.example.org/cb']) {
      const { first } = await startAuthorization(t, base({ redirect_uri: redirect }));
      expect(first.status).toBe(400);
      expect(first.headers.location).toBeUndefined();
      expect(first.text).toContain('redirect_uri');
    }
  });

  test('response_type other than code is unsupported_response_type', async () => {
    const r = await authorize({ response_type: 'token' });
    expect(r.error).toBe('unsupported_response_type');
    expect(r.code).toBeUndefined();
  });
});

describe('POST /authorize', () => {
  function form(extra: Record<string, string> = {}): Record<string, string> {
    const { challenge } = pkcePair();
    return {
      response_type: 'code',
      client_id: 'chart',
      redirect_uri: CB,
      scope: 'openid fhirUser patient/*.rs',
      aud: FHIR,
      state: 'x y+z',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...extra,
    };
  }

  test('answers 303 to GET /authorize with the same parameters, which then carries on', async () => {
    const agent = supertest.agent(t.app.callback());
    const sent = form();
    const res = await agent.post('/authorize').type('form').send(sent);
    expect(res.status).toBe(303);
    expect(res.headers['cache-control']).toBe('no-store');
    const location = new URL(res.headers.location!, 'http://as.local');
    expect(location.pathname).toBe('/authorize');
    expect(Object.fromEntries(location.searchParams)).toEqual(sent);
    const next = await agent.get(`${location.pathname}${location.search}`);
    expect(outcome(next).interaction).toBeDefined();
  });

  test('errors after the 303 behave as for GET: a bad aud gets no code', async () => {
    const res = await t.request
      .post('/authorize')
      .type('form')
      .send(form({ aud: 'https://evil.example.org/fhir' }));
    const location = new URL(res.headers.location!, 'http://as.local');
    const r = outcome(await t.request.get(`${location.pathname}${location.search}`));
    expect(r.error).toBe('invalid_request');
    expect(r.code).toBeUndefined();
  });

  test('a repeated parameter gets an error page', async () => {
    const res = await t.request
      .post('/authorize')
      .set('Accept', 'text/html')
      .type('form')
      .send(`${new URLSearchParams(form()).toString()}&scope=launch`);
    expect(res.status).toBe(400);
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('repeats the parameter');
  });

  test('a body that is not a form, or too large, is refused', async () => {
    const json = await t.request
      .post('/authorize')
      .set('Accept', 'text/html')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify(form()));
    expect(json.status).toBe(400);
    const big = await t.request
      .post('/authorize')
      .set('Accept', 'text/html')
      .type('form')
      .send(new URLSearchParams(form({ state: 'x'.repeat(10_000) })).toString());
    expect(big.status).toBe(413);
    expect(big.headers.location).toBeUndefined();
  });
});
