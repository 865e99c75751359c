import { accessOf, grantableScopes, identityRefusal, userKindOf } from '../../../src/smart/launch/user-scopes.js';
import { scopeWithGrantedNarrowings } from '../../../src/smart/launch/code-scope.js';
import { withConsentForRefresh } from '../../../src/smart/launch/authorize-request.js';

const APP = ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs', 'user/*.rs'];

describe('grantableScopes', () => {
  test('staff may grant patient/ and user/ scopes the client may have, in the syntax asked', () => {
    const r = grantableScopes({
      requested: [
        'openid',
        'fhirUser',
        'launch',
        'patient/Observation.read',
        'user/Patient.rs',
        'patient/Observation.rs?category=laboratory',
      ],
      clientAllowed: APP,
      access: 'staff',
      hasPatient: true,
    });
    expect(r.granted).toEqual([
      'openid',
      'fhirUser',
      'launch',
      'patient/Observation.read',
      'user/Patient.rs',
      'patient/Observation.rs?category=laboratory',
    ]);
    expect(r.refused).toEqual([]);
  });

  test.each(['patient', 'caregiver'] as const)('a %s account grants patient/ scopes only', (access) => {
    const r = grantableScopes({
      requested: ['patient/*.rs', 'user/*.rs', 'system/*.rs'],
      clientAllowed: [...APP, 'system/*.rs'],
      access,
      hasPatient: true,
    });
    expect(r.granted).toEqual(['patient/*.rs']);
    expect(r.refused.map((x) => x.scope)).toEqual(['user/*.rs', 'system/*.rs']);
    expect(r.refused[0]!.reason).toContain(`a ${access} account may only grant patient/ scopes`);
  });

  test('nobody grants system/ scopes interactively', () => {
    for (const access of ['staff', 'none'] as const) {
      const r = grantableScopes({ requested: ['system/*.rs'], clientAllowed: ['system/*.rs'], access, hasPatient: true });
      expect(r.granted).toEqual([]);
      expect(r.refused[0]!.scope).toBe('system/*.rs');
    }
  });

  test('an account linked to nothing grants openid, fhirUser and profile at most: no data, no context, no refresh token', () => {
    const r = grantableScopes({
      requested: [
        'openid',
        'fhirUser',
        'profile',
        'offline_access',
        'online_access',
        'launch',
        'launch/patient',
        'patient/*.rs',
        'user/*.rs',
      ],
      clientAllowed: [...APP, 'profile', 'online_access'],
      access: 'none',
      hasPatient: true,
    });
    expect(r.granted).toEqual(['openid', 'fhirUser', 'profile']);
    expect(r.refused.map((x) => x.scope)).toEqual([
      'offline_access',
      'online_access',
      'launch',
      'launch/patient',
      'patient/*.rs',
      'user/*.rs',
    ]);
    expect(r.refused.at(-1)!.reason).toBe('is a user/ scope; it needs an account linked to a patient record or a staff role');
  });

  test('without a patient in context, patient/ scopes and launch/patient are refused', () => {
    const r = grantableScopes({
      requested: ['launch/patient', 'patient/*.rs', 'user/*.rs', 'openid'],
      clientAllowed: APP,
      access: 'staff',
      hasPatient: false,
    });
    expect(r.granted).toEqual(['user/*.rs', 'openid']);
    expect(r.refused).toEqual([
      { scope: 'launch/patient', reason: 'no patient in context' },
      { scope: 'patient/*.rs', reason: 'no patient in context' },
    ]);
  });

  test('context scopes need the client to be allowed them exactly', () => {
    const r = grantableScopes({
      requested: ['openid', 'online_access', 'launch/encounter', 'profile'],
      clientAllowed: APP,
      access: 'patient',
      hasPatient: true,
    });
    expect(r.granted).toEqual(['openid']);
    expect(r.refused.map((x) => x.scope)).toEqual(['online_access', 'launch/encounter', 'profile']);
  });

  test('fhirUser is dropped without openid', () => {
    const r = grantableScopes({ requested: ['fhirUser', 'patient/*.rs'], clientAllowed: APP, access: 'patient', hasPatient: true });
    expect(r.granted).toEqual(['patient/*.rs']);
    expect(r.refused).toEqual([{ scope: 'fhirUser', reason: 'is only granted together with openid' }]);
  });

  test('requests are narrowed to what the client may have and unknown or malformed scopes dropped', () => {
    const r = grantableScopes({
      requested: ['patient/*.cruds', 'patient/Observation.dus', 'Observation.rs', '__dark_mode', 'patient/Observation.rs'],
      clientAllowed: ['patient/Observation.rs', 'patient/Patient.r'],
      access: 'patient',
      hasPatient: true,
    });
    expect(r.granted).toEqual(['patient/Observation.rs', 'patient/Patient.r']);
    expect(r.refused.map((x) => x.scope)).toEqual(['patient/Observation.dus', 'Observation.rs', '__dark_mode']);
  });

  test('a v1 request stays v1 when the grant can say it in v1', () => {
    const r = grantableScopes({
      requested: ['patient/*.read'],
      clientAllowed: ['patient/Observation.rs'],
      access: 'patient',
      hasPatient: true,
    });
    expect(r.granted).toEqual(['patient/Observation.read']);
  });
});

describe('identityRefusal', () => {
  test('names the missing link when the account can give none of the data asked for', () => {
    expect(identityRefusal('none', ['openid', 'user/*.rs'], ['openid'])).toMatch(/not linked to a patient record or a staff role/);
    expect(identityRefusal('none', ['launch/patient'], [])).toMatch(/not linked to a patient record or a staff role/);
    expect(identityRefusal('patient', ['openid', 'user/*.rs'], ['openid'])).toMatch(/not to a staff role/);
  });

  test('says nothing when some data is granted, none was asked for, or the client is what stands in the way', () => {
    expect(identityRefusal('patient', ['user/*.rs', 'patient/*.rs'], ['patient/*.rs'])).toBeUndefined();
    expect(identityRefusal('none', ['openid', 'fhirUser'], ['openid', 'fhirUser'])).toBeUndefined();
    expect(identityRefusal('staff', ['user/Bogus.rs'], [])).toBeUndefined();
    expect(identityRefusal('patient', ['patient/Observation.rs'], [])).toBeUndefined();
  });
});

describe('accessOf', () => {
  test.each([
    ['practitioner', true, 'staff'],
    ['practitioner', false, 'none'],
    ['patient', true, 'patient'],
    ['caregiver', true, 'caregiver'],
    ['other', true, 'none'],
    ['other', false, 'none'],
  ] as const)('a %s with staff fact %s has %s access', (kind, staff, access) => {
    expect(accessOf(kind, staff)).toBe(access);
  });
});

describe('userKindOf', () => {
  test.each([
    ['Patient/p1', 'patient'],
    ['https://fhir.example.org/r4/Patient/p1', 'patient'],
    ['RelatedPerson/rp', 'caregiver'],
    ['Practitioner/dr', 'practitioner'],
    ['PractitionerRole/r', 'practitioner'],
    ['Person/x', 'other'],
    [undefined, 'other'],
  ])('%s is a %s', (fhirUser, kind) => {
    expect(userKindOf(fhirUser)).toBe(kind);
  });
});

describe('scopeWithGrantedNarrowings', () => {
  test('adds granted spellings a requested scope covers, nothing else', () => {
    expect(
      scopeWithGrantedNarrowings(
        ['openid', 'patient/*.rs', 'patient/*.read'],
        [
          'openid',
          'patient/Observation.rs',
          'patient/Observation.read',
          'user/Patient.rs',
          'patient/Condition.cruds',
          'patient/Observation.rs?category=laboratory',
        ],
      ),
    ).toEqual([
      'openid',
      'patient/*.rs',
      'patient/*.read',
      'patient/Observation.rs',
      'patient/Observation.read',
      'patient/Observation.rs?category=laboratory',
    ]);
  });

  test('a constrained request does not cover an unconstrained grant', () => {
    expect(scopeWithGrantedNarrowings(['patient/Observation.rs?category=laboratory'], ['patient/Observation.rs'])).toEqual([
      'patient/Observation.rs?category=laboratory',
    ]);
  });
});

describe('withConsentForRefresh', () => {
  test.each([
    ['scope=openid%20offline_access&client_id=a', 'scope=openid%20offline_access&client_id=a&prompt=consent&smart_added_prompt=consent'],
    ['scope=online_access+launch&prompt=login', 'scope=online_access+launch&prompt=login%20consent&smart_added_prompt=consent'],
  ])('%s gets prompt=consent', (q, expected) => {
    expect(withConsentForRefresh(q)).toBe(expected);
  });

  test.each([
    'scope=openid',
    'scope=offline_access&prompt=consent',
    'scope=offline_access&prompt=none',
    'scope=offline_access&scope=x',
    'client_id=a',
  ])('%s is left alone', (q) => {
    expect(withConsentForRefresh(q)).toBeUndefined();
  });

  test('a client cannot mark its own prompt=consent as added by this server: the marker it sends is removed', () => {
    expect(withConsentForRefresh('scope=offline_access&prompt=consent&smart_added_prompt=consent')).toBe(
      'scope=offline_access&prompt=consent',
    );
    expect(withConsentForRefresh('smart_added_prompt=consent&scope=openid')).toBe('scope=openid');
  });
});
