import { describe, expect, test } from '@jest/globals';
import { decide, parseScope } from '../../examples/resource-server/access.js';

// The example FHIR server's scope rules; its HTTP behaviour against the real server is in
// test/e2e/openid-client.e2e.ts.
describe('example resource server: scope decisions', () => {
  test('v1 and v2 permissions map to read and search', () => {
    expect(parseScope('patient/Patient.read')).toEqual({ level: 'patient', resourceType: 'Patient', read: true, search: true });
    expect(parseScope('user/*.rs')).toEqual({ level: 'user', resourceType: '*', read: true, search: true });
    expect(parseScope('system/Observation.r')).toMatchObject({ read: true, search: false });
    expect(parseScope('system/Observation.s')).toMatchObject({ read: false, search: true });
    expect(parseScope('patient/Patient.write')).toMatchObject({ read: false, search: false });
    expect(parseScope('patient/Patient.cud')).toMatchObject({ read: false, search: false });
    for (const bad of ['openid', 'launch/patient', 'patient/Patient.', 'patient/patient.rs', 'patient/Patient.rs?x=1', 'admin/Patient.rs'])
      expect(parseScope(bad)).toBeUndefined();
  });

  test('patient/ scopes confine to the token’s patient; user/ and system/ do not', () => {
    expect(decide('patient/*.rs', 'pat-jones', 'Patient', 'read')).toEqual({ allowed: true, compartment: 'pat-jones' });
    expect(decide('patient/*.rs', undefined, 'Patient', 'read')).toMatchObject({ allowed: false });
    expect(decide('patient/*.rs user/Patient.rs', 'pat-jones', 'Patient', 'search')).toEqual({ allowed: true });
    expect(decide('system/Patient.rs', undefined, 'Patient', 'search')).toEqual({ allowed: true });
    expect(decide('system/Patient.rs', undefined, 'Encounter', 'read')).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('Encounter'),
    });
    expect(decide('patient/Patient.r', 'pat-jones', 'Patient', 'search')).toMatchObject({ allowed: false });
    expect(decide('', 'pat-jones', 'Patient', 'read')).toMatchObject({ allowed: false });
  });
});
