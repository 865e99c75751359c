import { consentServiceOf } from '../support/smart-flow.js';
import { GrantContextStore } from '../../src/oauth/tokens/grant-context.js';
import { createTestApp, type TestApp } from '../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../support/backend-client.js';
import { registerEhrLauncher, registerSmartApp } from '../support/fixtures.js';

/** Issue 15 item 10: refresh-token introspection context, Consent _count capping, backend invalid_scope shape. */

const FHIR = 'http://localhost:8080/fhir';
const TOKEN_URL = 'http://localhost:3000/token';
const ISSUER = 'http://localhost:3000';
const CONTEXT = {
  patient: 'pat-7',
  encounter: 'enc-7',
  fhirContext: [{ reference: 'ImagingStudy/img-7' }],
  fhirUser: `${FHIR}/Practitioner/dr-7`,
};

let t: TestApp;
let key: BackendKey;

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

function introspect(token: string, id: string, secret: string) {
  return t.request.post('/introspect').set('Authorization', basic(id, secret)).type('form').send({ token });
}

/** A refresh token of one grant of `clientId`, with the grant's launch context saved. */
async function grantTokens(clientId: string) {
  const client = (await t.app.Client.find(clientId))!;
  const grant = new t.app.Grant({ accountId: 'user-7', clientId });
  grant.addOIDCScope('openid fhirUser launch offline_access');
  grant.addResourceScope(FHIR, 'patient/*.rs');
  const grantId = await grant.save();
  const { fhirUser, ...launch } = CONTEXT;
  await new GrantContextStore(t.redis, t.keyspace).save(grantId, { ...launch, fhirUser }, 3600);
  const refreshToken = await new t.app.RefreshToken({
    accountId: 'user-7',
    client,
    grantId,
    scope: 'openid launch offline_access patient/*.rs',
    resource: FHIR,
    gty: 'authorization_code',
  }).save();
  return { refreshToken };
}

beforeAll(async () => {
  t = await createTestApp({ AUTHZ_FHIR_SERVERS: FHIR });
  key = await backendKey('ES384');
  await registerBackend(t, 'narrow', [key], { smart_scopes: ['system/Patient.rs'] });
  await registerBackend(t, 'consent-admin', [key], { smart_scopes: ['system/Consent.rs'] });
  const app = { redirectUri: 'https://chart.example.org/cb', scopes: ['openid', 'fhirUser', 'launch', 'offline_access', 'patient/*.rs'] };
  await registerSmartApp(t, { id: 'chart', secret: 'chart-secret-value', ...app });
  await registerSmartApp(t, { id: 'other', secret: 'other-secret-value', ...app });
  await registerEhrLauncher(t, { id: 'ehr', secret: 'ehr-secret-value' });
});
afterAll(() => t.close());

describe('an app introspecting its own refresh token', () => {
  test('gets the launch context, as its access tokens carry it', async () => {
    const { refreshToken } = await grantTokens('chart');
    const res = await introspect(refreshToken, 'chart', 'chart-secret-value');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: 'chart', token_type: 'refresh_token', ...CONTEXT });
  });

  test('another app’s tokens are inactive to it; clients that are neither app nor resource server still may not introspect', async () => {
    const { refreshToken } = await grantTokens('other');
    expect((await introspect(refreshToken, 'chart', 'chart-secret-value')).body).toEqual({ active: false });
    const ehr = await introspect(refreshToken, 'ehr', 'ehr-secret-value');
    expect(ehr.status).toBe(403);
    expect(ehr.body.error).toBe('unauthorized_client');
  });
});

describe('Consent search _count', () => {
  test('above the maximum is capped (as AuditEvent does), not refused', async () => {
    const consents = consentServiceOf(t);
    await consents.recordDecision({
      kind: 'permit',
      patientId: 'cap-1',
      performer: { reference: 'Patient/cap-1' },
      clientId: 'chart',
      clientName: 'Chart',
      scopes: ['patient/*.rs'],
      periodSeconds: 600,
    });
    const res = await tokenRequest(t, await signAssertion(key, 'consent-admin', TOKEN_URL), {
      scope: 'system/Consent.rs',
      resource: `${ISSUER}/fhir`,
    });
    const token = res.body.access_token as string;
    const capped = await t.request.get('/fhir/Consent?patient=cap-1&_count=1000').set('Authorization', `Bearer ${token}`);
    expect(capped.status).toBe(200);
    const bundle = JSON.parse(capped.text);
    expect(bundle.total).toBe(1);
    expect(bundle.link[0].url).toBe(`${ISSUER}/fhir/Consent?patient=cap-1&_count=100&_offset=0`);
    const bad = await t.request.get('/fhir/Consent?_count=lots').set('Authorization', `Bearer ${token}`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).resourceType).toBe('OperationOutcome');
  });
});

describe('backend invalid_scope', () => {
  test.each([['system/Observation.rs'], ['']])('asking %j: RFC 6749 error members only, the description naming why', async (scope) => {
    const res = await tokenRequest(t, await signAssertion(key, 'narrow', TOKEN_URL), { scope });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
    expect(res.body.error_description).toEqual(expect.any(String));
    expect(Object.keys(res.body).sort()).toEqual(['error', 'error_description']);
  });
});
