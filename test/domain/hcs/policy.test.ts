import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/platform/config/load.js';
import { PurposeInputError, purposeCode, purposeCodes, purposeParameter } from '../../../src/domain/hcs/purpose-input.js';
import { applyRules, hcsPolicySchema, listPermits } from '../../../src/domain/hcs/policy.js';
import { isValidNpi } from '../../../src/domain/hcs/npi.js';
import { isEmergencyPurpose, purposeLineage } from '../../../src/domain/hcs/vocabulary.js';
import { B2bInputError, b2bAssertionOf } from '../../../src/domain/hcs/b2b.js';
import { breakTheGlassReason, ReasonError } from '../../../src/domain/hcs/break-the-glass.js';

/** The vocabulary, the purpose spellings, the policy's rules and modes, as plain functions. */

describe('purposes of use in every spelling the standards use', () => {
  test.each([
    ['TREAT', 'TREAT'],
    ['urn:oid:2.16.840.1.113883.5.8#HPAYMT', 'HPAYMT'],
    ['http://terminology.hl7.org/CodeSystem/v3-ActReason#HRESCH', 'HRESCH'],
    ['http://terminology.hl7.org/CodeSystem/v3-ActReason|PUBHLTH', 'PUBHLTH'],
    ['http://hl7.org/fhir/v3/ActReason#HOPERAT', 'HOPERAT'],
  ])('%s → %s', (input, code) => {
    expect(purposeCode(input)).toBe(code);
  });

  test('a FHIR Coding, with or without a system', () => {
    expect(purposeCode({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT' })).toBe('ETREAT');
    expect(purposeCode({ code: 'COC' })).toBe('COC');
  });

  test.each([
    ['an unknown code', 'MARKETING', /"MARKETING" is not a v3-PurposeOfUse code/],
    ['lower case', 'treat', /"treat" is not a v3-PurposeOfUse code/],
    ['another code system', 'urn:oid:1.2.3#TREAT', /names the code system "urn:oid:1.2.3"/],
    [
      'a non-purpose ActReason-looking code',
      'urn:oid:2.16.840.1.113883.5.8#DEID',
      /"urn:oid:2.16.840.1.113883.5.8#DEID" is not a v3-PurposeOfUse code/,
    ],
    ['a Coding of another system', { system: 'http://snomed.info/sct', code: 'TREAT' }, /names the code system/],
    ['a number', 42, /a code, a system#code string or a Coding/],
  ])('%s is refused with a sentence saying why', (_name, input, message) => {
    expect(() => purposeCode(input)).toThrow(PurposeInputError);
    expect(() => purposeCode(input)).toThrow(message);
  });

  test('the authorization parameter: space-separated, de-duplicated, at most eight', () => {
    expect(purposeParameter('TREAT urn:oid:2.16.840.1.113883.5.8#TREAT COC')).toEqual(['TREAT', 'COC']);
    expect(() => purposeParameter('   ')).toThrow(/empty/);
    expect(() => purposeCodes(Array(9).fill('TREAT'))).toThrow(/at most 8/);
  });
});

describe('the v3-PurposeOfUse hierarchy', () => {
  test('lineage and emergency purposes', () => {
    expect(purposeLineage('BTG')).toEqual(['BTG', 'ETREAT', 'TREAT']);
    expect(purposeLineage('HTEST')).toEqual(['HTEST', 'SYSDEV', 'HOPERAT']);
    expect(['ETREAT', 'BTG', 'ERTREAT'].every(isEmergencyPurpose)).toBe(true);
    expect(['TREAT', 'COC', 'HRESCH'].some(isEmergencyPurpose)).toBe(false);
  });

  test('a permitted parent permits its children, but never an emergency through a non-emergency parent', () => {
    expect(listPermits(['TREAT'], 'COC', true)).toBe(true);
    expect(listPermits(['HRESCH'], 'CLINTRCHNPC', true)).toBe(true);
    expect(listPermits(['TREAT'], 'ETREAT', true)).toBe(false);
    expect(listPermits(['TREAT'], 'BTG', true)).toBe(false);
    expect(listPermits(['ETREAT'], 'BTG', true)).toBe(true);
    expect(listPermits(['TREAT'], 'COC', false)).toBe(false);
    expect(listPermits(['COC'], 'TREAT', true)).toBe(false);
  });
});

describe('policy rules', () => {
  const policy = hcsPolicySchema.parse({});

  test('the shipped rules: research and payment get obligations and a ceiling; children inherit', () => {
    expect(applyRules(policy, ['HRESCH'], [])).toMatchObject({
      obligations: ['DEID', 'NOREUSE'],
      ceiling: 'N',
      applied: ['research-deidentified'],
    });
    expect(applyRules(policy, ['CLINTRCH'], [])).toMatchObject({ obligations: ['DEID', 'NOREUSE'], ceiling: 'N' });
    expect(applyRules(policy, ['HPAYMT'], [])).toMatchObject({ obligations: ['MINEC'], ceiling: 'N' });
    expect(applyRules(policy, ['TREAT'], [])).toEqual({ obligations: [], applied: [], wouldApply: [] });
  });

  test('several rules: obligations are united, the lowest ceiling wins', () => {
    expect(applyRules(policy, ['HPAYMT', 'HMARKT'], [])).toMatchObject({ obligations: ['MINEC', 'DEID', 'NOREUSE'], ceiling: 'M' });
  });

  test('role rules, and the three modes', () => {
    const nurseRole = { system: 'http://snomed.info/sct', code: '106292003' };
    const custom = hcsPolicySchema.parse({
      rules: [
        {
          id: 'students-masked',
          purposes: ['TREAT'],
          roles: [{ system: 'http://snomed.info/sct', code: '106292003' }],
          obligations: ['MASK'],
          ceiling: 'M',
        },
        { id: 'trial-redact', mode: 'audit-only', purposes: ['TREAT'], obligations: ['REDACT'] },
        { id: 'off', mode: 'disabled', purposes: ['TREAT'], obligations: ['DELAU'] },
      ],
    });
    expect(applyRules(custom, ['TREAT'], [nurseRole])).toEqual({
      obligations: ['MASK'],
      ceiling: 'M',
      applied: ['students-masked'],
      wouldApply: [{ rule: 'trial-redact', obligations: ['REDACT'] }],
    });
    expect(applyRules(custom, ['TREAT'], [{ system: 'http://snomed.info/sct', code: '309343006' }])).toEqual({
      obligations: [],
      applied: [],
      wouldApply: [{ rule: 'trial-redact', obligations: ['REDACT'] }],
    });
  });

  test('a policy file is validated at start-up, one line naming what is wrong', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcs-policy-'));
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify({ rules: [{ id: 'x', purposes: ['HRESCH'], obligations: ['DEIDENTIFY'] }] }));
    expect(() => loadConfig({ AUTHZ_HCS_POLICY: file })).toThrow(
      /^config error: AUTHZ_HCS_POLICY \(hcs\.rules\.0\.obligations\.0\) must be a v3 ObligationPolicy or RefrainPolicy code/,
    );
    writeFileSync(file, JSON.stringify({ defaultCeiling: 'R', rules: [{ id: 'research', purposes: ['HRESCH'], obligations: ['DEID'] }] }));
    const config = loadConfig({ AUTHZ_HCS_POLICY: file, AUTHZ_HCS_CHECK_USER_PURPOSES: 'audit-only' });
    expect(config.hcs).toMatchObject({
      defaultCeiling: 'R',
      checks: { clientPurposes: 'enforce', userPurposes: 'audit-only', breakTheGlass: 'enforce' },
      rules: [{ id: 'research', mode: 'enforce' }],
    });
    expect(() => loadConfig({ AUTHZ_HCS_CHECK_BREAK_THE_GLASS: 'sometimes' })).toThrow(/^config error: AUTHZ_HCS_CHECK_BREAK_THE_GLASS/);
    expect(() => loadConfig({ AUTHZ_HCS_POLICY: join(dir, 'missing.json') })).toThrow(
      /^config error: AUTHZ_HCS_POLICY file .* cannot be read/,
    );
  });
});

describe('UDAP hl7-b2b', () => {
  const good = {
    version: '1',
    organization_id: 'urn:oid:2.16.840.1.113883.19',
    organization_name: 'Good Health Clinic',
    purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#TREAT'],
  };

  test('a full assertion', () => {
    expect(
      b2bAssertionOf({
        extensions: {
          'hl7-b2b': {
            ...good,
            subject_name: 'Dr Ana Ortiz',
            subject_id: 'urn:oid:2.16.840.1.113883.4.6#1234567893',
            subject_role: '207Q00000X',
          },
        },
      }),
    ).toEqual({
      purposes: ['TREAT'],
      subject: {
        name: 'Dr Ana Ortiz',
        organization: 'Good Health Clinic',
        organizationId: 'urn:oid:2.16.840.1.113883.19',
        roles: [{ system: 'http://nucc.org/provider-taxonomy', code: '207Q00000X' }],
        npi: '1234567893',
      },
    });
    expect(b2bAssertionOf({})).toBeUndefined();
  });

  test.each([
    ['no version', { ...good, version: undefined }, /version must be "1"/],
    ['no organization_id', { ...good, organization_id: undefined }, /organization_id is required/],
    ['organization_id not a URI', { ...good, organization_id: 'clinic' }, /organization_id must be an absolute URI/],
    ['no purpose', { ...good, purpose_of_use: [] }, /purpose_of_use is required/],
    [
      'an unknown purpose',
      { ...good, purpose_of_use: ['urn:oid:2.16.840.1.113883.5.8#SHOPPING'] },
      /purpose_of_use: purpose of use "urn:oid:2.16.840.1.113883.5.8#SHOPPING" is not a v3-PurposeOfUse code/,
    ],
    [
      'a bad NPI',
      { ...good, subject_id: 'urn:oid:2.16.840.1.113883.4.6#1234567890' },
      /NPI that is not 10 digits with a valid check digit/,
    ],
    ['a role nobody can read', { ...good, subject_role: 'doctor' }, /subject_role must be a NUCC taxonomy code/],
  ])('%s is refused', (_name, b2b, message) => {
    expect(() => b2bAssertionOf({ extensions: { 'hl7-b2b': b2b } })).toThrow(B2bInputError);
    expect(() => b2bAssertionOf({ extensions: { 'hl7-b2b': b2b } })).toThrow(message);
  });
});

test('NPI check digits (CMS Luhn with the 80840 prefix)', () => {
  expect(isValidNpi('1234567893')).toBe(true);
  expect(isValidNpi('1234567890')).toBe(false);
  expect(isValidNpi('123456789')).toBe(false);
});

test('a break-the-glass reason is required, meaningful and bounded', () => {
  expect(breakTheGlassReason('  Unconscious patient in ED,\n\tno records available  ', 10)).toBe(
    'Unconscious patient in ED, no records available',
  );
  expect(() => breakTheGlassReason('', 10)).toThrow(ReasonError);
  expect(() => breakTheGlassReason('urgent', 10)).toThrow(/at least 10 characters/);
  expect(() => breakTheGlassReason('x'.repeat(501), 10)).toThrow(/at most 500/);
});
