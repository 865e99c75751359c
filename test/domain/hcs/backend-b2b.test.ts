import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import type { TestApp } from '../../support/test-app.js';
import {
  ACT_CODE,
  ACT_REASON,
  CONFIDENTIALITY,
  JWT_BASE,
  OPAQUE_BASE,
  createHcsApp,
  introspect,
  jwtClaims,
  type HcsApp,
} from './support.js';

/** Backend services assert purpose of use and subject in the client assertion (UDAP hl7-b2b). */

const TOKEN_URL = 'http://localhost:3000/token';
let h: HcsApp;
let t: TestApp;
let key: BackendKey;

const B2B = {
  version: '1',
  subject_name: 'Dr Ana Ortiz',
  subject_id: 'urn:oid:2.16.840.1.113883.4.6#1234567893',
  subject_role: '207Q00000X',
  organization_name: 'Good Health Clinic',
  organization_id: 'urn:oid:2.16.840.1.113883.19',
  purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#TREAT'],
};

beforeAll(async () => {
  h = await createHcsApp();
  t = h.t;
  key = await backendKey('ES384');
  await registerBackend(t, 'hie-gateway', [key], { purposes_of_use: ['TREAT', 'HPAYMT'], fhir_servers: [OPAQUE_BASE, JWT_BASE] });
  await registerBackend(t, 'payer-batch', [key], { purposes_of_use: ['HPAYMT'], default_purposes_of_use: ['COVERAGE'] });
  await registerBackend(t, 'no-purposes', [key]);
  await registerBackend(t, 'test-harness', [key], { test_account: true });
});

afterAll(async () => {
  await t.close();
});

function request(clientId: string, b2b?: unknown, form: Record<string, string> = {}) {
  return (async () =>
    tokenRequest(t, await signAssertion(key, clientId, TOKEN_URL, b2b === undefined ? {} : { extra: { extensions: { 'hl7-b2b': b2b } } }), {
      resource: OPAQUE_BASE,
      udap: '1',
      ...form,
    }))();
}

test('hl7-b2b with urn:oid purposes: IUA claims in introspection, exactly', async () => {
  const res = await request('hie-gateway', B2B);
  expect(res.status).toBe(200);
  expect((await introspect(t, res.body.access_token)).extensions).toEqual({
    ihe_iua: {
      subject_name: 'Dr Ana Ortiz',
      subject_organization: 'Good Health Clinic',
      subject_organization_id: 'urn:oid:2.16.840.1.113883.19',
      subject_role: [{ system: 'http://nucc.org/provider-taxonomy', code: '207Q00000X' }],
      purpose_of_use: [{ system: ACT_REASON, code: 'TREAT', display: 'treatment' }],
      national_provider_identifier: '1234567893',
    },
    smart_authz_hcs: { confidentiality: { system: CONFIDENTIALITY, code: 'N', display: 'normal' }, obligations: [] },
  });
});

test('purposes as FHIR Codings; a JWT access token carries the same claims', async () => {
  const res = await request('hie-gateway', { ...B2B, purpose_of_use: [{ system: ACT_REASON, code: 'HPAYMT' }] }, { resource: JWT_BASE });
  expect(res.status).toBe(200);
  const claims = jwtClaims(res.body.access_token);
  expect(claims.extensions).toMatchObject({
    ihe_iua: { purpose_of_use: [{ system: ACT_REASON, code: 'HPAYMT', display: 'healthcare payment' }] },
    smart_authz_hcs: { confidentiality: { code: 'N' }, obligations: [{ system: ACT_CODE, code: 'MINEC', display: 'minimum necessary' }] },
  });
  expect((await introspect(t, res.body.access_token)).extensions).toEqual(claims.extensions);
});

test("without hl7-b2b the client's default purpose applies", async () => {
  const res = await request('payer-batch');
  expect(res.status).toBe(200);
  const ext = (await introspect(t, res.body.access_token)).extensions as { ihe_iua: unknown; smart_authz_hcs: unknown };
  expect(ext.ihe_iua).toEqual({ purpose_of_use: [{ system: ACT_REASON, code: 'COVERAGE', display: 'coverage under policy or program' }] });
  // COVERAGE is a payment purpose: the payment rule applies to it.
  expect(ext.smart_authz_hcs).toMatchObject({ obligations: [expect.objectContaining({ code: 'MINEC' })] });
});

test('a test client gets HTEST', async () => {
  const res = await request('test-harness');
  const ext = (await introspect(t, res.body.access_token)).extensions as { ihe_iua: unknown; smart_authz_hcs: unknown };
  expect(ext.ihe_iua).toEqual({ purpose_of_use: [{ system: ACT_REASON, code: 'HTEST', display: 'test health data' }] });
  expect(ext.smart_authz_hcs).toMatchObject({ test_data: true });
});

test.each([
  [
    'a purpose not registered for the client',
    'hie-gateway',
    { ...B2B, purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#HRESCH'] },
    'purpose of use HRESCH is not registered for client hie-gateway (purposes_of_use)',
  ],
  [
    'a backend with no registered purposes',
    'no-purposes',
    B2B,
    'purpose of use TREAT is not registered for client no-purposes (purposes_of_use)',
  ],
  [
    'an unknown purpose',
    'hie-gateway',
    { ...B2B, purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#SHOPPING'] },
    /^hl7-b2b.purpose_of_use: purpose of use "urn:oid:2.16.840.1.113883.5.8#SHOPPING" is not a v3-PurposeOfUse code/,
  ],
  [
    'an emergency nobody registered',
    'hie-gateway',
    { ...B2B, purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#ETREAT'] },
    'purpose of use ETREAT is not registered for client hie-gateway (purposes_of_use)',
  ],
  ['no organization_id', 'hie-gateway', { ...B2B, organization_id: undefined }, 'hl7-b2b.organization_id is required'],
  ['a test client asserting TREAT', 'test-harness', B2B, 'this is a test account: it may only assert purpose of use HTEST, not TREAT'],
])('%s: 400 invalid_request saying why, no token', async (_name, clientId, b2b, description) => {
  const res = await request(clientId, b2b);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('invalid_request');
  expect(res.body.error_description).toEqual(typeof description === 'string' ? description : expect.stringMatching(description));
  expect(res.body.access_token).toBeUndefined();
});
