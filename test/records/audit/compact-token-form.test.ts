import { describe, expect, test } from '@jest/globals';
import { auditEventProblems } from '../../../src/records/audit/audit-event.js';
import { canonicalJson } from '../../../src/records/audit/chain.js';
import { disclosedPatients } from '../../../src/records/audit/disclosure.js';
import { tokenIssued, type TokenIssuedInput } from '../../../src/records/audit/events/token-events.js';
import { tokenSha256 } from '../../../src/records/audit/events/agents.js';
import { renderTokenIssued, tokenIssuedIndexEntries, tokenIssuedRecord } from '../../../src/records/audit/forms/token-issued.js';
import { allIndexEntries } from '../../../src/records/audit/indexes.js';
import { decodeStored, UnreadableAuditEntryError } from '../../../src/records/audit/stored-event.js';
import { prepareEvent } from '../../../src/records/audit/trail.js';

/**
 * Token responses are stored as a compact record and rendered on read (forms/token-issued.ts).
 * These hold the record to `tokenIssued`: what is read back is exactly the AuditEvent the builder
 * makes from the same facts, indexed the same, and no token value is ever kept.
 */

const ISSUER = 'https://as.example.org';
const ACCESS = 'Opaque-access-token_0123456789abcdefghijklmnop';
const REFRESH = 'Opaque-refresh-token_0123456789abcdefghijklmno';
const NOW = new Date('2026-12-07T04:30:00.123Z');

const cases: Array<[string, TokenIssuedInput]> = [
  [
    'a backend service token (client_credentials, opaque)',
    {
      client: { clientId: 'bulk-export', ip: '10.0.0.7' },
      grantType: 'client_credentials',
      accessToken: { name: { opaqueValue: ACCESS }, kind: 'ClientCredentials', format: 'opaque', scope: 'system/*.rs', expiresIn: 300 },
      idTokenIssued: false,
    },
  ],
  [
    "a patient app's code exchange (user, patient, consent, JWT access token, refresh token, id_token)",
    {
      client: { clientId: 'app', name: 'Patient App', ip: '192.0.2.1' },
      grantType: 'authorization_code',
      user: {
        accountId: 'acc-1',
        fhirUser: 'Patient/pat-1',
        roles: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'PAT' }],
        purposeOfUse: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'PATRQT', display: 'patient requested' }],
        organization: { name: 'General', identifier: { value: 'org-1' } },
        tokenJti: 'jti-1',
      },
      patient: 'pat-1',
      encounter: 'enc-1',
      consentId: 'consent-1',
      grantId: 'grant-1',
      accessToken: {
        name: { jti: 'jti-1' },
        kind: 'AccessToken',
        format: 'jwt',
        scope: 'openid fhirUser launch/patient patient/*.rs',
        expiresIn: 3600,
        audience: ['https://fhir.example.org/r4'],
      },
      refreshToken: { name: { opaqueValue: REFRESH }, kind: 'RefreshToken' },
      idTokenIssued: true,
    },
  ],
  [
    'a clinician with an organisation, an absolute patient reference and a Consent reference',
    {
      client: { clientId: 'ehr-app' },
      grantType: 'authorization_code',
      user: {
        accountId: 'acc-3',
        fhirUser: 'https://fhir.example.org/r4/Practitioner/dr-9',
        organization: { identifier: { value: 'org-9' } },
      },
      patient: 'https://fhir.example.org/r4/Patient/pat-9',
      consentId: 'Consent/c-9',
      accessToken: { name: { opaqueValue: ACCESS }, kind: 'AccessToken', format: 'opaque' },
    },
  ],
  [
    'a patient signing in for their own record (the user is the patient)',
    {
      client: { clientId: 'app' },
      grantType: 'authorization_code',
      user: { accountId: 'acc-4', fhirUser: 'Patient/pat-4', name: 'Pat Four' },
      patient: 'pat-4',
      accessToken: { name: { opaqueValue: ACCESS }, kind: 'AccessToken' },
    },
  ],
  [
    'a refresh (rotating)',
    {
      client: { clientId: 'app' },
      grantType: 'refresh_token',
      user: { accountId: 'acc-2', fhirUser: 'Practitioner/dr-1' },
      grantId: 'grant-2',
      accessToken: { name: { opaqueValue: ACCESS }, kind: 'AccessToken', format: 'opaque', audience: 'https://fhir.example.org/r4' },
      refreshToken: { name: { opaqueValue: REFRESH }, kind: 'RefreshToken' },
    },
  ],
];

describe.each(cases)('%s', (_name, input) => {
  const record = tokenIssuedRecord(ISSUER, input, NOW);
  const stored = prepareEvent(record, false).json;
  const expected = { ...tokenIssued({ issuer: ISSUER, now: NOW }, input), id: record.id, recorded: record.recorded };

  test('reads back as exactly the event the builder makes, and it is a valid AuditEvent', () => {
    expect(decodeStored(stored)).toEqual(expected);
    expect(renderTokenIssued(record)).toEqual(expected);
    expect(auditEventProblems(decodeStored(stored))).toEqual([]);
  });

  test('is indexed exactly as the rendered event would be', () => {
    expect(tokenIssuedIndexEntries(record)).toEqual(allIndexEntries(expected, disclosedPatients(expected)));
    expect(prepareEvent(record, false).index).toEqual(allIndexEntries(expected, disclosedPatients(expected)));
  });

  test('holds no token value (opaque ones as their SHA-256) and is a fraction of the event size', () => {
    expect(stored).not.toContain(ACCESS);
    expect(stored).not.toContain(REFRESH);
    if (JSON.stringify(input).includes(ACCESS)) expect(stored).toContain(tokenSha256(ACCESS));
    expect(stored.length * 2.5).toBeLessThan(canonicalJson(expected).length);
  });
});

test('a code exchange with a patient in context is a disclosure of that patient', () => {
  expect(tokenIssuedIndexEntries(tokenIssuedRecord(ISSUER, cases[1]![1], NOW))).toContainEqual(['disclosure', 'Patient/pat-1']);
});

test('a record that lost its shape is reported, not rendered half-way', () => {
  const record = tokenIssuedRecord(ISSUER, cases[1]![1], NOW);
  expect(() => decodeStored(canonicalJson({ ...record, grantType: 7 }))).toThrow(UnreadableAuditEntryError);
  expect(() => decodeStored(canonicalJson({ ...record, recorded: 'yesterday' }))).toThrow(UnreadableAuditEntryError);
  expect(() => decodeStored(canonicalJson({ ...record, accessToken: { ...record.accessToken, name: { opaqueValue: ACCESS } } }))).toThrow(
    UnreadableAuditEntryError,
  );
  expect(() => decodeStored(canonicalJson({ ...record, extra: 1 }))).toThrow(UnreadableAuditEntryError);
});
