import { setTimeout as sleep } from 'node:timers/promises';
import { createScimApp, ENTERPRISE, SMART, USER_SCHEMA, type ScimTestApp } from './support.js';

let t: ScimTestApp;
const ids: Record<string, string> = {};
let mid = '';

async function create(body: Record<string, unknown>): Promise<void> {
  const res = await t.post('/Users', { schemas: [USER_SCHEMA], ...body });
  expect(res.status).toBe(201);
  ids[body.userName as string] = res.body.id;
}

beforeAll(async () => {
  t = await createScimApp();
  await create({
    userName: 'bjensen',
    externalId: 'BJ-001',
    name: { familyName: 'Jensen', givenName: 'Barbara' },
    displayName: 'Babs Jensen',
    title: 'Tour Guide',
    userType: 'Employee',
    emails: [
      { value: 'bjensen@example.com', type: 'work', primary: true },
      { value: 'babs@jensen.org', type: 'home' },
    ],
    [ENTERPRISE]: { employeeNumber: '701984', department: 'Tour Operations' },
    [SMART]: {
      fhirUser: 'Practitioner/p1',
      clearance: 'N',
      purposesOfUse: ['TREAT'],
      roles: [{ system: 'http://snomed.info/sct', code: '158965000', display: 'Medical practitioner' }],
    },
  });
  await create({
    userName: 'JSmith',
    externalId: 'bj-001',
    name: { familyName: 'Smith', givenName: 'John' },
    userType: 'Intern',
    active: false,
    emails: [{ value: 'john.smith@example.org', type: 'work' }],
  });
  await create({
    userName: 'omalley',
    name: { familyName: "O'Malley" },
    userType: 'Employee',
    title: 'Nurse',
    emails: [{ value: 'o@example.com', type: 'home' }],
    [SMART]: { clearance: 'R', fhirUser: 'https://fhir.example.org/fhir/Practitioner/p3' },
  });
  await sleep(15);
  mid = new Date().toISOString();
  await sleep(15);
  await create({
    userName: 'pat.one@example.net',
    userType: 'Patient',
    emails: [{ value: 'pat.one@example.net', type: 'home', primary: true }],
    [SMART]: { fhirUser: 'Patient/123', proxyPatients: [{ value: 'Patient/456', display: 'Kid One' }] },
  });
  await create({ userName: 'zed', displayName: 'Zed' });
});
afterAll(() => t.close());

async function matching(filter: string): Promise<string[]> {
  const res = await t.get(`/Users?filter=${encodeURIComponent(filter)}`);
  expect(res.status).toBe(200);
  expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:ListResponse']);
  expect(res.body.totalResults).toBe(res.body.Resources.length);
  return (res.body.Resources as Array<{ userName: string }>).map((u) => u.userName).sort();
}

const ALL = ['JSmith', 'bjensen', 'omalley', 'pat.one@example.net', 'zed'];

describe('filter expressions (RFC 7644 §3.4.2.2) over real users', () => {
  const table: Array<[string, () => string, string[]]> = [
    ['userName equality', () => 'userName eq "bjensen"', ['bjensen']],
    ['userName is case-insensitive', () => 'userName eq "BJENSEN"', ['bjensen']],
    ['operators are case-insensitive', () => 'userName Eq "jsmith"', ['JSmith']],
    ['externalId is case-exact', () => 'externalId eq "BJ-001"', ['bjensen']],
    ['externalId is case-exact (other case)', () => 'externalId eq "bj-001"', ['JSmith']],
    ['externalId mixed case matches nothing', () => 'externalId eq "Bj-001"', []],
    ['id equality', () => `id eq "${ids.bjensen}"`, ['bjensen']],
    ['emails.value, case-insensitive', () => 'emails.value eq "BJENSEN@example.com"', ['bjensen']],
    ['a complex attribute compares its value', () => 'emails eq "babs@jensen.org"', ['bjensen']],
    ['value path then sub-attribute', () => 'emails[type eq "work"].value co "example"', ['JSmith', 'bjensen']],
    ['value filter with and', () => 'emails[type eq "work" and value co "@example.com"]', ['bjensen']],
    ['value filter and another attribute', () => 'emails[type eq "home"] and userType eq "Employee"', ['bjensen', 'omalley']],
    ['co with an apostrophe', () => `name.familyName co "O'Malley"`, ['omalley']],
    ['sw', () => 'userName sw "J"', ['JSmith']],
    ['ew, case-insensitive', () => 'userName ew "@EXAMPLE.NET"', ['pat.one@example.net']],
    ['pr', () => 'title pr', ['bjensen', 'omalley']],
    ['not (…)', () => 'not (title pr)', ['JSmith', 'pat.one@example.net', 'zed']],
    ['pr and eq', () => 'title pr and userType eq "Employee"', ['bjensen', 'omalley']],
    ['pr or eq', () => 'title pr or userType eq "Intern"', ['JSmith', 'bjensen', 'omalley']],
    [
      'RFC example with parentheses',
      () => 'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
      ['bjensen', 'omalley'],
    ],
    [
      'RFC example with not',
      () => 'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
      ['pat.one@example.net', 'zed'],
    ],
    ['boolean eq false', () => 'active eq false', ['JSmith']],
    ['boolean and not pr', () => 'active eq true and not (emails pr)', ['zed']],
    ['lastModified gt a date', () => `meta.lastModified gt "${mid}"`, ['pat.one@example.net', 'zed']],
    ['created lt a date', () => `meta.created lt "${mid}"`, ['JSmith', 'bjensen', 'omalley']],
    ['lastModified ge an old date without milliseconds', () => 'meta.lastModified ge "2011-05-13T04:42:34Z"', ALL],
    ['schemas eq an extension', () => `schemas eq "${ENTERPRISE}"`, ['bjensen']],
    ['URN-qualified core attribute', () => `${USER_SCHEMA}:userName sw "o"`, ['omalley']],
    ['enterprise extension attribute', () => `${ENTERPRISE}:employeeNumber eq "701984"`, ['bjensen']],
    ['SMART clearance', () => `${SMART}:clearance eq "R"`, ['omalley']],
    ['SMART fhirUser sw', () => `${SMART}:fhirUser sw "Patient/"`, ['pat.one@example.net']],
    ['SMART proxy patient value filter', () => `${SMART}:proxyPatients[value eq "Patient/456"]`, ['pat.one@example.net']],
    ['SMART role code', () => `${SMART}:roles[code eq "158965000"]`, ['bjensen']],
    ['purposesOfUse is case-exact', () => `${SMART}:purposesOfUse eq "TREAT"`, ['bjensen']],
    ['purposesOfUse other case matches nothing', () => `${SMART}:purposesOfUse eq "treat"`, []],
    ['gt on strings ignores case', () => 'displayName gt "B"', ['bjensen', 'zed']],
    ['lt on strings', () => 'displayName lt "C"', ['bjensen']],
    ['or in parentheses, and', () => '(userName eq "zed" or userName eq "omalley") and active eq true', ['omalley', 'zed']],
    ['sub-attribute type is case-insensitive', () => 'emails.type eq "WORK"', ['JSmith', 'bjensen']],
    ['ne on an absent attribute matches', () => 'title ne "Nurse"', ['JSmith', 'bjensen', 'pat.one@example.net', 'zed']],
    ['eq null means unassigned', () => 'title eq null', ['JSmith', 'pat.one@example.net', 'zed']],
  ];

  test('the table has at least 25 valid expressions', () => expect(table.length).toBeGreaterThanOrEqual(25));

  test.each(table)('%s', async (_name, filter, expected) => {
    expect(await matching(filter())).toEqual(expected.sort());
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['a missing value', 'userName eq', /filter/],
    ['an unknown operator', 'userName xx "a"', /unknown operator/],
    ['an unclosed parenthesis', '(userName eq "a"', /parenthes|incomplete/],
    ['a stray closing parenthesis', 'userName eq "a")', /after the end|characters|incomplete/],
    ['an unquoted string', 'userName eq bob', /comparison value/],
    ['an empty filter', '', /empty/],
    ['an unknown attribute', 'nosuch eq "x"', /nosuch is not an attribute of User/],
    ['ordering on a boolean', 'active gt true', /boolean/],
    ['a date that is not one', 'meta.lastModified gt "yesterday"', /dateTime/],
    ['an unclosed value filter', 'emails[type eq "work"', /\[|incomplete/],
    ['a complex attribute without value', 'name eq "x"', /complex/],
    ['a dangling and', 'userName eq "a" and', /filter/],
    ['a value filter on a simple attribute', 'userName[value eq "x"]', /not a complex attribute/],
  ];

  test.each(malformed)('%s → 400 invalidFilter', async (_name, filter, detail) => {
    const res = await t.get(`/Users?filter=${encodeURIComponent(filter)}`);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '400', scimType: 'invalidFilter' });
    expect(res.body.detail).toMatch(detail);
  });

  test('a filter on password is refused without echoing the value', async () => {
    for (const filter of ['password eq "hunter2-secret"', 'password pr', 'password eq "hunter2-secret']) {
      const res = await t.get(`/Users?filter=${encodeURIComponent(filter)}`);
      expect(res.status).toBe(400);
      expect(res.body.scimType).toBe('invalidFilter');
      expect(res.text).not.toContain('hunter2');
    }
  });

  test('filters also work in POST /Users/.search', async () => {
    const res = await t.post('/Users/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'userType eq "employee"',
      attributes: ['userName'],
    });
    expect(res.status).toBe(200);
    expect(res.body.Resources.map((u: { userName: string }) => u.userName).sort()).toEqual(['bjensen', 'omalley']);
    expect(Object.keys(res.body.Resources[0]).sort()).toEqual(['id', 'schemas', 'userName']);
  });
});
