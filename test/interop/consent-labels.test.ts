import { randomUUID } from 'node:crypto';
import type { Consent } from '../../src/domain/fhir/types.js';
import { authorizeThroughPages, consentServiceOf, exchangeCode, launchStoreOf } from '../support/smart-flow.js';
import type { TestApp } from '../support/test-app.js';
import { consentProblems } from '../records/consent/consent-shape.js';
import { APP, CONFIDENTIALITY, createHcsApp, introspect, newUser, params, registerApp } from '../domain/hcs/support.js';

/**
 * Issue 15, item 10 (Consent): the Consent recorded on the consent page says what the tokens of its
 * grant enforce. Tokens carry a confidentiality ceiling (`extensions.smart_authz_hcs.confidentiality`:
 * the user's clearance, else the policy's default N, lowered by purpose rules); the Consent's permit
 * holds a nested `deny` provision with a v3-Confidentiality `securityLabel` for every level above
 * that ceiling. Before, a user without a clearance of their own got tokens capped at N and a Consent
 * that permitted everything, and a purpose rule's lower ceiling never reached the Consent.
 */

let t: TestApp;
const SNOMED = 'http://snomed.info/sct';
const PHYSICIAN = { system: SNOMED, code: '309343006', display: 'Physician' };

beforeAll(async () => {
  t = (await createHcsApp()).t;
  await registerApp(t, APP, { purposes_of_use: ['TREAT', 'HRESCH', 'PATRQT'] });
});
afterAll(() => t.close());

const label = (code: string, display: string) => ({ system: CONFIDENTIALITY, code, display });
const RESTRICTED = label('R', 'restricted');
const VERY_RESTRICTED = label('V', 'very restricted');

/** The one Consent the consent page recorded for this patient, and the ceiling the token carries. */
async function consentAndCeiling(patient: string, accessToken: string): Promise<{ consent: Consent; ceiling: unknown }> {
  const { consents } = await consentServiceOf(t).store.search({ patient, count: 10, offset: 0 });
  expect(consents).toHaveLength(1);
  const consent = consents[0]!.resource as unknown as Consent;
  expect(consentProblems(consent as unknown as Record<string, unknown>)).toEqual([]);
  const active = await introspect(t, accessToken);
  expect(active.active).toBe(true);
  const ceiling = (active.extensions as { smart_authz_hcs: { confidentiality: unknown } }).smart_authz_hcs.confidentiality;
  return { consent, ceiling };
}

test('a patient without a clearance of their own: tokens carry N, and the Consent denies R and V', async () => {
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  const who = await newUser(t, { fhirUser: `Patient/${patient}` }, { name: 'Pat Example' });
  const flow = await authorizeThroughPages(t, params(APP, 'launch/patient openid fhirUser patient/*.rs'), who);
  const token = await exchangeCode(t, flow, params(APP, ''));
  expect(token.status).toBe(200);

  const { consent, ceiling } = await consentAndCeiling(patient, token.body.access_token);
  expect(ceiling).toEqual(label('N', 'normal'));
  expect(consent.provision!.type).toBe('permit');
  expect(consent.provision!.provision).toEqual([{ type: 'deny', securityLabel: [RESTRICTED, VERY_RESTRICTED] }]);
  expect(consent.text!.div).toContain('Except data labelled R, V');
});

test("a purpose rule's lower ceiling reaches the Consent: a clinician cleared for R doing research gets N, and the Consent denies R and V", async () => {
  const who = await newUser(t, {
    fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`,
    staff: true,
    roles: [PHYSICIAN],
    purposesOfUse: ['TREAT', 'HRESCH'],
    clearance: 'R',
  });
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  const aud = params(APP, '').aud!;
  const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud });
  const flow = await authorizeThroughPages(
    t,
    params(APP, 'launch openid fhirUser patient/*.rs', { launch, aud, purpose_of_use: 'HRESCH' }),
    who,
  );
  const token = await exchangeCode(t, flow, params(APP, ''));
  expect(token.status).toBe(200);

  const { consent, ceiling } = await consentAndCeiling(patient, token.body.access_token);
  expect(ceiling).toEqual(label('N', 'normal'));
  expect(consent.provision!.provision).toEqual([{ type: 'deny', securityLabel: [RESTRICTED, VERY_RESTRICTED] }]);
});

test('a clinician cleared for R treating: tokens carry R, and the Consent denies only V', async () => {
  const who = await newUser(t, {
    fhirUser: `Practitioner/dr-${randomUUID().slice(0, 6)}`,
    staff: true,
    roles: [PHYSICIAN],
    purposesOfUse: ['TREAT'],
    clearance: 'R',
  });
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  const aud = params(APP, '').aud!;
  const launch = await launchStoreOf(t).create({ patient, clientId: APP, createdBy: 'ehr', aud });
  const flow = await authorizeThroughPages(
    t,
    params(APP, 'launch openid fhirUser patient/*.rs', { launch, aud, purpose_of_use: 'TREAT' }),
    who,
  );
  const token = await exchangeCode(t, flow, params(APP, ''));
  expect(token.status).toBe(200);

  const { consent, ceiling } = await consentAndCeiling(patient, token.body.access_token);
  expect(ceiling).toEqual(label('R', 'restricted'));
  expect(consent.provision!.provision).toEqual([{ type: 'deny', securityLabel: [VERY_RESTRICTED] }]);
});

test('a user cleared for V: nothing lies above the ceiling, so the Consent has no nested deny', async () => {
  const patient = `pat-${randomUUID().slice(0, 6)}`;
  const who = await newUser(t, { fhirUser: `Patient/${patient}`, clearance: 'V' }, { name: 'Pat Vee' });
  const flow = await authorizeThroughPages(t, params(APP, 'launch/patient openid fhirUser patient/*.rs'), who);
  const token = await exchangeCode(t, flow, params(APP, ''));
  expect(token.status).toBe(200);

  const { consent, ceiling } = await consentAndCeiling(patient, token.body.access_token);
  expect(ceiling).toEqual(label('V', 'very restricted'));
  expect(consent.provision!.type).toBe('permit');
  expect(consent.provision!.provision).toBeUndefined();
});
