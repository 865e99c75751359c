import { UserStore } from '../../../src/records/directory/user-store.js';
import { createScimApp, GROUP_SCHEMA, patchOps, SMART, SMART_GROUP, USER_SCHEMA, type Resource, type ScimTestApp } from './support.js';

let t: ScimTestApp;
let store: UserStore;
let seq = 0;

beforeAll(async () => {
  t = await createScimApp();
  store = new UserStore({ redis: t.redis, keyspace: t.keyspace, passwords: t.config.passwords });
});
afterAll(() => t.close());

const DOCTOR = { system: 'http://snomed.info/sct', code: '158965000', display: 'Medical practitioner' };
const NURSE = { system: 'http://snomed.info/sct', code: '224535009', display: 'Registered nurse' };
const ADMIN = { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'ADMIN' };

async function user(extra: Record<string, unknown> = {}): Promise<Resource> {
  seq += 1;
  const res = await t.post('/Users', { schemas: [USER_SCHEMA], userName: `member${seq}`, displayName: `Member ${seq}`, ...extra });
  expect(res.status).toBe(201);
  return res.body;
}

async function group(displayName: string, members: string[] = [], extra: Record<string, unknown> = {}): Promise<Resource> {
  const res = await t.post('/Groups', { schemas: [GROUP_SCHEMA], displayName, members: members.map((value) => ({ value })), ...extra });
  expect(res.status).toBe(201);
  return res.body;
}

const memberIds = (g: { members?: Array<{ value: string }> }) => (g.members ?? []).map((m) => m.value).sort();

describe('Groups CRUD', () => {
  test('POST with members and roles; GET with and without members', async () => {
    const a = await user();
    const b = await user({ displayName: undefined });
    const res = await t.post('/Groups', {
      schemas: [GROUP_SCHEMA, SMART_GROUP],
      displayName: 'Ward 7 Doctors',
      externalId: 'okta-00g1',
      members: [{ value: a.id, display: 'ignored' }, { value: b.id }],
      [SMART_GROUP]: { roles: [DOCTOR] },
    });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`http://localhost:3000/scim/v2/Groups/${res.body.id}`);
    expect(res.body).toMatchObject({
      schemas: [GROUP_SCHEMA, SMART_GROUP],
      displayName: 'Ward 7 Doctors',
      externalId: 'okta-00g1',
      [SMART_GROUP]: { roles: [DOCTOR] },
      meta: { resourceType: 'Group', version: 'W/"1"' },
    });
    expect(res.body.members).toEqual(
      expect.arrayContaining([
        { value: a.id, $ref: `http://localhost:3000/scim/v2/Users/${a.id}`, display: 'Member ' + a.userName.slice(6), type: 'User' },
        { value: b.id, $ref: `http://localhost:3000/scim/v2/Users/${b.id}`, display: b.userName, type: 'User' },
      ]),
    );
    const got = await t.get(`/Groups/${res.body.id}`);
    expect(memberIds(got.body)).toEqual([a.id, b.id].sort());
    const lean = await t.get(`/Groups/${res.body.id}?excludedAttributes=members`);
    expect(lean.body.members).toBeUndefined();
    expect(lean.body.displayName).toBe('Ward 7 Doctors');
    const onlyName = await t.get(`/Groups/${res.body.id}?attributes=displayName`);
    expect(Object.keys(onlyName.body).sort()).toEqual(['displayName', 'id', 'schemas']);
  });

  test('a member must be a user of this directory, and groups cannot be members', async () => {
    const missing = await t.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ghosts', members: [{ value: 'no-such-user' }] });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ scimType: 'invalidValue', detail: expect.stringMatching(/no-such-user.*not a user/) });
    const g = await group('Parent');
    const nested = await t.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Nested', members: [{ value: g.id, type: 'Group' }] });
    expect(nested.status).toBe(400);
    expect((await t.post('/Groups', { schemas: [GROUP_SCHEMA] })).body.detail).toBe('displayName is required');
  });

  test('users show their groups (read-only)', async () => {
    const u = await user();
    const g1 = await group('Alpha team', [u.id]);
    const g2 = await group('Beta team', [u.id]);
    const res = await t.get(`/Users/${u.id}`);
    expect(res.body.groups).toEqual(
      [g1, g2]
        .map((g) => ({ value: g.id, $ref: `http://localhost:3000/scim/v2/Groups/${g.id}`, display: g.displayName, type: 'direct' }))
        .sort((x, y) => (x.value < y.value ? -1 : 1)),
    );
    const filtered = await t.get(`/Users?filter=${encodeURIComponent(`groups.value eq "${g1.id}" and id eq "${u.id}"`)}`);
    expect(filtered.body.totalResults).toBe(1);
  });

  test('PUT replaces attributes and the member list', async () => {
    const [a, b, c] = [await user(), await user(), await user()];
    const g = await group('Replace me', [a.id, b.id]);
    const res = await t.put(`/Groups/${g.id}`, {
      schemas: [GROUP_SCHEMA],
      displayName: 'Replaced',
      members: [{ value: b.id }, { value: c.id }],
    });
    expect(res.status).toBe(200);
    expect(res.body.displayName).toBe('Replaced');
    expect(memberIds(res.body)).toEqual([b.id, c.id].sort());
    expect((await t.get(`/Users/${a.id}`)).body.groups).toBeUndefined();
    expect((await t.get(`/Users/${c.id}`)).body.groups.map((x: { value: string }) => x.value)).toEqual([g.id]);
  });

  test('DELETE removes the group from its members', async () => {
    const u = await user({ [SMART]: { roles: [NURSE] } });
    const g = await group('Temporary', [u.id], { [SMART_GROUP]: { roles: [ADMIN] } });
    expect(await store.effectiveRoles(u.id)).toEqual([NURSE, ADMIN]);
    expect((await t.del(`/Groups/${g.id}`)).status).toBe(204);
    expect((await t.get(`/Groups/${g.id}`)).status).toBe(404);
    expect((await t.get(`/Users/${u.id}`)).body.groups).toBeUndefined();
    expect(await store.effectiveRoles(u.id)).toEqual([NURSE]);
    expect((await t.del(`/Groups/${g.id}`)).status).toBe(404);
  });

  test('deleting a user takes it out of its groups and moves their version', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Survivors', [a.id, b.id]);
    expect((await t.del(`/Users/${a.id}`)).status).toBe(204);
    const after = await t.get(`/Groups/${g.id}`);
    expect(memberIds(after.body)).toEqual([b.id]);
    expect(after.body.meta.version).not.toBe(g.meta.version);
    expect((await t.get(`/Groups?filter=${encodeURIComponent(`members[value eq "${a.id}"]`)}`)).body.totalResults).toBe(0);
  });
});

describe('Groups: filters', () => {
  test('displayName (case-insensitive), externalId (case-exact) and members[value eq …] use indexes', async () => {
    const u = await user();
    const g = await group('Cardiology Nurses', [u.id], { externalId: 'Ext-Card' });
    const q = async (filter: string) => (await t.get(`/Groups?filter=${encodeURIComponent(filter)}&excludedAttributes=members`)).body;
    expect((await q('displayName eq "cardiology nurses"')).Resources.map((r: { id: string }) => r.id)).toEqual([g.id]);
    expect((await q('externalId eq "Ext-Card"')).totalResults).toBe(1);
    expect((await q('externalId eq "ext-card"')).totalResults).toBe(0);
    const entra = await q(`id eq "${g.id}" and members[value eq "${u.id}"]`);
    expect(entra.totalResults).toBe(1);
    expect(entra.Resources[0].members).toBeUndefined();
    expect((await q(`members.value eq "${u.id}"`)).totalResults).toBe(1);
    expect((await t.get(`/Groups?filter=${encodeURIComponent('userName eq "x"')}`)).body.scimType).toBe('invalidFilter');
  });
});

describe('Groups: listing and searching', () => {
  test('GET /Groups pages in creation order; POST /Groups/.search filters', async () => {
    const u = await user();
    const first = await group('List one', [u.id]);
    await group('List two');
    const all = await t.get('/Groups?count=500');
    expect(all.body.totalResults).toBe(all.body.Resources.length);
    const names = all.body.Resources.map((g: { displayName: string }) => g.displayName);
    expect(names.indexOf('List one')).toBeLessThan(names.indexOf('List two'));
    const page = await t.get('/Groups?startIndex=2&count=1');
    expect(page.body).toMatchObject({ startIndex: 2, itemsPerPage: 1, totalResults: all.body.totalResults });
    const searched = await t.post('/Groups/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'displayName sw "list "',
      sortBy: 'displayName',
      sortOrder: 'descending',
      excludedAttributes: ['members'],
    });
    expect(searched.status).toBe(200);
    expect(searched.body.Resources.map((g: { displayName: string }) => g.displayName)).toEqual(['List two', 'List one']);
    expect(searched.body.Resources[1].id).toBe(first.id);
    expect(searched.body.Resources[1].members).toBeUndefined();
  });
});

describe('Groups: PATCH members (RFC 7644, Entra ID and Okta shapes)', () => {
  test('Entra: Add members with a value array, Remove with a value array', async () => {
    const [a, b, c] = [await user(), await user(), await user()];
    const g = await group('Entra group', [a.id]);
    const added = await t.patch(
      `/Groups/${g.id}`,
      patchOps({ op: 'Add', path: 'members', value: [{ value: b.id }, { value: c.id }, { value: a.id }] }),
    );
    expect(added.status).toBe(200);
    expect(memberIds(added.body)).toEqual([a.id, b.id, c.id].sort());
    expect(added.body.meta.version).toBe('W/"2"');
    const removed = await t.patch(
      `/Groups/${g.id}`,
      patchOps({ op: 'Remove', path: 'members', value: [{ value: a.id }, { value: c.id }] }),
    );
    expect(removed.status).toBe(200);
    expect(memberIds(removed.body)).toEqual([b.id]);
  });

  test('Okta: remove members[value eq "…"], replace displayName repeating the id', async () => {
    const [a, b] = [await user(), await user()];
    const g = await group('Okta group', [a.id, b.id]);
    const removed = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'remove', path: `members[value eq "${a.id}"]` }));
    expect(memberIds(removed.body)).toEqual([b.id]);
    const renamed = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'replace', value: { id: g.id, displayName: 'Okta group (renamed)' } }));
    expect(renamed.status).toBe(200);
    expect(renamed.body.displayName).toBe('Okta group (renamed)');
    expect(memberIds(renamed.body)).toEqual([b.id]);
    expect((await t.get(`/Groups?filter=${encodeURIComponent('displayName eq "okta group"')}`)).body.totalResults).toBe(0);
    expect((await t.get(`/Groups?filter=${encodeURIComponent('displayName eq "okta group (renamed)"')}`)).body.totalResults).toBe(1);
  });

  test('RFC 7644: replace members, remove all members, then add back', async () => {
    const [a, b, c] = [await user(), await user(), await user()];
    const g = await group('RFC group', [a.id]);
    const replaced = await t.patch(
      `/Groups/${g.id}`,
      patchOps({ op: 'replace', path: 'members', value: [{ display: 'B', $ref: 'ignored', value: b.id }, { value: c.id }] }),
    );
    expect(memberIds(replaced.body)).toEqual([b.id, c.id].sort());
    const emptied = await t.patch(
      `/Groups/${g.id}`,
      patchOps({ op: 'remove', path: 'members' }, { op: 'add', path: 'members', value: [{ value: a.id }] }),
    );
    expect(memberIds(emptied.body)).toEqual([a.id]);
    expect((await t.get(`/Users/${b.id}`)).body.groups).toBeUndefined();
    const none = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'remove', path: 'members' }));
    expect(none.body.members).toBeUndefined();
  });

  test('group roles are inherited by members (effectiveRoles), duplicates once', async () => {
    const u = await user({ [SMART]: { roles: [DOCTOR] } });
    const g = await group('Role group', [], { [SMART_GROUP]: { roles: [NURSE, DOCTOR] } });
    expect(await store.effectiveRoles(u.id)).toEqual([DOCTOR]);
    await t.patch(`/Groups/${g.id}`, patchOps({ op: 'add', path: 'members', value: [{ value: u.id }] }));
    expect(await store.effectiveRoles(u.id)).toEqual([DOCTOR, NURSE]);
    const res = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'add', path: `${SMART_GROUP}:roles`, value: [ADMIN] }));
    expect(res.status).toBe(200);
    expect(await store.effectiveRoles(u.id)).toEqual([DOCTOR, NURSE, ADMIN]);
    expect(await store.effectiveRoles('nobody')).toEqual([]);
  });

  test('errors: unknown members, read-only display, stale If-Match', async () => {
    const u = await user();
    const g = await group('Error group', [u.id]);
    const ghost = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'add', path: 'members', value: [{ value: 'ghost' }] }));
    expect(ghost.status).toBe(400);
    expect(ghost.body.scimType).toBe('invalidValue');
    const display = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'replace', path: `members[value eq "${u.id}"].display`, value: 'x' }));
    expect(display.body.scimType).toBe('mutability');
    const renumber = await t.patch(
      `/Groups/${g.id}`,
      patchOps({ op: 'replace', path: `members[value eq "${u.id}"].value`, value: 'someone-else' }),
    );
    expect(renumber.body.scimType).toBe('mutability');
    const stale = await t.patch(`/Groups/${g.id}`, patchOps({ op: 'replace', path: 'displayName', value: 'x' })).set('If-Match', 'W/"999"');
    expect(stale.status).toBe(412);
    const fresh = await t
      .patch(`/Groups/${g.id}`, patchOps({ op: 'replace', path: 'displayName', value: 'x' }))
      .set('If-Match', g.meta.version);
    expect(fresh.status).toBe(200);
  });
});
