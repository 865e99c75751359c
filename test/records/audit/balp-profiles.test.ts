import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';
import {
  clientChanged,
  directoryChanged,
  keyChanged,
  launchCreated,
  passwordChanged,
} from '../../../src/records/audit/events/admin-events.js';
import {
  authorizationDecision,
  breakTheGlass,
  consentRecorded,
  consentWithdrawn,
} from '../../../src/records/audit/events/consent-events.js';
import { accountLocked, loggedOut, loginFailed, loginSucceeded } from '../../../src/records/audit/events/login-events.js';
import {
  factorEnrolled,
  factorRemoved,
  factorsReset,
  secondFactorFailed,
  secondFactorVerified,
} from '../../../src/records/audit/events/factor-events.js';
import {
  federatedLoginFailed,
  federatedLoginSucceeded,
  upstreamIdentityLinked,
} from '../../../src/records/audit/events/federation-events.js';
import {
  refreshReuse,
  tokenIntrospected,
  tokenIssued,
  tokenRefused,
  tokenRevoked,
} from '../../../src/records/audit/events/token-events.js';
import { BALP_PROFILES } from '../../../src/records/audit/events/vocabulary.js';
import { trailAccessed, trailExported } from '../../../src/records/audit/trail-events.js';
import { profileValidator, type ProfileValidator } from './balp-validator.js';

/*
 * Every event builder's output, validated with a FHIR validator library (@medplum/core, on
 * snapshots made by fhir-snapshot-generator) against the profile the event claims in
 * meta.profile: the IHE BALP StructureDefinitions kept in test/fixtures/balp, or this server's own
 * profiles in docs/fhir. An event claiming nothing is validated against base R4.
 */

const dir = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const scope = { issuer: 'https://authz.example.org', now: new Date('2026-01-02T03:04:05Z') };
const client = { clientId: 'chart', name: 'Chart', ip: '203.0.113.7' };
const user = { accountId: 'u-1', fhirUser: 'Practitioner/dr-1', ip: '198.51.100.9' };
const orgUser = {
  ...user,
  organization: { name: 'General Hospital', identifier: { system: 'urn:ietf:rfc:3986', value: 'urn:oid:1.2.3' } },
  purposeOfUse: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT', display: 'treatment' }],
};
const access = {
  name: { jti: 'j-1' },
  kind: 'AccessToken',
  format: 'jwt' as const,
  scope: 'patient/*.rs',
  expiresIn: 3600,
  audience: 'https://fhir.example.org',
};
const refresh = { name: { opaqueValue: 'rt-secret' }, kind: 'RefreshToken', scope: 'patient/*.rs offline_access' };

const events: Array<[string, AuditEvent]> = [
  [
    'token issued (user, patient, both tokens)',
    tokenIssued(scope, {
      client,
      grantType: 'authorization_code',
      user,
      patient: 'p-1',
      consentId: 'c-1',
      grantId: 'g-1',
      accessToken: access,
      refreshToken: refresh,
    }),
  ],
  ['token issued (client_credentials)', tokenIssued(scope, { client, grantType: 'client_credentials', accessToken: access })],
  ['token refreshed', tokenIssued(scope, { client, grantType: 'refresh_token', user, patient: 'p-1', accessToken: access })],
  [
    'token refused (known client)',
    tokenRefused(scope, {
      client,
      grantType: 'authorization_code',
      error: 'invalid_grant',
      reason: 'code already used',
      status: 400,
      user,
      patient: 'p-1',
      grantId: 'g-1',
    }),
  ],
  ['token refused (no client)', tokenRefused(scope, { ip: '192.0.2.1', error: 'invalid_client', status: 401 })],
  ['token refused (server error)', tokenRefused(scope, { client, error: 'server_error', status: 500 })],
  ['refresh reuse', refreshReuse(scope, { client, refreshToken: { opaqueValue: 'rt' }, grantId: 'g-1', user, patient: 'p-1' })],
  [
    'introspected (active, other client, user)',
    tokenIntrospected(scope, {
      caller: { clientId: 'rs', ip: '10.0.0.2' },
      active: true,
      token: {
        name: { jti: 'j-1' },
        kind: 'AccessToken',
        clientId: 'chart',
        accountId: 'u-1',
        patient: 'p-1',
        scope: 'patient/*.rs',
        grantId: 'g-1',
      },
    }),
  ],
  [
    'introspected (inactive)',
    tokenIntrospected(scope, { caller: { clientId: 'rs', ip: '10.0.0.2' }, active: false, presented: { opaqueValue: 'x' } }),
  ],
  [
    'revoked',
    tokenRevoked(scope, {
      caller: client,
      token: { name: { jti: 'j-1' }, kind: 'AccessToken', clientId: 'chart', grantId: 'g-1', accountId: 'u-1' },
      grantRevoked: true,
    }),
  ],
  ['revocation refused', tokenRevoked(scope, { ip: '192.0.2.1', error: { error: 'invalid_client', status: 401 } })],
  [
    'authorization granted (all facts)',
    authorizationDecision(scope, {
      client,
      user: orgUser,
      patient: 'p-1',
      consentId: 'c-1',
      scope: 'patient/*.rs',
      granted: true,
      grantId: 'g-1',
    }),
  ],
  ['authorization granted (no organization, no patient)', authorizationDecision(scope, { client, user, scope: 'openid', granted: true })],
  [
    'authorization denied by the user',
    authorizationDecision(scope, {
      client,
      user: orgUser,
      patient: 'p-1',
      consentId: 'c-1',
      scope: 'patient/*.rs',
      granted: false,
      error: 'access_denied',
      deniedByUser: true,
    }),
  ],
  [
    'authorization refused (no user)',
    authorizationDecision(scope, { client, granted: false, error: 'invalid_request', reason: 'bad redirect_uri' }),
  ],
  [
    'consent recorded (user)',
    consentRecorded(scope, { consentId: 'c-1', patient: 'p-1', user, client, decision: 'permit', scopes: ['patient/*.rs'] }),
  ],
  [
    'consent withdrawn (performer)',
    consentWithdrawn(scope, { consentId: 'c-1', patient: 'p-1', performer: 'Patient/p-1', ip: '192.0.2.5', grantsRevoked: 2 }),
  ],
  [
    'break the glass',
    breakTheGlass(scope, { reason: 'unconscious patient', user, client, patient: 'p-1', tokenJti: 'j-2', scope: 'patient/*.rs' }),
  ],
  ['login', loginSucceeded(scope, { user, client: { clientId: 'chart' } })],
  ['login failed', loginFailed(scope, { ip: '192.0.2.1', description: 'Invalid user name or password' })],
  ['account locked', accountLocked(scope, { accountId: 'u-1', ip: '192.0.2.1', failures: 5, lockSeconds: 900 })],
  ['logout', loggedOut(scope, { user, everywhere: true })],
  [
    'second factor enrolled (WebAuthn, by the user)',
    factorEnrolled(scope, { actor: { user }, accountId: 'u-1', kind: 'webauthn', factorId: 'f-1', label: 'Blue key', keyType: 'hwk' }),
  ],
  ['recovery codes issued', factorEnrolled(scope, { actor: { user }, accountId: 'u-1', kind: 'recovery', count: 10 })],
  [
    'second factor removed (by SCIM)',
    factorRemoved(scope, { actor: { client }, accountId: 'u-1', factorId: 'f-1', kind: 'totp', userName: 'jane' }),
  ],
  [
    'second factors reset (CLI)',
    factorsReset(scope, {
      actor: { operator: { display: 'smart-authz CLI (ops@host)', host: 'host-1' } },
      accountId: 'u-1',
      factors: 2,
      recoveryCodes: 9,
    }),
  ],
  [
    'second factor verified',
    secondFactorVerified(scope, { user, client: { clientId: 'chart' }, kind: 'webauthn', factorId: 'f-1', amr: ['hwk'] }),
  ],
  ['second factor failed', secondFactorFailed(scope, { user, kind: 'totp', reason: 'reused' })],
  [
    'federated login',
    federatedLoginSucceeded(scope, {
      user,
      client: { clientId: 'chart' },
      upstream: { provider: 'entra', issuer: 'https://login.example.com/t/v2.0', subject: 'up-1', amr: ['pwd', 'mfa'], acr: 'c1' },
    }),
  ],
  [
    'federated login refused (matched user)',
    federatedLoginFailed(scope, {
      accountId: 'u-1',
      ip: '192.0.2.1',
      upstream: { provider: 'entra', issuer: 'https://login.example.com/t/v2.0', subject: 'up-1' },
      reason: 'subject_mismatch',
      description: 'the user is linked to another upstream account',
    }),
  ],
  [
    'federated login refused (no subject)',
    federatedLoginFailed(scope, {
      ip: '192.0.2.1',
      client: { clientId: 'chart' },
      upstream: { provider: 'entra', issuer: 'https://login.example.com/t/v2.0' },
      reason: 'upstream_error',
      description: 'the identity provider answered with an error',
      upstreamError: 'access_denied',
    }),
  ],
  [
    'upstream identity linked',
    upstreamIdentityLinked(scope, {
      user,
      upstream: { provider: 'okta', issuer: 'https://org.okta.example', subject: 'up-2' },
      created: false,
    }),
  ],
  [
    'user provisioned at a federated sign-in',
    upstreamIdentityLinked(scope, {
      user: { accountId: 'u-3' },
      upstream: { provider: 'okta', issuer: 'https://org.okta.example', subject: 'up-3' },
      created: true,
      attributes: ['userName', 'emails'],
    }),
  ],

  [
    'launch created',
    launchCreated(scope, { launcher: client, appClientId: 'chart', patient: 'p-1', launch: 'launch-value', accountId: 'u-1' }),
  ],
  ['user created', directoryChanged(scope, { actor: { client }, resource: 'User', change: 'create', id: 'u-2', name: 'jane' })],
  [
    'password changed',
    passwordChanged(scope, { actor: { operator: { display: 'smart-authz CLI (ops@host)', host: 'host-1' } }, userId: 'u-2' }),
  ],
  [
    'client registered',
    clientChanged(scope, { actor: { client }, clientId: 'new-app', change: 'create', fields: ['redirect_uris'], via: 'registration' }),
  ],
  [
    'key introduced',
    keyChanged(scope, { actor: { operator: { display: 'smart-authz CLI (ops@host)' } }, change: 'introduced', kid: 'k1', kty: 'EC' }),
  ],
  ['trail searched', trailAccessed(scope.issuer, { reader: { client, user }, access: { kind: 'search', query: 'patient=p-1' } })],
  ['trail exported', trailExported(scope.issuer, { actor: { client }, query: '_since=2026-01-01', count: 3 })],
];

let validator: ProfileValidator;
beforeAll(async () => {
  validator = await profileValidator([dir('../../fixtures/balp'), dir('../../../docs/fhir')]);
}, 60_000);
afterAll(() => validator?.close());

describe('every builder meets the profile it claims', () => {
  test.each(events)('%s', (_name, event) => {
    const profiles = event.meta?.profile ?? [];
    expect(profiles.length).toBeLessThanOrEqual(1);
    expect(validator.problems(event, profiles[0])).toEqual([]);
  });
});

describe('the validator catches what BALP forbids (the checks are live)', () => {
  const granted = events.find(([n]) => n === 'authorization granted (all facts)')![1];
  test('the full authorization decision claims IHE BALP AuthZconsent', () => {
    expect(granted.meta?.profile).toEqual([BALP_PROFILES.authzConsent]);
  });
  test('a network on agent[user] (0..0 inside the slice) is an error', () => {
    const bad = structuredClone(granted);
    const u = bad.agent.find((a) => a.type?.coding?.[0]?.code === 'IRCP')!;
    u.network = { address: '198.51.100.9', type: '2' };
    expect(validator.problems(bad, BALP_PROFILES.authzConsent)).toEqual([expect.stringMatching(/agent\[\d\] \(user\)\.network/)]);
  });
  test('an entity outside the closed slicing is an error', () => {
    const bad = structuredClone(granted);
    bad.entity!.push({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      what: { identifier: { value: 'x' } },
    });
    expect(validator.problems(bad, BALP_PROFILES.authzConsent).join('\n')).toMatch(/matches no slice of the closed slicing/);
  });
  test('a missing consent entity is an error (slice consent 1..*)', () => {
    const bad = structuredClone(granted);
    bad.entity = bad.entity!.filter((e) => e.type?.code !== 'Consent');
    expect(validator.problems(bad, BALP_PROFILES.authzConsent).join('\n')).toMatch(/consent/);
  });
  test('our token events do not meet IHE.IUA.71 (why they claim our own profile): two subtypes, no token-request entity', () => {
    const issued = events[0]![1];
    const problems = validator.problems(issued, BALP_PROFILES.iua71).join('\n');
    expect(problems).toMatch(/subtype/);
    expect(problems).toMatch(/token-request/);
  });
});
