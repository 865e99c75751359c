import { randomUUID } from 'node:crypto';
import { buildConsent, type ConsentDecision } from '../../../src/records/consent/consent-resource.js';
import { ConsentStore, ConsentSearchTooBroadError } from '../../../src/records/consent/consent-store.js';
import { ConsentNotFoundError, ConsentStateError } from '../../../src/records/consent/errors.js';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import { consentProblems } from './consent-shape.js';

const ISSUER = 'http://localhost:3000';
let redis: RedisClient;
let keyspace: Keyspace;
let store: ConsentStore;

function decision(overrides: Partial<ConsentDecision> = {}): ConsentDecision {
  return {
    kind: 'permit',
    patientId: 'pat-1',
    performer: { reference: 'Patient/pat-1' },
    clientId: 'app-a',
    clientName: 'App A',
    scopes: ['openid', 'launch/patient', 'patient/Observation.rs', 'patient/Condition.r'],
    periodSeconds: 3600,
    ...overrides,
  };
}

async function record(overrides: Partial<ConsentDecision> = {}, now = new Date()) {
  const d = decision(overrides);
  return store.create(buildConsent(d, now, { issuer: ISSUER }), { scopes: d.scopes, now });
}

beforeAll(async () => {
  redis = createRedis({ url: process.env.REDIS_URL, prefix: '' });
  redis.on('error', () => {});
  await connectRedis(redis);
  keyspace = new Keyspace(`test-${randomUUID()}:`);
  store = new ConsentStore(redis, keyspace, { maxScan: 50 });
});
afterAll(() => redis.disconnect());

describe('create and get', () => {
  test('stores a valid R4 Consent under a random id, version 1, with its CREATE Provenance', async () => {
    const created = await record();
    const id = created.resource.id;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const got = (await store.get(id))!;
    expect(got.resource).toEqual(created.resource);
    expect(got).toMatchObject({
      version: 1,
      status: 'active',
      patientId: 'pat-1',
      clientId: 'app-a',
      performer: 'Patient/pat-1',
      scopes: decision().scopes,
    });
    expect(got.resource.meta.versionId).toBe('1');
    expect(got.end).toBe(Date.parse(got.resource.provision!.period!.end!));
    expect(consentProblems(got.resource as unknown as Record<string, unknown>)).toEqual([]);
    // The granted scope strings stay beside the resource, not inside it.
    expect(JSON.stringify(got.resource)).not.toContain('launch/patient');
    const [prov] = await store.provenance(id);
    expect(prov).toMatchObject({
      resourceType: 'Provenance',
      target: [{ reference: `Consent/${id}/_history/1` }],
      activity: { coding: [{ code: 'CREATE' }] },
      agent: [{ who: { reference: 'Patient/pat-1' } }],
    });
  });

  test('a refusal is stored too', async () => {
    const refused = await record({ kind: 'deny' });
    expect((await store.get(refused.resource.id))!.status).toBe('rejected');
  });

  test('an unknown id is undefined', async () => {
    expect(await store.get(randomUUID())).toBeUndefined();
  });

  test('every key is in the {consents} hash slot', async () => {
    const keys = await redis.keys(`${keyspace.prefix}*`);
    expect(keys.length).toBeGreaterThan(3);
    for (const k of keys) expect(k.startsWith(`${keyspace.prefix}{consents}:`)).toBe(true);
  });
});

describe('grants', () => {
  test('are linked both ways', async () => {
    const c = await record();
    await store.linkGrant(c.resource.id, 'grant-1');
    await store.linkGrant(c.resource.id, 'grant-2');
    expect((await store.consentForGrant('grant-1'))!.resource.id).toBe(c.resource.id);
    expect((await store.grantsOf(c.resource.id)).sort()).toEqual(['grant-1', 'grant-2']);
    expect(await store.consentForGrant('grant-unknown')).toBeUndefined();
  });

  test('cannot be linked to a refusal, a withdrawn or an unknown Consent', async () => {
    const refused = await record({ kind: 'deny' });
    await expect(store.linkGrant(refused.resource.id, 'g')).rejects.toThrow(ConsentStateError);
    const c = await record();
    await store.withdraw(c.resource.id, { reference: 'Patient/pat-1' });
    await expect(store.linkGrant(c.resource.id, 'g')).rejects.toThrow(ConsentStateError);
    await expect(store.linkGrant(randomUUID(), 'g')).rejects.toThrow(ConsentNotFoundError);
    expect(await store.consentForGrant('g')).toBeUndefined();
  });
});

describe('withdraw', () => {
  test('sets status inactive in a new version, records the UPDATE Provenance and answers the grants', async () => {
    const c = await record();
    await store.linkGrant(c.resource.id, 'gw-1');
    const at = new Date(Date.now() + 5000);
    const result = await store.withdraw(c.resource.id, { reference: 'Device/admin', display: 'admin' }, at);
    expect(result.changed).toBe(true);
    expect(result.grantIds).toEqual(['gw-1']);
    const got = (await store.get(c.resource.id))!;
    expect(got.status).toBe('inactive');
    expect(got.version).toBe(2);
    expect(got.resource.status).toBe('inactive');
    expect(got.resource.meta.versionId).toBe('2');
    expect(got.resource.text!.div).toContain('status: inactive');
    expect(consentProblems(got.resource as unknown as Record<string, unknown>)).toEqual([]);
    const provenance = await store.provenance(c.resource.id);
    expect(provenance.map((p) => p.activity.coding[0]!.code)).toEqual(['CREATE', 'UPDATE']);
    expect(provenance[1]).toMatchObject({
      target: [{ reference: `Consent/${c.resource.id}/_history/2` }],
      agent: [{ who: { reference: 'Device/admin' } }],
    });

    const again = await store.withdraw(c.resource.id, { reference: 'Patient/pat-1' });
    expect(again).toMatchObject({ changed: false, grantIds: ['gw-1'] });
    expect(await store.provenance(c.resource.id)).toHaveLength(2);
  });

  test('a refusal cannot be withdrawn; an unknown id is not found', async () => {
    const refused = await record({ kind: 'deny' });
    await expect(store.withdraw(refused.resource.id, { reference: 'Patient/pat-1' })).rejects.toThrow(ConsentStateError);
    await expect(store.withdraw(randomUUID(), { reference: 'Patient/pat-1' })).rejects.toThrow(ConsentNotFoundError);
  });

  test('concurrent withdrawals write one new version', async () => {
    const c = await record();
    const results = await Promise.all([1, 2, 3].map(() => store.withdraw(c.resource.id, { reference: 'Patient/pat-1' })));
    expect(results.filter((r) => r.changed)).toHaveLength(1);
    expect((await store.get(c.resource.id))!.version).toBe(2);
    expect(await store.provenance(c.resource.id)).toHaveLength(2);
  });
});

describe('search', () => {
  let local: ConsentStore;
  const ids: Record<string, string> = {};
  const day = (d: number) => new Date(Date.UTC(2026, 0, d, 12));

  beforeAll(async () => {
    local = new ConsentStore(redis, new Keyspace(`test-${randomUUID()}:`), { maxScan: 5 });
    const add = async (name: string, overrides: Partial<ConsentDecision>, d: number) => {
      const dd = decision(overrides);
      ids[name] = (await local.create(buildConsent(dd, day(d), { issuer: ISSUER }), { scopes: dd.scopes, now: day(d) })).resource.id;
    };
    await add('p1a1', { patientId: 'p1', performer: { reference: 'Patient/p1' }, clientId: 'a1' }, 1);
    await add('p1a2', { patientId: 'p1', performer: { reference: 'Patient/p1' }, clientId: 'a2' }, 2);
    await add('p1a1deny', { patientId: 'p1', performer: { reference: 'Patient/p1' }, clientId: 'a1', kind: 'deny' }, 3);
    await add('p2a1', { patientId: 'p2', performer: { reference: 'Patient/p2' }, clientId: 'a1' }, 4);
    await add('p1a1late', { patientId: 'p1', performer: { reference: 'Patient/p1' }, clientId: 'a1' }, 5);
    await local.withdraw(ids.p1a1late!, { reference: 'Patient/p1' });
  });

  const found = (page: { consents: Array<{ resource: { id: string } }> }) =>
    page.consents.map((c) => Object.keys(ids).find((k) => ids[k] === c.resource.id));

  test('by patient, newest first, with total', async () => {
    const page = await local.search({ patient: 'p1', count: 10, offset: 0 });
    expect(page.total).toBe(4);
    expect(found(page)).toEqual(['p1a1late', 'p1a1deny', 'p1a2', 'p1a1']);
    expect(found(await local.search({ patient: 'Patient/p2', count: 10, offset: 0 }))).toEqual(['p2a1']);
  });

  test('by status (any of several)', async () => {
    expect(found(await local.search({ patient: 'p1', status: ['active'], count: 10, offset: 0 }))).toEqual(['p1a2', 'p1a1']);
    const page = await local.search({ patient: 'p1', status: ['rejected', 'inactive'], count: 10, offset: 0 });
    expect(page.total).toBe(2);
    expect(found(page)).toEqual(['p1a1late', 'p1a1deny']);
  });

  test('by actor: client id or Device reference, alone or with the patient', async () => {
    expect(found(await local.search({ actor: 'a1', count: 10, offset: 0 }))).toEqual(['p1a1late', 'p2a1', 'p1a1deny', 'p1a1']);
    expect(found(await local.search({ actor: 'Device/a2', count: 10, offset: 0 }))).toEqual(['p1a2']);
    expect(found(await local.search({ patient: 'p2', actor: 'a1', count: 10, offset: 0 }))).toEqual(['p2a1']);
    expect((await local.search({ patient: 'p2', actor: 'a2', count: 10, offset: 0 })).total).toBe(0);
  });

  test('by date range (inclusive bounds)', async () => {
    const page = await local.search({ dateFrom: day(2).getTime(), dateTo: day(4).getTime(), count: 10, offset: 0 });
    expect(found(page)).toEqual(['p2a1', 'p1a1deny', 'p1a2']);
    expect(page.total).toBe(3);
  });

  test('paging: count and offset, total unchanged', async () => {
    const first = await local.search({ count: 2, offset: 0 });
    const second = await local.search({ count: 2, offset: 2 });
    const third = await local.search({ count: 2, offset: 4 });
    expect([first.total, second.total, third.total]).toEqual([5, 5, 5]);
    expect([...found(first), ...found(second), ...found(third)]).toEqual(['p1a1late', 'p2a1', 'p1a1deny', 'p1a2', 'p1a1']);
    const filtered = await local.search({ patient: 'p1', status: ['active', 'inactive'], count: 1, offset: 1 });
    expect(filtered.total).toBe(3);
    expect(found(filtered)).toEqual(['p1a2']);
  });

  test('a filtered search over too many ids is refused', async () => {
    await local.create(buildConsent(decision({ patientId: 'p1' }), day(6), { issuer: ISSUER }), { scopes: [], now: day(6) });
    await local.create(buildConsent(decision({ patientId: 'p1' }), day(7), { issuer: ISSUER }), { scopes: [], now: day(7) });
    await expect(local.search({ status: ['active'], count: 10, offset: 0 })).rejects.toThrow(ConsentSearchTooBroadError);
  });
});

describe('remembered consent', () => {
  const who = { performerRef: 'Patient/pr-1', clientId: 'app-r', patientId: 'pr-1' };
  let permit: string;

  beforeAll(async () => {
    permit = (
      await record({
        patientId: 'pr-1',
        performer: { reference: 'Patient/pr-1' },
        clientId: 'app-r',
        scopes: ['openid', 'launch/patient', 'patient/Observation.r', 'patient/Observation.s', 'patient/Condition.rs'],
      })
    ).resource.id;
  });

  test('a request within the consented scopes is covered (permissions from several scopes combine)', async () => {
    const c = await store.coveringConsent({ ...who, scopes: ['openid', 'patient/Observation.rs', 'patient/Condition.r'] });
    expect(c?.resource.id).toBe(permit);
    expect(await store.missingScopes({ ...who, scopes: ['openid', 'patient/Observation.rs'] })).toEqual([]);
  });

  test('an absolute fhirUser URL is the same person', async () => {
    expect(
      (await store.coveringConsent({ ...who, performerRef: 'https://fhir.example/r4/Patient/pr-1', scopes: ['patient/Observation.r'] }))
        ?.resource.id,
    ).toBe(permit);
  });

  test('new scopes are not covered; only the difference is missing', async () => {
    const scopes = [
      'openid',
      'offline_access',
      'patient/Observation.rs',
      'patient/Observation.cruds',
      'patient/Condition.rs?category=x',
      'patient/MedicationRequest.r',
    ];
    expect(await store.coveringConsent({ ...who, scopes })).toBeUndefined();
    expect(await store.missingScopes({ ...who, scopes })).toEqual([
      'offline_access',
      'patient/Observation.cruds',
      'patient/MedicationRequest.r',
    ]);
    expect(await store.missingScopes({ ...who, scopes: ['patient/*.rs'] })).toEqual(['patient/*.rs']);
  });

  test('another person, app or patient is not covered', async () => {
    const scopes = ['patient/Observation.r'];
    expect(await store.coveringConsent({ ...who, performerRef: 'RelatedPerson/x', scopes })).toBeUndefined();
    expect(await store.coveringConsent({ ...who, clientId: 'other', scopes })).toBeUndefined();
    expect(await store.coveringConsent({ ...who, patientId: 'other', scopes })).toBeUndefined();
    expect(await store.missingScopes({ ...who, clientId: 'other', scopes })).toEqual(scopes);
  });

  test('an expired or withdrawn permit covers nothing; a refusal never did', async () => {
    const scopes = ['patient/Observation.r'];
    expect(await store.coveringConsent({ ...who, scopes }, new Date(Date.now() + 2 * 3600_000))).toBeUndefined();
    const other = { performerRef: 'Patient/pr-2', clientId: 'app-r', patientId: 'pr-2' };
    await record({ patientId: 'pr-2', performer: { reference: 'Patient/pr-2' }, clientId: 'app-r', kind: 'deny', scopes });
    expect(await store.coveringConsent({ ...other, scopes })).toBeUndefined();
    const c = await record({ patientId: 'pr-2', performer: { reference: 'Patient/pr-2' }, clientId: 'app-r', scopes });
    expect((await store.coveringConsent({ ...other, scopes }))?.resource.id).toBe(c.resource.id);
    await store.withdraw(c.resource.id, { reference: 'Patient/pr-2' });
    expect(await store.coveringConsent({ ...other, scopes })).toBeUndefined();
  });
});
