import { createHash } from 'node:crypto';
import type supertest from 'supertest';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { launchStoreOf, startAuthorization, type AuthorizeParams } from '../support/smart-flow.js';
import { ehrLaunch, registerEhrLauncher, registerSmartApp } from '../support/fixtures.js';

/*
 * Issue 14, item 5: a launch created without `aud` carried no audience, and neither the launch
 * check nor the authorize rules then bound it, so a launcher limited to server A made launches
 * that apps used against server B. Every launch now gets an audience when it is created, and the
 * app's `aud` must be exactly that server.
 */

const A = 'http://localhost:8080/fhir';
const B = 'https://east.example.org/fhir';
const CB = 'https://app.example.org/cb';
const EHR_SCOPE = 'launch openid fhirUser patient/*.rs';

let t: TestApp;

async function registerLauncher(app: TestApp, clientId: string, fhirServers: string[]): Promise<void> {
  await registerEhrLauncher(app, { id: clientId, secret: `${clientId}-secret-value` }, { fhir_servers: fhirServers });
}

function createLaunch(app: TestApp, launcher: string, context: Record<string, unknown>) {
  return ehrLaunch(app, context, { id: launcher, secret: `${launcher}-secret-value` });
}

/** Where an authorization request went: on to an interaction, or back to the app with an error. */
async function authorize(extra: Partial<AuthorizeParams>): Promise<{ interaction?: string; error?: string; description?: string }> {
  const params: AuthorizeParams = { client_id: 'chart', redirect_uri: CB, scope: EHR_SCOPE, aud: A, ...extra };
  const res: supertest.Response = (await startAuthorization(t, params)).first;
  const location = new URL(res.headers.location!, 'http://as.local');
  const interaction = /^\/interaction\/([^/]+)$/.exec(location.pathname)?.[1];
  if (interaction) return { interaction };
  return {
    error: location.searchParams.get('error') ?? undefined,
    description: location.searchParams.get('error_description') ?? undefined,
  };
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: `${A},east=${B}` });
  await registerLauncher(t, 'ehr-a', [A]);
  await registerLauncher(t, 'ehr-ab', [A, B]);
  // The app may use both servers: only the launch can keep it on A.
  await registerSmartApp(t, { id: 'chart', redirectUri: CB, scopes: ['openid', 'fhirUser', 'launch', 'patient/*.rs'] });
});
afterAll(() => t.close());

describe('a launcher limited to server A', () => {
  test('creating a launch without aud binds it to A', async () => {
    const res = await createLaunch(t, 'ehr-a', { patient: 'pat-1' });
    expect(res.status).toBe(201);
    expect(await launchStoreOf(t).get(res.body.launch)).toEqual({ patient: 'pat-1', aud: A, createdBy: 'ehr-a' });
  });

  test('an app using that launch with aud=B is refused; with aud=A it carries on', async () => {
    const { launch } = (await createLaunch(t, 'ehr-a', { patient: 'pat-1', clientId: 'chart' })).body as { launch: string };
    const escaped = await authorize({ launch, aud: B });
    expect(escaped).toEqual({ error: 'invalid_request', description: 'launch was made for a different FHIR server than aud' });
    expect(await authorize({ launch, resource: B, aud: undefined })).toEqual({
      error: 'invalid_request',
      description: 'launch was made for a different FHIR server than aud',
    });
    expect((await authorize({ launch, aud: A })).interaction).toBeDefined();
  });

  test('naming B is refused', async () => {
    const res = await createLaunch(t, 'ehr-a', { patient: 'pat-1', aud: B });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'aud is not a FHIR server this EHR client may launch for' });
  });
});

describe('a launcher allowed A and B', () => {
  test('a launch without aud is refused, naming the rule', async () => {
    const res = await createLaunch(t, 'ehr-ab', { patient: 'pat-1' });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toBe(
      `aud is required: this EHR client may launch for more than one FHIR server (${A}, ${B}), so the launch must name the one the app will use`,
    );
  });

  test('naming A (or its tenant) works and binds the launch to it', async () => {
    const named = await createLaunch(t, 'ehr-ab', { patient: 'pat-1', aud: `${A}/` });
    expect(named.status).toBe(201);
    expect((await launchStoreOf(t).get(named.body.launch))?.aud).toBe(A);
    expect((await authorize({ launch: named.body.launch, aud: B })).description).toBe(
      'launch was made for a different FHIR server than aud',
    );
    expect((await authorize({ launch: named.body.launch, aud: A })).interaction).toBeDefined();

    const byTenant = await createLaunch(t, 'ehr-ab', { patient: 'pat-1', tenant: 'east' });
    expect(byTenant.status).toBe(201);
    expect((await launchStoreOf(t).get(byTenant.body.launch))?.aud).toBe(B);
  });
});

test('a launcher whose servers are no longer configured here launches nothing', async () => {
  await registerLauncher(t, 'ehr-b', [B]);
  // A second instance on the same data, configured with server A only.
  const onlyA = await createTestApp({ AUTHZ_FHIR_SERVERS: A }, { prefix: t.config.redis.prefix });
  try {
    const res = await createLaunch(onlyA, 'ehr-b', { patient: 'pat-1' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_request',
      error_description: 'aud cannot be chosen: this EHR client may launch for none of the FHIR servers of this authorization server',
    });
  } finally {
    await onlyA.close();
  }
});

test('a stored launch without an audience (made before this rule) is not usable', async () => {
  const launch = 'L'.repeat(43);
  await t.redis.set(
    t.keyspace.launch(createHash('sha256').update(launch).digest('base64url')),
    JSON.stringify({ patient: 'pat-1', createdBy: 'ehr-a' }),
    'EX',
    60,
  );
  expect(await launchStoreOf(t).get(launch)).toBeUndefined();
  expect((await authorize({ launch, aud: B })).description).toBe('launch is unknown, expired or already used');
});
