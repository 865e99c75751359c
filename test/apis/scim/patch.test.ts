import { LoginLockout } from '../../../src/records/directory/lockout.js';
import { verifyPassword } from '../../../src/records/directory/passwords.js';
import { UserStore } from '../../../src/records/directory/user-store.js';
import { createScimApp, ENTERPRISE, patchOps, SMART, USER_SCHEMA, type Resource, type ScimTestApp } from './support.js';

let t: ScimTestApp;
let n = 0;

beforeAll(async () => {
  t = await createScimApp();
});
afterAll(() => t.close());

/** A fresh Barbara Jensen (RFC 7643 §8.2 style) for each case. */
async function babs(extra: Record<string, unknown> = {}): Promise<Resource> {
  n += 1;
  const res = await t.post('/Users', {
    schemas: [USER_SCHEMA, ENTERPRISE],
    userName: `bjensen${n}@example.com`,
    name: { familyName: 'Jensen', givenName: 'Barbara' },
    displayName: 'Babs Jensen',
    emails: [
      { value: `bjensen${n}@example.com`, type: 'work', primary: true },
      { value: 'babs@jensen.org', type: 'home' },
    ],
    addresses: [
      { type: 'work', streetAddress: '100 Universal City Plaza', locality: 'Hollywood', region: 'CA', postalCode: '91608', country: 'US' },
    ],
    ...extra,
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function patch(id: string, ...ops: Array<Record<string, unknown>>) {
  return t.patch(`/Users/${id}`, patchOps(...ops));
}

describe('PATCH /Users: RFC 7644 §3.5.2 examples', () => {
  test('add without path: attributes of the value are added, multi-valued ones appended', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'add', value: { emails: [{ value: 'babs@work.example', type: 'other' }], nickName: 'Babs' } });
    expect(res.status).toBe(200);
    expect(res.body.nickName).toBe('Babs');
    expect(res.body.emails.map((e: { value: string }) => e.value)).toEqual([u.emails[0]!.value, 'babs@jensen.org', 'babs@work.example']);
    expect(res.body.meta.version).not.toBe(u.meta.version);
    expect(res.headers.etag).toBe(res.body.meta.version);
  });

  test('replace without path: multi-valued attributes are replaced whole', async () => {
    const u = await babs();
    const res = await patch(u.id, {
      op: 'replace',
      value: { emails: [{ value: 'bjensen@example.com', type: 'work', primary: true }], nickName: 'Babs' },
    });
    expect(res.status).toBe(200);
    expect(res.body.emails).toEqual([{ value: 'bjensen@example.com', type: 'work', primary: true }]);
    expect(res.body.nickName).toBe('Babs');
  });

  test('replace a complex value selected by a filter merges its sub-attributes', async () => {
    const u = await babs();
    const res = await patch(u.id, {
      op: 'replace',
      path: 'addresses[type eq "work"]',
      value: {
        type: 'work',
        streetAddress: '911 Universal City Plaza',
        locality: 'Hollywood',
        region: 'CA',
        postalCode: '91608',
        country: 'US',
        formatted: '911 Universal City Plaza\nHollywood, CA 91608 US',
        primary: true,
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.addresses).toHaveLength(1);
    expect(res.body.addresses[0]).toMatchObject({ type: 'work', streetAddress: '911 Universal City Plaza', primary: true });
  });

  test('replace one sub-attribute of a filtered value', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'replace', path: 'addresses[type eq "work"].streetAddress', value: '1010 Broadway Ave' });
    expect(res.status).toBe(200);
    expect(res.body.addresses[0].streetAddress).toBe('1010 Broadway Ave');
    expect(res.body.addresses[0].locality).toBe('Hollywood');
  });

  test('remove values matching a complex filter', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'remove', path: 'emails[type eq "work" and value ew "example.com"]' });
    expect(res.status).toBe(200);
    expect(res.body.emails).toEqual([{ value: 'babs@jensen.org', type: 'home' }]);
  });

  test('remove a single-valued sub-attribute, and a whole attribute', async () => {
    const u = await babs({ title: 'Tour Guide' });
    const res = await patch(u.id, { op: 'remove', path: 'name.givenName' }, { op: 'remove', path: 'title' });
    expect(res.status).toBe(200);
    expect(res.body.name).toEqual({ familyName: 'Jensen' });
    expect(res.body.title).toBeUndefined();
  });

  test('remove of something absent is a no-op, not an error', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'remove', path: 'nickName' }, { op: 'remove', path: 'emails[type eq "pager"]' });
    expect(res.status).toBe(200);
  });

  test('a value added as primary takes primary from the previous one', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'add', path: 'emails', value: [{ value: 'new@example.com', type: 'work', primary: true }] });
    expect(res.status).toBe(200);
    expect(res.body.emails.filter((e: { primary?: boolean }) => e.primary).map((e: { value: string }) => e.value)).toEqual([
      'new@example.com',
    ]);
  });

  test('removing the value of a filtered email drops that email', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'remove', path: 'emails[type eq "home"].value' });
    expect(res.status).toBe(200);
    expect(res.body.emails.map((e: { type: string }) => e.type)).toEqual(['work']);
  });

  test('operations apply in order, all or nothing', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'replace', path: 'displayName', value: 'Changed' }, { op: 'replace', path: 'nosuch', value: 1 });
    expect(res.status).toBe(400);
    expect((await t.get(`/Users/${u.id}`)).body.displayName).toBe('Babs Jensen');
  });
});

describe('PATCH /Users: Entra ID request shapes', () => {
  test('Replace active with the string "False", then "True"', async () => {
    const u = await babs();
    const off = await t.patch(`/Users/${u.id}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
    });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    const on = await patch(u.id, { op: 'Replace', path: 'active', value: 'True' });
    expect(on.body.active).toBe(true);
  });

  test('Add emails[type eq "work"].value when there is no work email creates one', async () => {
    const u = await babs({ emails: [{ value: 'home@example.org', type: 'home' }] });
    const res = await patch(u.id, { op: 'Add', path: 'emails[type eq "work"].value', value: 'x@y.org' });
    expect(res.status).toBe(200);
    expect(res.body.emails).toEqual([
      { value: 'home@example.org', type: 'home' },
      { value: 'x@y.org', type: 'work' },
    ]);
  });

  test('Add/Replace emails[type eq "work"].value when there is one changes it', async () => {
    const u = await babs();
    const added = await patch(u.id, { op: 'Add', path: 'emails[type eq "work"].value', value: 'changed@y.org' });
    expect(added.body.emails[0]).toEqual({ value: 'changed@y.org', type: 'work', primary: true });
    const replaced = await patch(u.id, { op: 'Replace', path: 'emails[type eq "Work"].value', value: 'again@y.org' });
    expect(replaced.body.emails[0].value).toBe('again@y.org');
    expect(replaced.body.emails).toHaveLength(2);
    const found = await t.get(`/Users?filter=${encodeURIComponent('emails.value eq "again@y.org"')}`);
    expect(found.body.totalResults).toBe(1);
    const old = await t.get(`/Users?filter=${encodeURIComponent('emails.value eq "changed@y.org"')}`);
    expect(old.body.totalResults).toBe(0);
  });

  test('enterprise attributes by URN path, manager given as a bare id', async () => {
    const u = await babs();
    const res = await patch(
      u.id,
      { op: 'Add', path: `${ENTERPRISE}:employeeNumber`, value: '42' },
      { op: 'Add', path: `${ENTERPRISE}:manager`, value: 'mgr-123' },
      { op: 'Replace', path: 'name.familyName', value: 'Jensen-Smith' },
    );
    expect(res.status).toBe(200);
    expect(res.body[ENTERPRISE]).toEqual({ employeeNumber: '42', manager: { value: 'mgr-123' } });
    expect(res.body.name.familyName).toBe('Jensen-Smith');
    expect(res.body.schemas).toContain(ENTERPRISE);
    const removed = await patch(u.id, { op: 'Remove', path: `${ENTERPRISE}:manager`, value: [{ value: 'mgr-123' }] });
    expect(removed.status).toBe(200);
    expect(removed.body[ENTERPRISE]).toEqual({ employeeNumber: '42' });
  });

  test('Replace without path with URN-qualified keys', async () => {
    const u = await babs();
    const res = await patch(u.id, {
      op: 'Replace',
      value: { displayName: 'B. Jensen', [`${ENTERPRISE}:department`]: 'Tours', 'name.givenName': 'Babs' },
    });
    expect(res.status).toBe(200);
    expect(res.body.displayName).toBe('B. Jensen');
    expect(res.body[ENTERPRISE].department).toBe('Tours');
    expect(res.body.name.givenName).toBe('Babs');
  });

  test('Remove an email by value (path plus value array)', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'Remove', path: 'emails', value: [{ value: 'BABS@jensen.org' }] });
    expect(res.status).toBe(200);
    expect(res.body.emails.map((e: { value: string }) => e.value)).toEqual([u.emails[0]!.value]);
  });
});

describe('PATCH /Users: Okta request shapes', () => {
  test('replace without path deactivates, even when the id is repeated', async () => {
    const u = await babs();
    const res = await patch(u.id, { op: 'replace', value: { id: u.id, active: false } });
    expect(res.status).toBe(200);
    expect(res.body.active).toBe(false);
  });

  test('a password set through PATCH is hashed and never returned', async () => {
    const u = await babs({ password: 'first-Password-1' });
    const res = await patch(u.id, { op: 'replace', value: { password: 'second-Password-2' } });
    expect(res.status).toBe(200);
    expect(res.text).not.toMatch(/password|argon2/i);
    const store = new UserStore({ redis: t.redis, keyspace: t.keyspace, passwords: t.config.passwords });
    const creds = await store.credentials(u.userName);
    expect(await verifyPassword(creds!.passwordHash!, 'second-Password-2')).toBe(true);
    expect(await verifyPassword(creds!.passwordHash!, 'first-Password-1')).toBe(false);
  });
});

describe('PATCH /Users: the SMART extension', () => {
  test('valid values are stored; invalid ones are 400 invalidValue naming the attribute', async () => {
    const u = await babs();
    const ok = await patch(
      u.id,
      { op: 'add', path: `${SMART}:fhirUser`, value: 'Practitioner/abc-1' },
      { op: 'add', path: `${SMART}:clearance`, value: 'R' },
      { op: 'add', path: `${SMART}:purposesOfUse`, value: ['TREAT', 'ETREAT'] },
      { op: 'add', path: `${SMART}:roles`, value: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'PROV' }] },
    );
    expect(ok.status).toBe(200);
    expect(ok.body[SMART]).toEqual({
      fhirUser: 'Practitioner/abc-1',
      roles: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'PROV' }],
      purposesOfUse: ['TREAT', 'ETREAT'],
      clearance: 'R',
    });
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ op: 'replace', path: `${SMART}:clearance`, value: 'X' }, /clearance must be one of U, L, M, N, R, V/],
      [{ op: 'replace', path: `${SMART}:fhirUser`, value: 'Observation/1' }, /fhirUser must be/],
      [{ op: 'add', path: `${SMART}:purposesOfUse`, value: ['treat'] }, /purposesOfUse\[2\]/],
      [{ op: 'add', path: `${SMART}:roles`, value: [{ code: 'X' }] }, /roles\[1\]\.system is required/],
      [
        { op: 'add', path: `${SMART}:proxyPatients`, value: [{ value: 'Observation/9' }] },
        /proxyPatients\[0\]\.value must be a Patient id/,
      ],
      [{ op: 'add', path: `${SMART}:unknownThing`, value: 1 }, /path does not name an attribute/],
    ];
    for (const [op, detail] of cases) {
      const res = await patch(u.id, op);
      expect(res.status).toBe(400);
      expect(res.body.scimType).toMatch(/invalidValue|invalidPath/);
      expect(res.body.detail).toMatch(detail);
    }
  });

  test('locked is readable, can be set to false to lift a lock-out, and nothing else', async () => {
    const u = await babs();
    const lockout = new LoginLockout(t.redis, t.keyspace, t.config.login);
    expect((await patch(u.id, { op: 'replace', path: `${SMART}:locked`, value: true })).body.scimType).toBe('mutability');
    for (let i = 0; i < t.config.login.maxFailuresPerAccount; i++) await (await lockout.reserve(u.id))?.failed();
    const locked = await t.get(`/Users/${u.id}`);
    expect(locked.body[SMART]).toEqual({ locked: true });
    expect((await patch(u.id, { op: 'remove', path: `${SMART}:locked` })).body.scimType).toBe('mutability');
    // Writing what is already there (a PUT of the resource as read) is fine.
    expect((await t.put(`/Users/${u.id}`, locked.body)).status).toBe(200);
    const unlocked = await patch(u.id, { op: 'replace', path: `${SMART}:locked`, value: 'False' });
    expect(unlocked.status).toBe(200);
    expect(unlocked.body[SMART]).toBeUndefined();
    expect(await lockout.isLocked(u.id)).toBe(false);
  });
});

describe('PATCH /Users: errors', () => {
  const cases: Array<[string, (u: Resource) => unknown, number, string]> = [
    ['changing id', (u) => patchOps({ op: 'replace', path: 'id', value: `${u.id}x` }), 400, 'mutability'],
    ['changing meta', () => patchOps({ op: 'replace', path: 'meta.created', value: '2000-01-01T00:00:00Z' }), 400, 'mutability'],
    ['changing groups', () => patchOps({ op: 'add', path: 'groups', value: [{ value: 'g1' }] }), 400, 'mutability'],
    ['removing the password', () => patchOps({ op: 'remove', path: 'password' }), 400, 'mutability'],
    ['an unknown attribute', () => patchOps({ op: 'replace', path: 'nosuch', value: 1 }), 400, 'invalidPath'],
    ['a malformed value filter', () => patchOps({ op: 'replace', path: 'emails[type eq].value', value: 'x' }), 400, 'invalidPath'],
    [
      'a value filter on a single-valued attribute',
      () => patchOps({ op: 'replace', path: 'name[givenName eq "x"]', value: {} }),
      400,
      'invalidPath',
    ],
    [
      'replace with a filter that matches nothing and is not an equality',
      () => patchOps({ op: 'replace', path: 'emails[type eq "work" and primary eq false].display', value: 'x' }),
      400,
      'noTarget',
    ],
    [
      'replace of a whole value that matches nothing, by a non-equality',
      () => patchOps({ op: 'replace', path: 'emails[value sw "zzz"]', value: { display: 'x' } }),
      400,
      'noTarget',
    ],
    ['remove without path', () => patchOps({ op: 'remove' }), 400, 'noTarget'],
    ['an unknown op', () => patchOps({ op: 'merge', path: 'nickName', value: 'x' }), 400, 'invalidSyntax'],
    ['no PatchOp schema', () => ({ Operations: [{ op: 'add', path: 'nickName', value: 'x' }] }), 400, 'invalidSyntax'],
    ['no operations', () => patchOps(), 400, 'invalidSyntax'],
    ['add without value', () => patchOps({ op: 'add', path: 'nickName' }), 400, 'invalidSyntax'],
    ['a wrong type', () => patchOps({ op: 'replace', path: 'active', value: 'maybe' }), 400, 'invalidValue'],
    ['an empty userName', () => patchOps({ op: 'replace', path: 'userName', value: '' }), 400, 'invalidValue'],
  ];

  test.each(cases)('%s', async (_name, body, status, scimType) => {
    const u = await babs();
    const res = await t.patch(`/Users/${u.id}`, body(u));
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: String(status), scimType });
    const after = await t.get(`/Users/${u.id}`);
    expect(after.body.meta.version).toBe(u.meta.version);
  });

  test('attribute names are case-insensitive', async () => {
    const u = await babs();
    const res = await patch(
      u.id,
      { op: 'replace', path: 'DISPLAYNAME', value: 'Loud' },
      { op: 'replace', path: 'Name.GivenName', value: 'B' },
    );
    expect(res.status).toBe(200);
    expect(res.body.displayName).toBe('Loud');
    expect(res.body.name.givenName).toBe('B');
  });

  test('a userName taken by someone else (in another case) is 409 uniqueness', async () => {
    const a = await babs();
    const b = await babs();
    const res = await patch(b.id, { op: 'replace', path: 'userName', value: a.userName.toUpperCase() });
    expect(res.status).toBe(409);
    expect(res.body.scimType).toBe('uniqueness');
  });

  test("changing the case of one's own userName is allowed", async () => {
    const a = await babs();
    const res = await patch(a.id, { op: 'replace', path: 'userName', value: a.userName.toUpperCase() });
    expect(res.status).toBe(200);
    expect(res.body.userName).toBe(a.userName.toUpperCase());
    expect((await t.get(`/Users?filter=${encodeURIComponent(`userName eq "${a.userName}"`)}`)).body.totalResults).toBe(1);
  });

  test('PATCH of an unknown user is 404', async () => {
    const res = await patch('no-such-id', { op: 'replace', path: 'active', value: false });
    expect(res.status).toBe(404);
    expect(res.body.status).toBe('404');
  });
});
