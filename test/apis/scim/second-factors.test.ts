import { generate } from 'otplib';
import { createScimApp, patchOps, SMART, USER_SCHEMA, type ScimTestApp } from './support.js';
import { LoginLockout } from '../../../src/records/directory/lockout.js';
import { createSecondFactors, type SecondFactors } from '../../../src/records/directory/factors/second-factors.js';
import { SoftAuthenticator } from '../../records/directory/factors/soft-authenticator.js';
import { agentByType, detail, expectValid, one, recordedBy, withLocal } from '../../records/audit/events-support.js';

/*
 * The SMART extension's read-only secondFactors and recoveryCodesLeft over SCIM: shown with the
 * user, reset by PATCH remove (all, or one by filter), every other write refused with 400
 * mutability, and each reset recorded in the audit trail with the SCIM client as the actor.
 */

let t: ScimTestApp;
let factors: SecondFactors;

beforeAll(async () => {
  t = await createScimApp();
  factors = createSecondFactors(t.config, t.redis, t.keyspace, new LoginLockout(t.redis, t.keyspace, t.config.login));
});
afterAll(async () => {
  await t.close();
});

let n = 0;
async function userWithFactors(): Promise<{ id: string; totp: string; key: string }> {
  const res = await t.post('/Users', { schemas: [USER_SCHEMA], userName: `mfa.user.${++n}`, displayName: 'MFA user' });
  expect(res.status).toBe(201);
  const id = res.body.id as string;
  const { secret } = await factors.beginTotp(id, 'mfa');
  const totp = await factors.confirmTotp(id, await generate({ secret }), 'Phone');
  const rp = new URL(t.config.issuer);
  const options = await factors.registrationOptions(id, { userName: 'mfa', displayName: 'MFA' }, 'b');
  const key = await factors.verifyRegistration(
    id,
    new SoftAuthenticator({ id: rp.hostname, origin: rp.origin }).register(options),
    'b',
    'Blue key',
  );
  await factors.newRecoveryCodes(id);
  return { id, totp: totp!.id, key: key.id };
}

const smartOf = (body: Record<string, unknown>) => body[SMART] as Record<string, unknown> | undefined;

test('a user without second factors looks as before', async () => {
  const res = await t.post('/Users', { schemas: [USER_SCHEMA], userName: 'no.factors' });
  const read = await t.get(`/Users/${res.body.id}`);
  expect(read.body.schemas).toEqual([USER_SCHEMA]);
  expect(smartOf(read.body)).toBeUndefined();
});

test('GET by id and list pages show the factors (id, kind, label, created) and the recovery codes left, never a secret', async () => {
  const u = await userWithFactors();
  const read = await t.get(`/Users/${u.id}`);
  expect(read.status).toBe(200);
  expect(read.body.schemas).toContain(SMART);
  const smart = smartOf(read.body)!;
  expect(smart.secondFactors).toEqual([
    { value: u.totp, type: 'totp', display: 'Phone', created: expect.any(String) },
    { value: u.key, type: 'webauthn', display: 'Blue key', created: expect.any(String) },
  ]);
  expect(smart.recoveryCodesLeft).toBe(10);
  expect(JSON.stringify(read.body)).not.toMatch(/secret|publicKey|credentialId/);

  const list = await t.get(`/Users?filter=${encodeURIComponent(`userName eq "mfa.user.${n}"`)}`);
  expect(smartOf(list.body.Resources[0])!.secondFactors).toHaveLength(2);
  const projected = await t.get(`/Users/${u.id}?attributes=${encodeURIComponent(`${SMART}:recoveryCodesLeft`)}`);
  expect(smartOf(projected.body)).toEqual({ recoveryCodesLeft: 10 });
});

test('add, replace and other writes of the read-only attributes are refused with 400 mutability', async () => {
  const u = await userWithFactors();
  const refusals = [
    patchOps({ op: 'add', path: `${SMART}:secondFactors`, value: [{ value: 'mine', type: 'totp' }] }),
    patchOps({ op: 'replace', path: `${SMART}:secondFactors`, value: [] }),
    patchOps({ op: 'replace', path: `${SMART}:recoveryCodesLeft`, value: 99 }),
    patchOps({ op: 'remove', path: `${SMART}:recoveryCodesLeft` }),
    patchOps({ op: 'remove', path: `${SMART}:secondFactors.display` }),
    patchOps({ op: 'replace', value: { [SMART]: { secondFactors: [] } } }),
  ];
  for (const body of refusals) {
    const res = await t.patch(`/Users/${u.id}`, body);
    expect([res.status, res.body.scimType]).toEqual([400, 'mutability']);
  }
  expect(await factors.list(u.id)).toHaveLength(2);
  expect(await factors.recoveryCodesLeft(u.id)).toBe(10);
});

test('PUT: leaving the attributes out, or sending them back as read, changes nothing; other values are refused', async () => {
  const u = await userWithFactors();
  const read = (await t.get(`/Users/${u.id}`)).body;
  const without = await t.put(`/Users/${u.id}`, { schemas: [USER_SCHEMA], userName: read.userName, displayName: 'Renamed' });
  expect(without.status).toBe(200);
  expect(smartOf(without.body)!.secondFactors).toHaveLength(2);
  const asRead = await t.put(`/Users/${u.id}`, { ...read, displayName: 'Renamed again' });
  expect(asRead.status).toBe(200);
  for (const smart of [{ secondFactors: [] }, { secondFactors: [{ value: u.totp }] }, { recoveryCodesLeft: 3 }]) {
    const res = await t.put(`/Users/${u.id}`, { schemas: [USER_SCHEMA, SMART], userName: read.userName, [SMART]: smart });
    expect([res.status, res.body.scimType]).toEqual([400, 'mutability']);
  }
  const urnKey = await t.put(`/Users/${u.id}`, { schemas: [USER_SCHEMA], userName: read.userName, [`${SMART}:secondFactors`]: [] });
  expect(urnKey.status).toBe(400);
  expect(await factors.list(u.id)).toHaveLength(2);
  const created = await t.post('/Users', {
    schemas: [USER_SCHEMA, SMART],
    userName: 'made.with.factors',
    [SMART]: { secondFactors: [{ value: 'x' }] },
  });
  expect([created.status, created.body.scimType]).toEqual([400, 'mutability']);
});

test('PATCH remove with a value filter removes that factor, recorded with the SCIM client as actor', async () => {
  const u = await userWithFactors();
  const { result, events } = await recordedBy(t, () =>
    t.patch(`/Users/${u.id}`, patchOps({ op: 'remove', path: `${SMART}:secondFactors[value eq "${u.key}"]` })),
  );
  expect(result.status).toBe(200);
  expect(smartOf(result.body)!.secondFactors).toEqual([expect.objectContaining({ value: u.totp })]);
  expect((await factors.list(u.id)).map((f) => f.id)).toEqual([u.totp]);
  const removed = one(events, 'mfa-removed');
  expectValid(removed);
  expect(detail(removed, 'factor_id')).toBe(u.key);
  expect(detail(removed, 'factor_kind')).toBe('webauthn');
  expect(agentByType(removed, '110150')[0]).toMatchObject({ requestor: true, who: { identifier: { value: 'scim-admin' } } });
  one(events, 'user-updated');
  expect(await factors.recoveryCodesLeft(u.id)).toBe(10); // a factor is left: the codes stay

  // By kind, and Entra's remove-with-value. The last factor takes the recovery codes with it.
  await t.patch(`/Users/${u.id}`, patchOps({ op: 'remove', path: `${SMART}:secondFactors[type eq "totp"]` }));
  expect(await factors.hasAny(u.id)).toBe(false);
  expect(await factors.recoveryCodesLeft(u.id)).toBe(0);
});

test('PATCH remove secondFactors resets everything: factors and recovery codes; the ETag moves; one mfa-reset event', async () => {
  const u = await userWithFactors();
  const before = await t.get(`/Users/${u.id}`);
  const { result, events } = await recordedBy(t, () =>
    t.patch(`/Users/${u.id}`, patchOps({ op: 'remove', path: `${SMART}:secondFactors` })),
  );
  expect(result.status).toBe(200);
  expect(smartOf(result.body)).toBeUndefined();
  expect(result.headers.etag).not.toBe(before.headers.etag);
  expect(await factors.hasAny(u.id)).toBe(false);
  expect(await factors.recoveryCodesLeft(u.id)).toBe(0);
  const reset = one(events, 'mfa-reset');
  expectValid(reset);
  expect(detail(reset, 'factors_removed')).toBe('2');
  expect(detail(reset, 'recovery_codes_removed')).toBe('10');
  expect(reset.entity![0]!.what!.identifier!.value).toBe(u.id);
  expect(agentByType(reset, '110150')[0]).toMatchObject({ who: { identifier: { value: 'scim-admin' } } });
});

test('a PATCH refused as a whole resets nothing: a bad filter, a bad other operation, a stale If-Match', async () => {
  const u = await userWithFactors();
  const badFilter = await t.patch(`/Users/${u.id}`, patchOps({ op: 'remove', path: `${SMART}:secondFactors[value eq ]` }));
  expect([badFilter.status, badFilter.body.scimType]).toEqual([400, 'invalidPath']);
  const badOther = await t.patch(
    `/Users/${u.id}`,
    patchOps({ op: 'remove', path: `${SMART}:secondFactors` }, { op: 'replace', path: 'active', value: 'maybe' }),
  );
  expect(badOther.status).toBe(400);
  const stale = await t.request
    .patch(`/scim/v2/Users/${u.id}`)
    .set('Authorization', `Bearer ${t.token}`)
    .set('Content-Type', 'application/scim+json')
    .set('If-Match', 'W/"999"')
    .send(JSON.stringify(patchOps({ op: 'remove', path: `${SMART}:secondFactors` })));
  expect(stale.status).toBe(412);
  const notPatchOp = await t.patch(`/Users/${u.id}`, { Operations: [{ op: 'remove', path: `${SMART}:secondFactors` }] });
  expect(notPatchOp.status).toBe(400);
  expect(await factors.list(u.id)).toHaveLength(2);
  expect(await factors.recoveryCodesLeft(u.id)).toBe(10);

  // With a good other operation both happen.
  const both = await t.patch(
    `/Users/${u.id}`,
    patchOps({ op: 'remove', path: `${SMART}:secondFactors` }, { op: 'replace', path: 'displayName', value: 'Reset' }),
  );
  expect(both.status).toBe(200);
  expect(both.body.displayName).toBe('Reset');
  expect(await factors.hasAny(u.id)).toBe(false);
});

test('a reset of a user without factors is still recorded; deleting a user removes their factors', async () => {
  const plain = await t.post('/Users', { schemas: [USER_SCHEMA], userName: 'reset.nothing' });
  const { events } = await recordedBy(t, () =>
    t.patch(`/Users/${plain.body.id}`, patchOps({ op: 'remove', path: `${SMART}:secondFactors` })),
  );
  expect(detail(one(events, 'mfa-reset'), 'factors_removed')).toBe('0');

  const u = await userWithFactors();
  expect((await t.del(`/Users/${u.id}`)).status).toBe(204);
  expect(await t.redis.keys(`${t.keyspace.prefix}{mfa:${u.id}}*`)).toEqual([]);
  expect(withLocal(events, 'mfa-removed')).toHaveLength(0);
});
