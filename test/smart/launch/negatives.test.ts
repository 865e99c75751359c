import { createHash } from 'node:crypto';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { browse, followAuthorization, startAuthorization } from '../../support/smart-flow.js';
import { createPerson, registerResourceServer, registerSmartApp } from '../../support/fixtures.js';

// The negative cases SMART test kits send, for a public app (PKCE is its only proof of possession).

const FHIR = 'http://localhost:8080/fhir';
const CB = 'https://app.example.org/cb';
const SCOPES = ['openid', 'fhirUser', 'user/*.rs'];

let t: TestApp;
let userId: string;

beforeAll(async () => {
  t = await createTestApp();
  await registerSmartApp(t, { id: 'neg-app', redirectUri: CB, scopes: SCOPES });
  userId = (await createPerson(t, { fhirUser: 'Practitioner/dr-neg' }, { userName: 'dr.neg' })).id;
  await registerResourceServer(t, { id: 'neg-rs', secret: 'neg-rs-secret' });
});
afterAll(() => t.close());

async function codeAndChallenge(): Promise<{ code: string; verifier: string; challenge: string }> {
  const { agent, first, verifier } = await startAuthorization(t, {
    client_id: 'neg-app',
    redirect_uri: CB,
    scope: SCOPES.join(' '),
    aud: FHIR,
  });
  const flow = await followAuthorization(t, agent, first, userId);
  if (!flow.code) throw new Error(`no code: ${flow.error}`);
  return { code: flow.code, verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function exchange(code: string, verifier?: string) {
  return t.request
    .post('/token')
    .type('form')
    .send({
      grant_type: 'authorization_code',
      code,
      redirect_uri: CB,
      client_id: 'neg-app',
      ...(verifier === undefined ? {} : { code_verifier: verifier }),
    });
}

describe('code exchange negatives', () => {
  test.each([
    ['missing', () => undefined],
    ['blank', () => ''],
    ['wrong', () => 'w'.repeat(43)],
  ])('a %s code_verifier gets no token', async (_name, verifierFor) => {
    const { code } = await codeAndChallenge();
    const res = await exchange(code, verifierFor());
    expect(res.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(res.body.error);
    expect(res.body.access_token).toBeUndefined();
  });

  test('the challenge sent as the verifier gets no token', async () => {
    const { code, challenge } = await codeAndChallenge();
    const res = await exchange(code, challenge);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  test('a used code is refused, and its reuse revokes what it issued', async () => {
    const { code, verifier } = await codeAndChallenge();
    const first = await exchange(code, verifier);
    expect(first.status).toBe(200);
    const again = await exchange(code, verifier);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    const intro = await t.request
      .post('/introspect')
      .set('Authorization', `Basic ${Buffer.from('neg-rs:neg-rs-secret').toString('base64')}`)
      .type('form')
      .send({ token: first.body.access_token });
    expect(intro.body).toEqual({ active: false });
  });
});

describe('authorization request negatives', () => {
  test.each([['patient/Observation.xyz'], ['patient/.rs'], ['user/observation.rs'], ['%%%'], ['patient/Observation.rs?category']])(
    'a malformed scope %j never yields a server error',
    async (scope) => {
      const { agent, first } = await startAuthorization(t, { client_id: 'neg-app', redirect_uri: CB, scope: `openid ${scope}`, aud: FHIR });
      expect(first.status).toBeLessThan(500);
      const stop = await browse(agent, first);
      expect(stop.res.status).toBeLessThan(500);
    },
  );

  test('prompt=none without a session answers login_required at the redirect_uri', async () => {
    const { agent, first } = await startAuthorization(t, {
      client_id: 'neg-app',
      redirect_uri: CB,
      scope: SCOPES.join(' '),
      aud: FHIR,
      prompt: 'none',
      state: 'quiet',
    });
    const stop = await browse(agent, first);
    expect(stop.kind).toBe('app');
    if (stop.kind !== 'app') return;
    expect(stop.error).toBe('login_required');
    expect(stop.location.searchParams.get('state')).toBe('quiet');
    expect(stop.code).toBeUndefined();
  });

  test('code_challenge_method=plain is refused', async () => {
    const { agent, first } = await startAuthorization(t, {
      client_id: 'neg-app',
      redirect_uri: CB,
      scope: SCOPES.join(' '),
      aud: FHIR,
      code_challenge: 'p'.repeat(43),
      code_challenge_method: 'plain',
    });
    const stop = await browse(agent, first);
    expect(stop.kind).toBe('app');
    if (stop.kind === 'app') {
      expect(stop.error).toBe('invalid_request');
      expect(stop.code).toBeUndefined();
    }
  });
});
