import { randomUUID } from 'node:crypto';
import { errors } from 'oidc-provider';
import type { ConsentDecision } from '../../../src/records/consent/consent-resource.js';
import { ConsentService } from '../../../src/records/consent/consent-service.js';
import { ConsentStore } from '../../../src/records/consent/consent-store.js';
import { ConsentRequiredError } from '../../../src/records/consent/errors.js';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { consentProblems } from './consent-shape.js';

let redis: RedisClient;
let service: ConsentService;
/** Grants the service asked to revoke, in order. */
let revoked: string[];
let failRevocation = false;

const decision = (overrides: Partial<ConsentDecision> = {}): ConsentDecision => ({
  kind: 'permit',
  patientId: 'pat-1',
  performer: { reference: 'Patient/pat-1' },
  clientId: 'app',
  clientName: 'App',
  scopes: ['openid', 'launch/patient', 'patient/Observation.rs', 'patient/Condition.r'],
  periodSeconds: 3600,
  ...overrides,
});

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL, prefix: '' });
  redis.on('error', () => {});
  await connectRedis(redis);
  const store = new ConsentStore(redis, new Keyspace(`test-${randomUUID()}:`));
  service = new ConsentService({
    store,
    issuer: 'http://localhost:3000',
    revokeGrant: async (grantId) => {
      if (failRevocation) throw new Error('store down');
      revoked.push(grantId);
    },
  });
});
beforeEach(() => {
  revoked = [];
  failRevocation = false;
});
afterAll(() => redis.disconnect());

describe('recordDecision', () => {
  test('Allow: an active permit, tied to the grant when one is given', async () => {
    const consent = await service.recordDecision(decision({ grantId: 'g-allow' }));
    expect(consent.status).toBe('active');
    expect(consentProblems(consent as unknown as Record<string, unknown>)).toEqual([]);
    expect((await service.store.consentForGrant('g-allow'))!.resource.id).toBe(consent.id);
  });

  test('Deny: a rejected Consent, never tied to a grant', async () => {
    const consent = await service.recordDecision(decision({ kind: 'deny', grantId: 'g-deny' }));
    expect(consent.status).toBe('rejected');
    expect(consentProblems(consent as unknown as Record<string, unknown>)).toEqual([]);
    expect(await service.store.get(consent.id)).toBeDefined();
    expect(await service.store.consentForGrant('g-deny')).toBeUndefined();
  });
});

describe('withdraw', () => {
  test('revokes every grant tied to the Consent', async () => {
    const consent = await service.recordDecision(decision({ grantId: 'g-w1' }));
    await service.linkGrant(consent.id, 'g-w2');
    const after = await service.withdraw(consent.id, { reference: 'Patient/pat-1' });
    expect(after.status).toBe('inactive');
    expect(revoked.sort()).toEqual(['g-w1', 'g-w2']);
  });

  test('a failed revocation fails the call; repeating it revokes again', async () => {
    const consent = await service.recordDecision(decision({ grantId: 'g-retry' }));
    failRevocation = true;
    await expect(service.withdraw(consent.id, { reference: 'Patient/pat-1' })).rejects.toThrow(/could not be revoked/);
    expect((await service.store.get(consent.id))!.status).toBe('inactive');
    failRevocation = false;
    await service.withdraw(consent.id, { reference: 'Patient/pat-1' });
    expect(revoked).toEqual(['g-retry']);
  });
});

describe('assertActiveForGrant', () => {
  test('passes for an active Consent covering the patient scopes (other scopes are not its business)', async () => {
    await service.recordDecision(decision({ grantId: 'g-ok' }));
    const c = await service.assertActiveForGrant('g-ok', 'openid fhirUser patient/Observation.r patient/Condition.r user/Practitioner.r');
    expect(c.status).toBe('active');
    expect(revoked).toEqual([]);
  });

  test('missing → ConsentRequiredError (invalid_grant) and the grant is revoked', async () => {
    const err = await service.assertActiveForGrant('g-none', ['patient/Observation.r']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConsentRequiredError);
    expect(err).toBeInstanceOf(errors.InvalidGrant);
    expect(err).toMatchObject({ problem: 'missing', error: 'invalid_grant', status: 400, grantId: 'g-none' });
    expect(revoked).toEqual(['g-none']);
  });

  test('withdrawn → inactive, revoked', async () => {
    const consent = await service.recordDecision(decision({ grantId: 'g-wd' }));
    await service.withdraw(consent.id, { reference: 'Patient/pat-1' });
    revoked = [];
    await expect(service.assertActiveForGrant('g-wd', ['patient/Observation.r'])).rejects.toMatchObject({
      problem: 'inactive',
      consentId: consent.id,
    });
    expect(revoked).toEqual(['g-wd']);
  });

  test('expired → expired, revoked', async () => {
    await service.recordDecision(decision({ grantId: 'g-exp', periodSeconds: 60 }));
    await expect(service.assertActiveForGrant('g-exp', ['patient/Observation.r'], new Date(Date.now() + 61_000))).rejects.toMatchObject({
      problem: 'expired',
    });
    expect(revoked).toEqual(['g-exp']);
  });

  test('scopes beyond the Consent → not-covered, and the grant stays', async () => {
    await service.recordDecision(decision({ grantId: 'g-more' }));
    await expect(service.assertActiveForGrant('g-more', ['patient/Observation.rs', 'patient/MedicationRequest.r'])).rejects.toMatchObject({
      problem: 'not-covered',
    });
    expect(revoked).toEqual([]);
  });
});

describe('remembered consent through the service', () => {
  test('covering consent and the missing difference', async () => {
    const consent = await service.recordDecision(
      decision({ patientId: 'pat-r', performer: { reference: 'RelatedPerson/rp-9' }, clientId: 'app-r' }),
    );
    const who = { performerRef: 'RelatedPerson/rp-9', clientId: 'app-r', patientId: 'pat-r' };
    expect((await service.coveringConsent({ ...who, scopes: ['patient/Observation.r'] }))?.resource.id).toBe(consent.id);
    expect(await service.missingScopes({ ...who, scopes: ['patient/Observation.r', 'patient/Encounter.r'] })).toEqual([
      'patient/Encounter.r',
    ]);
  });
});
