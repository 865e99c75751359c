import { randomUUID } from 'node:crypto';
import { cliLines as cli } from '../../support/cli.js';
import { RegistrationTokens } from '../../../src/oauth/clients/registration-tokens.js';
import { DEFAULT_REGISTRATION_CEILING } from '../../../src/oauth/clients/registration-policy.js';
import { createScimApp, patchOps, USER_SCHEMA, GROUP_SCHEMA, type ScimTestApp } from '../../apis/scim/support.js';
import { agentByType, detail, expectNoSecrets, expectValid, one, recordedBy, subtypeCodes, withLocal } from './events-support.js';
import { breakTheGlass } from '../../../src/records/audit/events/consent-events.js';
import { auditEventProblems } from '../../../src/records/audit/audit-event.js';
import { isDisclosure } from '../../../src/records/audit/disclosure.js';
import { userFromClaims } from '../../../src/records/audit/events/identity.js';
import { tokenIssued } from '../../../src/records/audit/events/token-events.js';

/*
 * Administrative events: SCIM users, groups and passwords; RFC 7591/7592 registration; and the
 * CLI (clients, users, keys), which writes to the same trail without HTTP.
 */

let t: ScimTestApp;
const prefix = `audit-admin-${randomUUID().slice(0, 8)}:`;
const env = {
  REDIS_URL: process.env.REDIS_URL!,
  AUTHZ_REDIS_PREFIX: prefix,
  AUTHZ_LOG_LEVEL: 'silent',
  AUTHZ_FHIR_SERVERS: 'http://localhost:8080/fhir',
};
const saved = { ...process.env };

beforeAll(async () => {
  Object.assign(process.env, env);
  // The CLI reads its configuration from the environment: same Redis, same prefix.
  t = await createScimApp({ AUTHZ_REDIS_PREFIX: prefix });
});
afterAll(async () => {
  process.env = saved;
  await t.close();
});

describe('SCIM', () => {
  test('user created with a password, password patched, user deleted: each recorded, no password in any', async () => {
    const first = 'first password for audit 123';
    const second = 'second password for audit 456';
    const { result: created, events } = await recordedBy(t, () =>
      t.post('/Users', { schemas: [USER_SCHEMA], userName: 'audited.user', password: first }),
    );
    expect(created.status).toBe(201);
    const id = JSON.parse(created.text).id as string;
    const c = one(events, 'user-created');
    expectValid(c);
    expect(c.action).toBe('C');
    expect(c.entity![0]!.what!.identifier!.value).toBe(id);
    expect(agentByType(c, '110150')[0]).toMatchObject({ requestor: true, who: { identifier: { value: 'scim-admin' } } });
    const pw = one(events, 'password-changed');
    expectValid(pw);
    expect(subtypeCodes(pw)).toContain('110137');

    const { events: patched } = await recordedBy(t, () =>
      t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'password', value: second })),
    );
    expect(one(patched, 'user-updated').action).toBe('U');
    expectValid(one(patched, 'password-changed'));

    // A PATCH without a path carries the attributes in its value.
    const third = 'third password for audit 789';
    const { events: pathless } = await recordedBy(t, () =>
      t.patch(`/Users/${id}`, patchOps({ op: 'replace', value: { password: third } })),
    );
    expectValid(one(pathless, 'password-changed'));

    const { events: renamed } = await recordedBy(t, () =>
      t.patch(`/Users/${id}`, patchOps({ op: 'replace', path: 'displayName', value: 'Audited' })),
    );
    expect(withLocal(renamed, 'password-changed')).toHaveLength(0);
    expectValid(one(renamed, 'user-updated'));

    const { events: deleted } = await recordedBy(t, () => t.del(`/Users/${id}`));
    const d = one(deleted, 'user-deleted');
    expectValid(d);
    expect(d.action).toBe('D');
    for (const e of [...events, ...patched, ...pathless, ...renamed, ...deleted]) expectNoSecrets(e, [first, second, third, t.token]);
  });

  test('group created, replaced, patched, deleted', async () => {
    const { result, events } = await recordedBy(t, () => t.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Audited group' }));
    const id = JSON.parse(result.text).id as string;
    expectValid(one(events, 'group-created'));
    const { events: replaced } = await recordedBy(t, () =>
      t.put(`/Groups/${id}`, { schemas: [GROUP_SCHEMA], displayName: 'Audited group 2' }),
    );
    expectValid(one(replaced, 'group-updated'));
    const { events: patched } = await recordedBy(t, () =>
      t.patch(`/Groups/${id}`, patchOps({ op: 'replace', path: 'displayName', value: 'Audited group 3' })),
    );
    expectValid(one(patched, 'group-updated'));
    const { events: deleted } = await recordedBy(t, () => t.del(`/Groups/${id}`));
    const d = one(deleted, 'group-deleted');
    expectValid(d);
    expect(d.entity![0]!.role!.code).toBe('12');
  });
});

describe('dynamic client registration (RFC 7591/7592)', () => {
  test('registered, updated, deleted: the client id and field names, never a secret or registration token', async () => {
    const { token: iat } = await new RegistrationTokens(t.redis, t.keyspace).issue(t.app, {
      ...DEFAULT_REGISTRATION_CEILING,
      uses: 1,
      expiresIn: 600,
    });
    const body = {
      smart_client_kind: 'confidential_symmetric',
      redirect_uris: ['https://reg.example.org/cb'],
      smart_scopes: ['openid', 'patient/*.rs'],
    };
    const { result: res, events } = await recordedBy(t, () => t.request.post('/register').set('Authorization', `Bearer ${iat}`).send(body));
    expect(res.status).toBe(201);
    const { client_id: clientId, client_secret: secret, registration_access_token: rat } = res.body as Record<string, string>;
    const c = one(events, 'client-registered');
    expectValid(c);
    expect(c.entity![0]!.what!.identifier!.value).toBe(clientId);
    expect(detail(c, 'fields')).toBe('redirect_uris smart_client_kind smart_scopes');

    const { result: upd, events: updated } = await recordedBy(t, () =>
      t.request
        .put(`/register/${clientId}`)
        .set('Authorization', `Bearer ${rat}`)
        .send({ ...body, client_id: clientId, client_secret: secret, client_name: 'Renamed' }),
    );
    expect(upd.status).toBe(200);
    const u = one(updated, 'client-updated');
    expectValid(u);
    const rotated = (upd.body as Record<string, string>).registration_access_token ?? rat;

    const { result: del, events: deleted } = await recordedBy(t, () =>
      t.request.delete(`/register/${clientId}`).set('Authorization', `Bearer ${rotated}`),
    );
    expect(del.status).toBe(204);
    expectValid(one(deleted, 'client-deleted'));
    for (const e of [...events, ...updated, ...deleted]) expectNoSecrets(e, [iat, secret, rat, rotated]);
  });
});

describe('CLI', () => {
  test('clients add, update, rotate-secret, remove: the operator as actor, no secret', async () => {
    const { result: added, events } = await recordedBy(t, () =>
      cli(
        'clients',
        'add',
        '--id',
        'cli-audited',
        '--kind',
        'confidential_symmetric',
        '--redirect-uri',
        'https://cli.example.org/cb',
        '--scopes',
        'openid',
      ),
    );
    const secrets = added.join('\n').match(/[A-Za-z0-9_-]{30,}/g) ?? [];
    const c = one(events, 'client-registered');
    expectValid(c);
    expect(agentByType(c, 'humanuser')[0]?.who?.display).toMatch(/^smart-authz CLI \(.+@.+\)$/);
    expect(detail(c, 'via')).toBe('cli');

    const { events: updated } = await recordedBy(t, () => cli('clients', 'update', 'cli-audited', '--name', 'CLI audited'));
    const u = one(updated, 'client-updated');
    expectValid(u);
    expect(detail(u, 'fields')).toBe('client_name');

    const { result: rotatedOut, events: rotated } = await recordedBy(t, () => cli('clients', 'rotate-secret', 'cli-audited'));
    const r = one(rotated, 'client-updated');
    expectValid(r);
    expect(detail(r, 'secret_rotated')).toBe('true');
    const newSecrets = rotatedOut.join('\n').match(/[A-Za-z0-9_-]{30,}/g) ?? [];

    const { events: removed } = await recordedBy(t, () => cli('clients', 'remove', 'cli-audited'));
    expectValid(one(removed, 'client-deleted'));
    for (const e of [...events, ...updated, ...rotated, ...removed]) expectNoSecrets(e, [...secrets, ...newSecrets]);
  });

  test('users add and set-password: recorded, the password nowhere', async () => {
    const pw = 'cli password for audit 789';
    const { events } = await recordedBy(t, () => cli('users', 'add', '--username', 'cli.audited', '--password', pw));
    expectValid(one(events, 'user-created'));
    expectValid(one(events, 'password-changed'));
    const { events: set } = await recordedBy(t, () => cli('users', 'set-password', 'cli.audited', '--password', `${pw}-2`));
    const e = one(set, 'password-changed');
    expectValid(e);
    expect(e.type.code).toBe('110113');
    const { events: disabled } = await recordedBy(t, () => cli('users', 'disable', 'cli.audited'));
    expect(detail(one(disabled, 'user-updated'), 'active')).toBe('false');
    for (const x of [...events, ...set, ...disabled]) expectNoSecrets(x, [pw, `${pw}-2`]);
  });

  test('keys introduce, promote, remove: key rotation events by kid', async () => {
    const { result: introduced, events } = await recordedBy(t, () => cli('keys', 'introduce', 'EC'));
    const kid = /introduced (\S+)/.exec(introduced[0]!)![1]!;
    const i = one(events, 'key-introduced');
    expectValid(i);
    expect(subtypeCodes(i)).toContain('110129');
    expect(i.entity![0]!.what!.identifier!.value).toBe(kid);
    const { result: promoted, events: p } = await recordedBy(t, () => cli('keys', 'promote', kid));
    const retired = /retired: (\S+)/.exec(promoted[0]!)![1]!;
    expect(detail(one(p, 'key-promoted'), 'retired')).toBe(retired);
    const { events: r } = await recordedBy(t, () => cli('keys', 'remove', retired, '--force'));
    const removed = one(r, 'key-removed');
    expectValid(removed);
    expect(removed.action).toBe('D');
    const stored = JSON.stringify(await t.keystore.list());
    expect(JSON.stringify([...events, ...p, ...r])).not.toMatch(/"d":"/);
    expect(stored).toContain(kid);
  });
});

test('break-the-glass builder: Security Alert, ETREAT + BTG, the reason, a disclosure of the patient', () => {
  const e = breakTheGlass(
    { issuer: 'https://as.example.org' },
    {
      reason: 'unconscious patient in the ED',
      user: {
        accountId: 'u-1',
        fhirUser: 'Practitioner/dr-1',
        roles: [{ system: 'http://snomed.info/sct', code: '309343006', display: 'Physician' }],
      },
      patient: 'pat-7',
      tokenJti: 'abc123',
    },
  );
  expect(auditEventProblems(e)).toEqual([]);
  expect(e.type.code).toBe('110113');
  expect(e.subtype!.map((c) => c.code)).toEqual(['break-the-glass', '110127']);
  expect(e.purposeOfEvent!.flatMap((p) => p.coding!.map((c) => c.code))).toEqual(['ETREAT', 'BTG']);
  expect(e.outcomeDesc).toContain('unconscious patient in the ED');
  expect(e.agent[0]!.role![0]!.coding![0]!.code).toBe('309343006');
  expect(isDisclosure(e)).toBe(true);
});

test('IUA identity claims (extensions.ihe_iua) become the user agent’s role, purpose of use and organization', () => {
  const user = userFromClaims('u-1', {
    fhirUser: 'Practitioner/dr-1',
    extensions: {
      ihe_iua: {
        subject_name: 'Dr Smith',
        subject_organization: 'General Hospital',
        subject_organization_id: 'urn:oid:1.2.3',
        subject_role: [
          { system: 'http://snomed.info/sct', code: '309343006', display: 'Physician' },
          { system: 'not a uri', code: 'x' },
        ],
        purpose_of_use: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
      },
    },
  });
  const e = tokenIssued(
    { issuer: 'https://as.example.org' },
    { client: { clientId: 'app' }, grantType: 'authorization_code', user, patient: 'pat-1' },
  );
  expect(auditEventProblems(e)).toEqual([]);
  const [agent] = e.agent.filter((a) => a.type?.coding?.[0]?.code === 'IRCP');
  expect(agent).toMatchObject({
    who: { reference: 'Practitioner/dr-1', display: 'Dr Smith' },
    role: [{ coding: [{ code: '309343006' }] }],
    purposeOfUse: [{ coding: [{ code: 'TREAT' }] }],
  });
  expect(e.agent.find((a) => a.type?.coding?.[0]?.code === 'PROV')?.who).toEqual({
    identifier: { value: 'urn:oid:1.2.3' },
    display: 'General Hospital',
  });
  expect(e.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('TREAT');
});
