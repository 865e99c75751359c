import { Writable } from 'node:stream';
import { createLogger } from '../../../src/platform/ops/logger.js';
import { hashParameters, verifyPassword } from '../../../src/records/directory/passwords.js';
import { UserStore } from '../../../src/records/directory/user-store.js';
import { createScimApp, ENTERPRISE, GROUP_SCHEMA, patchOps, SCIM, SCIM_JSON, SMART, USER_SCHEMA, type ScimTestApp } from './support.js';

let t: ScimTestApp;
const logLines: string[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  t = await createScimApp({}, { logger: createLogger('trace', sink) });
});
afterAll(() => t.close());

let seq = 0;
function someone(extra: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return { schemas: [USER_SCHEMA], userName: `user${seq}-${Math.random().toString(36).slice(2, 8)}`, ...extra };
}

describe('authentication', () => {
  test('no token is 401 with a SCIM error body and WWW-Authenticate: Bearer', async () => {
    const res = await t.request.get(`${SCIM}/Users`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
  });

  test.each([
    ['an unknown token', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789'],
    ['a malformed header', 'Bearer'],
    ['Basic credentials', `Basic ${Buffer.from('scim-admin:x').toString('base64')}`],
  ])('%s is 401', async (_name, header) => {
    const res = await t.request.get(`${SCIM}/ServiceProviderConfig`).set('Authorization', header);
    expect(res.status).toBe(401);
    expect(res.body.status).toBe('401');
  });

  test('a valid token without the scim scope is 403 insufficient_scope', async () => {
    for (const path of ['/Users', '/ServiceProviderConfig', '/Groups']) {
      const res = await t.request.get(`${SCIM}${path}`).set('Authorization', `Bearer ${t.tokenWithoutScim}`);
      expect(res.status).toBe(403);
      expect(res.headers['www-authenticate']).toMatch(/error="insufficient_scope", scope="scim"/);
      expect(res.body.status).toBe('403');
    }
    const write = await t.request
      .post(`${SCIM}/Users`)
      .set('Authorization', `Bearer ${t.tokenWithoutScim}`)
      .set('Content-Type', SCIM_JSON)
      .send(JSON.stringify(someone()));
    expect(write.status).toBe(403);
  });

  test('the scim scope can be registered only for backend_service clients', async () => {
    await expect(
      t.registry.upsert({
        client_id: 'app-with-scim',
        smart_client_kind: 'public_app',
        redirect_uris: ['https://app.example.org/cb'],
        smart_scopes: ['patient/*.rs', 'scim'],
      }),
    ).rejects.toThrow(/scim.*only backend_service clients may have administration scopes/);
  });

  test('a backend client without scim in smart_scopes cannot get it', async () => {
    const { adminToken } = await import('./support.js');
    await expect(adminToken(t, 'bulk-reader', t.key, 'scim')).rejects.toThrow(/invalid_scope/);
  });
});

describe('discovery endpoints', () => {
  test('ServiceProviderConfig tells what is supported', async () => {
    const res = await t.get('/ServiceProviderConfig');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/scim+json; charset=utf-8');
    expect(res.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      patch: { supported: true },
      bulk: { supported: false },
      filter: { supported: true, maxResults: t.config.scim.maxPageSize },
      changePassword: { supported: true },
      sort: { supported: true },
      etag: { supported: true },
      authenticationSchemes: [{ type: 'oauthbearertoken', primary: true }],
    });
  });

  test('ResourceTypes lists User (with both extensions) and Group', async () => {
    const res = await t.get('/ResourceTypes');
    expect(res.body.totalResults).toBe(2);
    const user = res.body.Resources.find((r: { id: string }) => r.id === 'User');
    expect(user).toMatchObject({
      endpoint: '/Users',
      schema: USER_SCHEMA,
      schemaExtensions: [
        { schema: ENTERPRISE, required: false },
        { schema: SMART, required: false },
      ],
    });
    expect((await t.get('/ResourceTypes/Group')).body).toMatchObject({ endpoint: '/Groups', schema: GROUP_SCHEMA });
    expect((await t.get('/ResourceTypes/Nope')).status).toBe(404);
  });

  test('Schemas describe the attributes, password write-only and never returned', async () => {
    const res = await t.get('/Schemas');
    expect(res.body.Resources.map((s: { id: string }) => s.id)).toEqual([
      USER_SCHEMA,
      ENTERPRISE,
      SMART,
      GROUP_SCHEMA,
      'urn:smart-authz:params:scim:schemas:extension:smart:2.0:Group',
    ]);
    const user = (await t.get(`/Schemas/${USER_SCHEMA}`)).body;
    const password = user.attributes.find((a: { name: string }) => a.name === 'password');
    expect(password).toMatchObject({ mutability: 'writeOnly', returned: 'never' });
    expect(user.attributes.find((a: { name: string }) => a.name === 'userName')).toMatchObject({
      uniqueness: 'server',
      caseExact: false,
      required: true,
    });
    const smart = (await t.get(`/Schemas/${SMART}`)).body;
    expect(smart.attributes.map((a: { name: string }) => a.name)).toEqual([
      'fhirUser',
      'proxyPatients',
      'roles',
      'staff',
      'purposesOfUse',
      'clearance',
      'npi',
      'organizationId',
      'breakTheGlass',
      'testAccount',
      'locked',
      'secondFactors',
      'recoveryCodesLeft',
    ]);
    const factors = smart.attributes.find((a: { name: string }) => a.name === 'secondFactors');
    expect(factors).toMatchObject({ mutability: 'readOnly', multiValued: true, type: 'complex' });
    expect(factors.subAttributes.map((a: { name: string }) => a.name)).toEqual(['value', 'type', 'display', 'created']);
    expect(smart.attributes.find((a: { name: string }) => a.name === 'recoveryCodesLeft')).toMatchObject({
      mutability: 'readOnly',
      type: 'integer',
    });
    expect(smart.attributes.find((a: { name: string }) => a.name === 'clearance').canonicalValues).toEqual(['U', 'L', 'M', 'N', 'R', 'V']);
  });
});

describe('Users: create, read, replace, delete', () => {
  test('POST creates: 201, Location, ETag, defaults, no password in the answer', async () => {
    const res = await t.post('/Users', someone({ password: 'Created-Pass-1', name: { givenName: 'Ann' } }));
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`http://localhost:3000/scim/v2/Users/${res.body.id}`);
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.body.active).toBe(true);
    expect(res.body.meta).toMatchObject({ resourceType: 'User', version: 'W/"1"', location: res.headers.location });
    expect(res.body.meta.created).toBe(res.body.meta.lastModified);
    expect(res.text).not.toMatch(/password|Created-Pass-1|argon2/i);
  });

  test('application/json is accepted too; other media types and bad JSON are refused', async () => {
    const json = await t.request
      .post(`${SCIM}/Users`)
      .set('Authorization', `Bearer ${t.token}`)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify(someone()));
    expect(json.status).toBe(201);
    const text = await t.request
      .post(`${SCIM}/Users`)
      .set('Authorization', `Bearer ${t.token}`)
      .set('Content-Type', 'text/plain')
      .send('{}');
    expect(text.status).toBe(415);
    const bad = await t.request
      .post(`${SCIM}/Users`)
      .set('Authorization', `Bearer ${t.token}`)
      .set('Content-Type', SCIM_JSON)
      .send('{"userName": ');
    expect(bad.status).toBe(400);
    expect(bad.body.scimType).toBe('invalidSyntax');
  });

  test('userName is required and unique regardless of case (409 uniqueness)', async () => {
    expect((await t.post('/Users', { schemas: [USER_SCHEMA] })).body).toMatchObject({
      status: '400',
      scimType: 'invalidValue',
      detail: 'userName is required',
    });
    const first = await t.post('/Users', someone({ userName: 'Dup.User@Example.org' }));
    expect(first.status).toBe(201);
    const again = await t.post('/Users', someone({ userName: 'dup.user@example.ORG' }));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
  });

  test('concurrent creates of one userName: exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => t.post('/Users', someone({ userName: i % 2 ? 'RACE' : 'race' }))),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  });

  test('GET by id; unknown id is 404; If-None-Match gives 304', async () => {
    const created = (await t.post('/Users', someone())).body;
    const res = await t.get(`/Users/${created.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(created);
    expect(res.headers.etag).toBe(created.meta.version);
    expect((await t.get(`/Users/${created.id}`).set('If-None-Match', created.meta.version)).status).toBe(304);
    const missing = await t.get('/Users/00000000-0000-0000-0000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404' });
  });

  test('PUT replaces every attribute but keeps the password; id and meta in the body are ignored', async () => {
    const created = (await t.post('/Users', someone({ password: 'Keep-Me-1', title: 'Chief', nickName: 'Nick' }))).body;
    const replacement = {
      schemas: [USER_SCHEMA],
      id: 'ignored',
      userName: `${created.userName}-renamed`,
      nickName: 'New',
      meta: { created: '2000-01-01T00:00:00Z' },
    };
    const res = await t.put(`/Users/${created.id}`, replacement);
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(created.id);
    expect(res.body.title).toBeUndefined();
    expect(res.body.nickName).toBe('New');
    expect(res.body.meta.created).toBe(created.meta.created);
    expect(res.body.meta.version).toBe('W/"2"');
    const store = new UserStore({ redis: t.redis, keyspace: t.keyspace, passwords: t.config.passwords });
    expect(await store.findByUserName(created.userName)).toBeUndefined();
    const creds = await store.credentials(`${created.userName}-RENAMED`);
    expect(creds?.user.id).toBe(created.id);
    expect(await verifyPassword(creds!.passwordHash!, 'Keep-Me-1')).toBe(true);
  });

  test('DELETE: 204, then 404, and the userName is free again', async () => {
    const created = (await t.post('/Users', someone())).body;
    const res = await t.del(`/Users/${created.id}`);
    expect(res.status).toBe(204);
    expect((await t.get(`/Users/${created.id}`)).status).toBe(404);
    expect((await t.del(`/Users/${created.id}`)).status).toBe(404);
    expect((await t.get(`/Users?filter=${encodeURIComponent(`userName eq "${created.userName}"`)}`)).body.totalResults).toBe(0);
    expect((await t.post('/Users', { schemas: [USER_SCHEMA], userName: created.userName })).status).toBe(201);
  });
});

describe('ETags and If-Match', () => {
  test('a stale If-Match is 412 for PUT, PATCH and DELETE; the current one or * succeeds', async () => {
    const created = (await t.post('/Users', someone())).body;
    const v1 = created.meta.version;
    const patched = await t.patch(`/Users/${created.id}`, patchOps({ op: 'replace', path: 'nickName', value: 'a' })).set('If-Match', v1);
    expect(patched.status).toBe(200);
    const v2 = patched.body.meta.version;
    expect(v2).not.toBe(v1);
    const stalePut = await t.put(`/Users/${created.id}`, { ...created, nickName: 'b' }).set('If-Match', v1);
    expect(stalePut.status).toBe(412);
    expect(stalePut.body.status).toBe('412');
    expect(
      (await t.patch(`/Users/${created.id}`, patchOps({ op: 'replace', path: 'nickName', value: 'c' })).set('If-Match', v1)).status,
    ).toBe(412);
    expect((await t.del(`/Users/${created.id}`).set('If-Match', v1)).status).toBe(412);
    expect((await t.get(`/Users/${created.id}`)).body.nickName).toBe('a');
    expect((await t.put(`/Users/${created.id}`, { ...created, nickName: 'd' }).set('If-Match', v2)).status).toBe(200);
    expect(
      (await t.patch(`/Users/${created.id}`, patchOps({ op: 'replace', path: 'nickName', value: 'e' })).set('If-Match', '*')).status,
    ).toBe(200);
    expect((await t.del(`/Users/${created.id}`).set('If-Match', `"${v2.slice(3, -1)}", W/"4"`)).status).toBe(204);
  });

  test('concurrent PATCHes without If-Match all land (compare-and-set with retry)', async () => {
    const created = (await t.post('/Users', someone())).body;
    const results = await Promise.all(
      ['a@x.org', 'b@x.org', 'c@x.org', 'd@x.org'].map((value) =>
        t.patch(`/Users/${created.id}`, patchOps({ op: 'add', path: 'emails', value: [{ value }] })),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const final = (await t.get(`/Users/${created.id}`)).body;
    expect(final.emails.map((e: { value: string }) => e.value).sort()).toEqual(['a@x.org', 'b@x.org', 'c@x.org', 'd@x.org']);
    expect(final.meta.version).toBe('W/"5"');
  });
});

describe('listing: paging, sorting, attributes', () => {
  let listApp: ScimTestApp;
  const names = ['delta', 'Alpha', 'charlie', 'echo', 'bravo', 'golf', 'foxtrot'];

  beforeAll(async () => {
    listApp = await createScimApp({ AUTHZ_SCIM_MAX_PAGE_SIZE: '5' });
    for (const [i, userName] of names.entries()) {
      const family = i % 3 === 0 ? undefined : `F${(7 - i) % 7}`;
      const res = await listApp.post('/Users', {
        schemas: [USER_SCHEMA],
        userName,
        ...(family ? { name: { familyName: family } } : {}),
        emails: [{ value: `${userName}@x.org`, type: 'work' }],
        [ENTERPRISE]: { department: `D${i}` },
      });
      expect(res.status).toBe(201);
    }
  });
  afterAll(() => listApp.close());

  const userNames = (res: { body: { Resources: Array<{ userName: string }> } }) => res.body.Resources.map((u) => u.userName);

  test('without a filter: creation order, startIndex is 1-based, count pages', async () => {
    const res = await listApp.get('/Users?startIndex=3&count=2');
    expect(res.body).toMatchObject({ totalResults: 7, itemsPerPage: 2, startIndex: 3 });
    expect(userNames(res)).toEqual(['charlie', 'echo']);
    const zero = await listApp.get('/Users?count=0');
    expect(zero.body).toMatchObject({ totalResults: 7, itemsPerPage: 0, Resources: [] });
    const past = await listApp.get('/Users?startIndex=50');
    expect(past.body).toMatchObject({ totalResults: 7, itemsPerPage: 0 });
    expect((await listApp.get('/Users?startIndex=0&count=-3')).body).toMatchObject({ startIndex: 1, itemsPerPage: 0 });
  });

  test('count is capped at maxPageSize, which ServiceProviderConfig announces', async () => {
    const res = await listApp.get('/Users?count=100');
    expect(res.body.itemsPerPage).toBe(5);
    expect((await listApp.get('/ServiceProviderConfig')).body.filter.maxResults).toBe(5);
  });

  test('sortBy/sortOrder: case-insensitive strings, unassigned values last', async () => {
    expect(userNames(await listApp.get('/Users?sortBy=userName&count=5'))).toEqual(['Alpha', 'bravo', 'charlie', 'delta', 'echo']);
    expect(userNames(await listApp.get('/Users?sortBy=userName&sortOrder=descending&startIndex=4'))).toEqual([
      'delta',
      'charlie',
      'bravo',
      'Alpha',
    ]);
    const byFamily = await listApp.get('/Users?sortBy=name.familyName&count=5&attributes=name');
    expect(byFamily.body.Resources.map((u: { name?: { familyName: string } }) => u.name?.familyName ?? null)).toEqual([
      'F2',
      'F3',
      'F5',
      'F6',
      null,
    ]);
    expect(userNames(await listApp.get('/Users?sortBy=meta.created&sortOrder=descending&count=2'))).toEqual(['foxtrot', 'golf']);
    expect(
      userNames(await listApp.get(`/Users?sortBy=${encodeURIComponent(`${ENTERPRISE}:department`)}&sortOrder=descending&count=2`)),
    ).toEqual(['foxtrot', 'golf']);
    expect((await listApp.get('/Users?sortBy=password')).status).toBe(400);
    expect((await listApp.get('/Users?sortOrder=sideways')).status).toBe(400);
  });

  test('filter with sort and paging', async () => {
    const res = await listApp.get(
      `/Users?filter=${encodeURIComponent('emails.value ew "x.org" and not (userName eq "golf")')}&sortBy=userName&startIndex=2&count=3`,
    );
    expect(res.body).toMatchObject({ totalResults: 6, itemsPerPage: 3, startIndex: 2 });
    expect(userNames(res)).toEqual(['bravo', 'charlie', 'delta']);
  });

  test('attributes and excludedAttributes', async () => {
    const some = await listApp.get(`/Users?count=1&attributes=${encodeURIComponent(`userName,emails.value,${ENTERPRISE}:department`)}`);
    expect(some.body.Resources[0]).toEqual({
      schemas: [USER_SCHEMA, ENTERPRISE],
      id: expect.any(String),
      userName: 'delta',
      emails: [{ value: 'delta@x.org' }],
      [ENTERPRISE]: { department: 'D0' },
    });
    const fewer = await listApp.get('/Users?count=1&excludedAttributes=emails,meta,id');
    expect(Object.keys(fewer.body.Resources[0]).sort()).toEqual([
      'active',
      'id',
      'schemas',
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
      'userName',
    ]);
    const one = await listApp.get(`/Users/${fewer.body.Resources[0].id}?attributes=active`);
    expect(Object.keys(one.body).sort()).toEqual(['active', 'id', 'schemas']);
  });

  test('startIndex and count must be integers', async () => {
    const res = await listApp.get('/Users?count=many');
    expect(res.status).toBe(400);
    expect(res.body.scimType).toBe('invalidValue');
  });
});

describe('bounded filters', () => {
  let small: ScimTestApp;
  beforeAll(async () => {
    small = await createScimApp({ AUTHZ_SCIM_MAX_FILTER_SCAN: '100' });
    const store = new UserStore({ redis: small.redis, keyspace: small.keyspace, passwords: small.config.passwords });
    await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        store.create({
          userName: `bulk${i}`,
          externalId: `ext-${i}`,
          emails: [{ value: `bulk${i}@x.org` }],
          title: i === 7 ? 'Seven' : 'Other',
        }),
      ),
    );
  });
  afterAll(() => small.close());

  test('equality on userName, externalId, emails.value and id still answers over the scan limit', async () => {
    const byName = await small.get(`/Users?filter=${encodeURIComponent('userName eq "BULK7"')}`);
    expect(byName.body.totalResults).toBe(1);
    const id = byName.body.Resources[0].id;
    for (const filter of [
      'externalId eq "ext-7"',
      'emails.value eq "bulk7@X.org"',
      `id eq "${id}"`,
      'emails[value eq "bulk7@x.org"]',
      'userName eq "bulk7" and title eq "Seven"',
      'userName eq "bulk7" or userName eq "nobody"',
    ]) {
      const res = await small.get(`/Users?filter=${encodeURIComponent(filter)}`);
      expect([filter, res.status, res.body.totalResults]).toEqual([filter, 200, 1]);
    }
  });

  test('a filter that needs a scan is refused with 400 tooMany beyond the limit, with a clear reason', async () => {
    for (const filter of [
      'title eq "Seven"',
      'userName sw "bulk7"',
      'userName eq "bulk7" or title eq "Seven"',
      'not (userName eq "bulk7")',
    ]) {
      const res = await small.get(`/Users?filter=${encodeURIComponent(filter)}`);
      expect(res.status).toBe(400);
      expect(res.body.scimType).toBe('tooMany');
      expect(res.body.detail).toMatch(/120 User resources, more than the 100/);
    }
    expect((await small.get('/Users?sortBy=userName')).body.scimType).toBe('tooMany');
    expect((await small.get('/Users?count=3')).body).toMatchObject({ totalResults: 120, itemsPerPage: 3 });
  });
});

describe('other endpoints and errors', () => {
  test('unknown endpoints are SCIM 404s, unsupported methods 405, Bulk and Me 501', async () => {
    expect((await t.get('/Nope')).body).toMatchObject({ status: '404' });
    const patchCollection = await t.patch('/Users', patchOps({ op: 'add', path: 'nickName', value: 'x' }));
    expect(patchCollection.status).toBe(405);
    expect(patchCollection.body.status).toBe('405');
    expect((await t.post('/Bulk', {})).status).toBe(501);
    expect((await t.get('/Me')).status).toBe(501);
  });

  test('POST /.search searches Users and Groups together', async () => {
    const u = (await t.post('/Users', someone({ userName: 'searchable-person' }))).body;
    const g = (await t.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'searchable-group', members: [{ value: u.id }] })).body;
    const res = await t.post('/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: `id eq "${u.id}" or id eq "${g.id}"`,
    });
    expect(res.status).toBe(200);
    expect(res.body.totalResults).toBe(2);
    expect(res.body.Resources.map((r: { meta: { resourceType: string } }) => r.meta.resourceType)).toEqual(['User', 'Group']);
    const names = await t.post('/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'displayName sw "searchable"',
      count: 5,
    });
    expect(names.body.Resources.map((r: { displayName?: string }) => r.displayName)).toEqual(['searchable-group']);
    const bad = await t.post('/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: 'nosuch eq "x"' });
    expect(bad.body.scimType).toBe('invalidFilter');
    const noSchema = await t.post('/Users/.search', { filter: 'userName pr' });
    expect(noSchema.body.scimType).toBe('invalidSyntax');
  });
});

describe('passwords are write-only', () => {
  const SECRET = 'Pw-NeverShow-9f8e7d';
  const SECRET2 = 'Pw-AlsoHidden-1a2b3c';

  test('never in any response or log line, stored as argon2id at or above OWASP parameters', async () => {
    const responses: string[] = [];
    const keep = <T extends { text: string }>(r: T) => {
      responses.push(r.text, JSON.stringify((r as unknown as { headers: unknown }).headers));
      return r;
    };
    const created = keep(await t.post('/Users', someone({ userName: 'pw-holder', password: SECRET, emails: [{ value: 'pw@x.org' }] })));
    const id = created.body.id as string;
    keep(await t.get(`/Users/${id}`));
    keep(await t.get(`/Users/${id}?attributes=password,userName`));
    keep(await t.get(`/Users?filter=${encodeURIComponent('userName eq "pw-holder"')}&attributes=password`));
    keep(
      await t.post('/Users/.search', {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
        filter: 'userName eq "pw-holder"',
      }),
    );
    keep(await t.get(`/Users?filter=${encodeURIComponent(`password eq "${SECRET}"`)}`));
    keep(await t.post('/Users', someone({ userName: 'PW-HOLDER', password: SECRET })));
    keep(await t.post('/Users', someone({ password: 12345 })));
    keep(await t.put(`/Users/${id}`, { schemas: [USER_SCHEMA], userName: 'pw-holder', password: SECRET2 }));
    keep(await t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'password', value: SECRET })));
    keep(await t.patch(`/Users/${id}`, patchOps({ op: 'replace', value: { password: SECRET2, nosuch: SECRET } })));
    keep(await t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'passwrd', value: SECRET })));
    keep(await t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'password', value: 'x'.repeat(2000) })));
    keep(
      await t.request
        .post(`${SCIM}/Users`)
        .set('Authorization', `Bearer ${t.token}`)
        .set('Content-Type', SCIM_JSON)
        .send(`{"userName":"x","password":"${SECRET}"`),
    );
    keep(await t.get(`/Users?filter=${encodeURIComponent(`userName eq "${SECRET}`)}`));

    for (const text of [...responses, ...logLines]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(SECRET2);
      expect(text).not.toMatch(/\$argon2/);
    }
    expect(logLines.length).toBeGreaterThan(10);

    const record = await t.redis.hgetall(t.keyspace.scimUser(id));
    expect(record.json).not.toContain(SECRET);
    expect(record.json).not.toContain(SECRET2);
    const params = hashParameters(record.pw!);
    expect(params).toMatchObject({ type: 'argon2id' });
    expect(params!.memoryKiB).toBeGreaterThanOrEqual(19456);
    expect(params!.timeCost).toBeGreaterThanOrEqual(2);
    // The PATCH that also named an unknown attribute failed as a whole, so the last password set is SECRET.
    expect(await verifyPassword(record.pw!, SECRET)).toBe(true);
  });

  test('a password that is too long or not a string is refused without echo', async () => {
    const res = await t.post('/Users', someone({ password: 'y'.repeat(1025) }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ scimType: 'invalidValue', detail: 'password must be a string of 1 to 1024 characters' });
  });

  test('the SMART extension is validated on create', async () => {
    const res = await t.post(
      '/Users',
      someone({
        [SMART]: {
          fhirUser: 'https://fhir.example.org/r4/Patient/77',
          proxyPatients: [{ value: '88', display: 'Child' }, { value: 'Patient/88' }],
          clearance: 'M',
        },
      }),
    );
    expect(res.status).toBe(201);
    expect(res.body[SMART]).toEqual({
      fhirUser: 'https://fhir.example.org/r4/Patient/77',
      proxyPatients: [{ value: '88', display: 'Child' }],
      clearance: 'M',
    });
    for (const [ext, detail] of [
      [{ fhirUser: 'ftp://x/Patient/1' }, /fhirUser/],
      [{ fhirUser: 'Patient/has space' }, /fhirUser/],
      [{ clearance: 'Z' }, /clearance/],
      [{ nonsense: true }, /nonsense is not an attribute/],
      [{ locked: true }, /locked can only be set to false/],
    ] as const) {
      const bad = await t.post('/Users', someone({ [SMART]: ext }));
      expect(bad.status).toBe(400);
      expect(bad.body.detail).toMatch(detail);
    }
  });
});
