/*
 * A patient app reads the patient's own consents through the real authorization pages: it names
 * this server's own API as `aud` (`<issuer>/fhir`), and the token it gets opens /fhir/Consent and
 * nothing else. A token for a FHIR server still never opens the Consent API (api-token-binding).
 */
import { randomUUID } from 'node:crypto';
import { createScimApp, SMART, USER_SCHEMA, type ScimTestApp } from '../apis/scim/support.js';
import { authorizeThroughPages, exchangeCode, type AuthorizeParams } from '../support/smart-flow.js';
import { PASSWORD, registerSmartApp } from '../support/fixtures.js';
import { ownApiAudience } from '../../src/oauth/provider/own-api.js';

const REDIRECT = 'http://localhost:4000/callback';
const APP = 'my-consents-app';

let t: ScimTestApp;
let ownApi: string;
let fhir: string;

async function patientUser(patient: string): Promise<{ username: string; password: string }> {
  const userName = `p-${randomUUID().slice(0, 8)}`;
  const res = await t.post('/Users', {
    schemas: [USER_SCHEMA, SMART],
    userName,
    password: PASSWORD,
    [SMART]: { fhirUser: `Patient/${patient}` },
  });
  if (res.status !== 201) throw new Error(`SCIM create failed: ${res.status} ${res.text}`);
  return { username: userName, password: PASSWORD };
}

function params(scope: string, aud: string): AuthorizeParams {
  return { client_id: APP, redirect_uri: REDIRECT, scope, aud, state: 'st-own-api' };
}

beforeAll(async () => {
  t = await createScimApp({ AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000' });
  ownApi = ownApiAudience(t.config.issuer);
  fhir = t.config.fhirServers[0]!.base;
  await registerSmartApp(t, {
    id: APP,
    redirectUri: REDIRECT,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'patient/Consent.rs', 'patient/*.rs'],
  });
});
afterAll(() => t.close());

test('a patient app with aud=<issuer>/fhir gets a Consent-only token that reads the patient’s consents', async () => {
  const patient = `own-${randomUUID().slice(0, 8)}`;
  const who = await patientUser(patient);
  // The data grant first (aud = the FHIR server), so there is a Consent to read.
  const data = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/*.rs', fhir), { ...who, consent: 'allow' });
  expect((await exchangeCode(t, data, params('', fhir))).status).toBe(200);

  const flow = await authorizeThroughPages(t, params('openid fhirUser launch/patient patient/Consent.rs patient/Observation.rs', ownApi), {
    ...who,
    consent: 'allow',
  });
  const token = await exchangeCode(t, flow, params('', ownApi));
  expect(token.status).toBe(200);
  expect(token.body.patient).toBe(patient);
  // The own API serves Consent, Provenance and AuditEvent: a data scope is not part of its grant.
  expect(token.body.scope.split(' ')).toContain('patient/Consent.rs');
  expect(token.body.scope.split(' ')).not.toContain('patient/Observation.rs');

  const consents = await t.request.get(`/fhir/Consent?patient=${patient}`).set('Authorization', `Bearer ${token.body.access_token}`);
  expect(consents.status).toBe(200);
  const bundle = JSON.parse(consents.text) as { total: number; entry: Array<{ resource: { patient: { reference: string } } }> };
  expect(bundle.total).toBeGreaterThanOrEqual(1);
  for (const e of bundle.entry) expect(e.resource.patient.reference).toBe(`Patient/${patient}`);

  // It reads only its own patient's consents.
  const intro = await t.request.get(`/fhir/Consent?patient=someone-else`).set('Authorization', `Bearer ${token.body.access_token}`);
  expect(intro.status).toBe(403);
});

test('an aud that is neither a FHIR server nor the own API is still refused', async () => {
  const flow = await authorizeThroughPages(t, params('openid patient/Consent.rs', `${t.config.issuer}/fhir-other`), {
    username: 'x',
    password: 'y',
  });
  expect(flow.error).toBe('invalid_request');
});
