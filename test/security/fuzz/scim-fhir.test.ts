/*
 * Fuzzing the administration APIs with a valid token, so input reaches the deep code: SCIM
 * (filters, attributes, sortBy, paging, POST/PUT/PATCH documents) and the FHIR Consent and
 * AuditEvent APIs (search parameters, reads, bodies). Properties: see properties.ts.
 */
import fc from 'fast-check';
import { createFuzzWorld, type FuzzWorld } from './world.js';
import { changedKeys, fuzz, reportFigures, timeoutFor } from './properties.js';
import { authorizationHeader, contentType, encodeParams, hostile, jsonBody, mutatedJson, mutatedParams, pct } from './arbitraries.js';
import { sendRaw, type Method } from './send.js';
import { consentServiceOf } from '../../support/smart-flow.js';

let w: FuzzWorld;
let consentId: string;

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const SMART = 'urn:smart-authz:params:scim:schemas:extension:smart:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const SEARCH_OP = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

beforeAll(async () => {
  w = await createFuzzWorld(12);
  const consent = await consentServiceOf(w.t).recordDecision({
    kind: 'permit',
    patientId: 'pat-1',
    performer: { reference: 'Patient/pat-1' },
    clientId: 'fuzz-app',
    scopes: ['launch/patient', 'patient/*.rs'],
    periodSeconds: 3600,
  });
  consentId = consent.id;
});
afterAll(async () => {
  reportFigures('scim-fhir');
  await w.close();
});

const ATTRS = [
  'userName',
  'name.givenName',
  'name.familyName',
  'emails.value',
  'emails[type eq "work"].value',
  'active',
  'externalId',
  'meta.lastModified',
  'displayName',
  'members.value',
  'id',
  `${SMART}:fhirUser`,
  'groups',
  'title',
  'x',
];
const OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le', 'pr', 'EQ', 'xx'];

/** SCIM filters from the RFC 7644 grammar, with broken pieces mixed in. */
const filter: fc.Arbitrary<string> = fc.letrec<{ f: string }>((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .tuple(
        fc.oneof(fc.constantFrom(...ATTRS), hostile),
        fc.constantFrom(...OPS),
        fc.oneof(
          hostile.map((v) => JSON.stringify(v)),
          fc.constantFrom('true', 'null', '2024-01-01T00:00:00Z', '1', '"fuzz.user"', '"unterminated'),
        ),
      )
      .map(([a, o, v]) => (o.toLowerCase() === 'pr' ? `${a} pr` : `${a} ${o} ${v}`)),
    fc.tuple(tie('f'), fc.constantFrom('and', 'or', 'AND', 'xor'), tie('f')).map(([a, op, b]) => `${a} ${op} ${b}`),
    tie('f').map((f) => `not (${f})`),
    tie('f').map((f) => `(${f}`),
    fc.tuple(fc.constantFrom('emails', 'members', 'x'), tie('f')).map(([a, f]) => `${a}[${f}]`),
    hostile,
  ),
})).f;

const scimQuery = mutatedParams(
  {
    filter: 'userName eq "fuzz.user"',
    attributes: 'userName,name',
    excludedAttributes: 'emails',
    sortBy: 'userName',
    sortOrder: 'descending',
    startIndex: '1',
    count: '10',
  },
  fc.oneof(filter, fc.constantFrom('0', '-1', '99999999999', 'ascending', 'meta.created')),
);

const userDoc = {
  schemas: [USER_SCHEMA, SMART],
  userName: 'fuzzed.user',
  password: 'another long enough password',
  active: true,
  name: { givenName: 'F', familyName: 'Z', formatted: 'F Z' },
  emails: [{ value: 'f@example.org', type: 'work', primary: true }],
  externalId: 'ext-1',
  groups: [{ value: 'g' }],
  [SMART]: { fhirUser: 'Practitioner/p-1', npi: '1234567893', roles: ['staff'] },
};
const groupDoc = { schemas: [GROUP_SCHEMA], displayName: 'Fuzzers', members: [{ value: 'nobody' }], externalId: 'g-1' };
const patchDoc = fc.record({
  schemas: fc.oneof(fc.constant([PATCH_OP]), fc.jsonValue({ maxDepth: 1 })),
  Operations: fc.oneof(
    fc.array(
      fc.record(
        {
          op: fc.oneof(fc.constantFrom('add', 'remove', 'replace', 'Add', 'REPLACE', 'move', 'copy'), hostile),
          path: fc.oneof(
            fc.constantFrom(...ATTRS),
            filter.map((f) => `emails[${f}].value`),
            filter.map((f) => `members[${f}]`),
            hostile,
          ),
          value: fc.oneof(fc.jsonValue({ maxDepth: 3 }), mutatedJson(userDoc), fc.constantFrom(false, 'false', [{ value: 'nobody' }])),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 4 },
    ),
    fc.jsonValue({ maxDepth: 2 }),
  ),
});

/** RFC 7644 §3.7 and §3.11: a server without Bulk or /Me answers 501 with a SCIM error. */
function scimNotImplemented(res: { status: number; text: string }): boolean {
  return res.status === 501 && /"urn:ietf:params:scim:api:messages:2\.0:Error"/.test(res.text);
}

describe('SCIM and FHIR APIs with a valid token: no 5xx, no internals, no state change on refusal', () => {
  test(
    'GET /scim/v2/Users and /Groups: filter, attributes, sortBy, startIndex, count',
    () =>
      fuzz(w, 'GET /scim/v2 list', fc.tuple(fc.constantFrom('Users', 'Groups'), scimQuery), ([type, params]) =>
        sendRaw(w.t.request, {
          method: 'get',
          path: `/scim/v2/${type}?${encodeParams(params)}`,
          headers: { Authorization: `Bearer ${w.tokens.scim}` },
        }),
      ),
    timeoutFor(),
  );

  test(
    'POST /scim/v2/.search, /Users/.search, /Groups/.search',
    () =>
      fuzz(
        w,
        'POST /scim/v2 .search',
        fc.tuple(
          fc.constantFrom('/.search', '/Users/.search', '/Groups/.search'),
          jsonBody(
            fc.record(
              {
                schemas: fc.oneof(fc.constant([SEARCH_OP]), fc.jsonValue({ maxDepth: 1 })),
                filter: fc.oneof(filter, fc.jsonValue({ maxDepth: 1 })),
                attributes: fc.oneof(fc.constant(['userName']), fc.jsonValue({ maxDepth: 1 })),
                startIndex: fc.jsonValue({ maxDepth: 0 }),
                count: fc.jsonValue({ maxDepth: 0 }),
                sortBy: hostile,
              },
              { requiredKeys: [] },
            ),
          ),
        ),
        ([path, body]) =>
          sendRaw(w.t.request, {
            method: 'post',
            path: `/scim/v2${path}`,
            headers: { Authorization: `Bearer ${w.tokens.scim}`, 'Content-Type': 'application/scim+json' },
            body,
          }),
      ),
    timeoutFor(),
  );

  test(
    'POST and PUT /scim/v2/Users|Groups documents',
    () =>
      fuzz(
        w,
        'POST/PUT /scim/v2 documents',
        fc.tuple(
          fc.constantFrom<[Method, string]>(
            ['post', '/Users'],
            ['post', '/Groups'],
            ['put', '/Users/ID'],
            ['put', '/Groups/nope'],
            ['put', '/Users/nope'],
          ),
          fc.oneof(jsonBody(mutatedJson(userDoc)), jsonBody(mutatedJson(groupDoc))),
          fc.oneof({ weight: 4, arbitrary: fc.constant('application/scim+json') }, { weight: 1, arbitrary: contentType }),
          fc.option(fc.constantFrom('W/"1"', '*', 'garbage', 'W/"999"')),
        ),
        ([[method, path], body, type, ifMatch]) =>
          sendRaw(w.t.request, {
            method,
            path: `/scim/v2${path.replace('ID', w.userId)}`,
            headers: { Authorization: `Bearer ${w.tokens.scim}`, 'Content-Type': type, 'If-Match': ifMatch ?? undefined },
            body,
          }),
      ),
    timeoutFor(),
  );

  test(
    'PATCH /scim/v2/Users/:id and /Groups/:id',
    () =>
      fuzz(
        w,
        'PATCH /scim/v2',
        fc.tuple(
          fc.constantFrom('/Users/ID', '/Users/nope', '/Groups/nope'),
          jsonBody(patchDoc),
          fc.option(fc.constantFrom('W/"1"', '*', 'garbage')),
        ),
        ([path, body, ifMatch]) =>
          sendRaw(w.t.request, {
            method: 'patch',
            path: `/scim/v2${path.replace('ID', w.userId)}`,
            headers: {
              Authorization: `Bearer ${w.tokens.scim}`,
              'Content-Type': 'application/scim+json',
              'If-Match': ifMatch ?? undefined,
            },
            body,
          }),
      ),
    timeoutFor(),
  );

  test(
    'SCIM resource paths, ids and discovery',
    () =>
      fuzz(
        w,
        'SCIM paths',
        fc.tuple(
          fc.constantFrom<Method>('get', 'delete', 'post', 'put', 'patch'),
          fc.oneof(
            fc.constantFrom(
              '/Users/nope',
              '/Groups/x',
              '/Schemas/x',
              '/ResourceTypes/User',
              '/ServiceProviderConfig',
              '/Bulk',
              '/Me',
              '/Users/%00',
              '/Users/..%2F..',
            ),
            hostile.map((h) => `/${pct(h)}`),
            hostile.map((h) => `/Users/${pct(h)}`),
          ),
          fc.oneof({ weight: 3, arbitrary: fc.constant(`Bearer ${w.tokens.scim}`) }, { weight: 1, arbitrary: authorizationHeader }),
        ),
        ([method, path, auth]) => sendRaw(w.t.request, { method, path: `/scim/v2${path}`, headers: { Authorization: auth } }),
        // A DELETE of an unknown user once wrote a revoked mark for its id (a refusal that changed state).
        { prescribed5xx: scimNotImplemented, examples: [['delete', '/Users/nope', `Bearer ${w.tokens.scim}`]] },
      ),
    timeoutFor(),
  );

  test(
    'GET /fhir/Consent search parameters and reads',
    () =>
      fuzz(
        w,
        'GET /fhir/Consent',
        fc.tuple(
          mutatedParams(
            {
              patient: 'pat-1',
              status: 'active,inactive',
              actor: 'Patient/pat-1',
              date: 'ge2020-01-01',
              _count: '10',
              _offset: '0',
              _format: 'json',
            },
            fc.constantFrom('Patient/x', 'ge2024-13-40', 'lt', '2024-01-01T25:00:00Z', '101', '1000001'),
          ),
          fc.oneof(
            fc.constant(''),
            fc.constant('/ID'),
            hostile.map((h) => `/${pct(h)}`),
          ),
          fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${w.tokens.fhirAdmin}`) }, { weight: 1, arbitrary: authorizationHeader }),
        ),
        ([params, id, auth]) =>
          sendRaw(w.t.request, {
            method: 'get',
            path: `/fhir/Consent${id.replace('ID', consentId)}?${encodeParams(params)}`,
            headers: { Authorization: auth },
          }),
      ),
    timeoutFor(),
  );

  test(
    'POST, PUT, PATCH and DELETE /fhir/Consent bodies',
    () =>
      fuzz(
        w,
        'write /fhir/Consent',
        fc.tuple(
          fc.constantFrom<[Method, string]>(
            ['put', '/ID'],
            ['patch', '/ID'],
            ['post', ''],
            ['delete', '/ID'],
            ['put', '/nope'],
            ['patch', '/nope'],
          ),
          fc.oneof(
            jsonBody(mutatedJson({ resourceType: 'Consent', id: 'ID', status: 'inactive', patient: { reference: 'Patient/pat-1' } })),
            jsonBody(fc.array(mutatedJson({ op: 'replace', path: '/status', value: 'inactive' }), { maxLength: 3 })),
          ),
          fc.constantFrom('application/fhir+json', 'application/json-patch+json', 'application/json', 'text/plain'),
          fc.option(fc.constantFrom('W/"1"', 'W/"2"', '*', 'x')),
        ),
        ([[method, path], body, type, ifMatch]) =>
          sendRaw(w.t.request, {
            method,
            path: `/fhir/Consent${path.replace('ID', consentId)}`,
            headers: { Authorization: `Bearer ${w.tokens.fhirAdmin}`, 'Content-Type': type, 'If-Match': ifMatch ?? undefined },
            body: body.replace('"ID"', JSON.stringify(consentId)),
          }),
      ),
    timeoutFor(),
  );

  test(
    'GET /fhir/AuditEvent search, read and $export',
    () =>
      fuzz(
        w,
        'GET /fhir/AuditEvent',
        fc.tuple(
          mutatedParams(
            {
              patient: 'pat-1',
              agent: 'fuzz-app',
              date: 'ge2020-01-01',
              type: 'http://dicom.nema.org/resources/ontology/DCM|110112',
              subtype: 'token-refused',
              outcome: '0',
              action: 'E',
              altid: 'x',
              _count: '5',
              _sort: '-date',
              _cursor: 'abc',
              _format: 'json',
            },
            fc.constantFrom('|', 'a|b|c', '12', 'Z', 'Patient/pat-1,Patient/x'),
          ),
          fc.constantFrom('', '/$export', '/nope', '/1'),
          fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${w.tokens.fhirAdmin}`) }, { weight: 1, arbitrary: authorizationHeader }),
        ),
        ([params, path, auth]) =>
          sendRaw(w.t.request, {
            method: 'get',
            path: `/fhir/AuditEvent${path}?${encodeParams(params)}`,
            headers: { Authorization: auth },
          }),
      ),
    timeoutFor(),
  );
});

test('the state property sees a change to a stored user and ignores an audit or rate-limit write', async () => {
  const before = await w.snapshot();
  await w.t.redis.set(w.t.keyspace.rateLimit('fuzz-self-check'), '1');
  await w.t.redis.set(`${w.t.keyspace.prefix}{audit}:fuzz-self-check`, '1');
  expect(changedKeys(before, await w.snapshot())).toEqual([]);
  await w.t.redis.hset(w.t.keyspace.scimUser(w.userId), 'lm', '0');
  expect(changedKeys(before, await w.snapshot())).toEqual([`changed ${w.t.keyspace.scimUser(w.userId)}`]);
});
