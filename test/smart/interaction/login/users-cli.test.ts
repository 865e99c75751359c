import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../../../src/platform/config/load.js';
import { connectRedis, createRedis, type RedisClient } from '../../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../../src/platform/redis/keyspace.js';
import { createUserStore, type UserStore } from '../../../../src/records/directory/user-store.js';
import { LoginLockout } from '../../../../src/records/directory/lockout.js';
import { verifyPassword } from '../../../../src/records/directory/passwords.js';
import { SMART_USER_SCHEMA } from '../../../../src/records/directory/model.js';
import { ScimError } from '../../../../src/domain/scim/errors.js';
import { CliUsageError } from '../../../../src/cli/errors.js';
import {
  USERS_USAGE,
  USER_COMMANDS,
  addUser,
  disableUser,
  enableUser,
  listUsers,
  setUserPassword,
  unlockUser,
  type UsersCliDeps,
} from '../../../../src/cli/users.js';

let redis: RedisClient;
let keyspace: Keyspace;
let users: UserStore;
let lockout: LoginLockout;
let lines: string[];
let stdin: string;
const out = (line: string) => void lines.push(line);
const deps = (): UsersCliDeps => ({ users, lockout, readStdin: async () => stdin });
const config = loadConfig({ REDIS_URL: process.env.REDIS_URL!, AUTHZ_LOGIN_MAX_FAILURES: '2' });

beforeAll(async () => {
  redis = createRedis(config.redis);
  await connectRedis(redis);
});

beforeEach(() => {
  keyspace = new Keyspace(`test-${randomUUID()}:`);
  lockout = new LoginLockout(redis, keyspace, config.login);
  users = createUserStore(config, redis, keyspace, lockout);
  lines = [];
  stdin = '';
});

afterAll(async () => {
  await redis.quit();
});

async function thrown(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the command to fail');
}

async function passwordHash(userName: string): Promise<string> {
  return (await users.credentials(userName))!.passwordHash!;
}

test('add with every option, the password from standard input', async () => {
  stdin = 's3cret pass phrase\n';
  await addUser(
    deps(),
    [
      '--username',
      'dr.who',
      '--password-stdin',
      '--given',
      'John',
      '--family',
      'Smith',
      '--email',
      'who@example.org',
      '--fhir-user',
      'Practitioner/42',
      '--role',
      'http://snomed.info/sct|309343006',
      '--role',
      'http://terminology.hl7.org/CodeSystem/v3-RoleClass|PROV|healthcare provider',
    ],
    out,
  );
  const user = (await users.findByUserName('dr.who'))!;
  expect(lines).toEqual([`created user "dr.who" (id ${user.id})`]);
  expect(user).toMatchObject({
    userName: 'dr.who',
    active: true,
    name: { givenName: 'John', familyName: 'Smith' },
    emails: [{ value: 'who@example.org', primary: true }],
    [SMART_USER_SCHEMA]: {
      fhirUser: 'Practitioner/42',
      roles: [
        { system: 'http://snomed.info/sct', code: '309343006' },
        { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass', code: 'PROV', display: 'healthcare provider' },
      ],
    },
  });
  // The trailing newline of `echo` is not part of the password.
  expect(await verifyPassword(await passwordHash('dr.who'), 's3cret pass phrase')).toBe(true);
});

test('add --staff marks a Practitioner-linked user as staff (who may grant user/ scopes)', async () => {
  await addUser(deps(), ['--username', 'nurse.staff', '--fhir-user', 'Practitioner/n-1', '--staff'], out);
  expect((await users.findByUserName('nurse.staff'))![SMART_USER_SCHEMA]).toEqual({ fhirUser: 'Practitioner/n-1', staff: true });
  await addUser(deps(), ['--username', 'nurse.plain', '--fhir-user', 'Practitioner/n-2'], out);
  expect((await users.findByUserName('nurse.plain'))![SMART_USER_SCHEMA]).toEqual({ fhirUser: 'Practitioner/n-2' });
});

test('add without a password says the user cannot sign in yet', async () => {
  await addUser(deps(), ['--username', 'nopass'], out);
  expect(lines[1]).toBe('no password set: "nopass" cannot sign in until "users set-password nopass"');
  expect((await users.credentials('nopass'))?.passwordHash).toBeUndefined();
});

test("the store's validation applies, and bad arguments are usage errors", async () => {
  const bad = await thrown(addUser(deps(), ['--username', 'x', '--fhir-user', 'Observation/1', '--password', 'pw'], out));
  expect(bad).toBeInstanceOf(ScimError);
  expect(bad.message).toMatch(/fhirUser must be/);
  await addUser(deps(), ['--username', 'taken', '--password', 'pw'], out);
  const dup = await thrown(addUser(deps(), ['--username', 'TAKEN', '--password', 'pw'], out));
  expect(dup).toBeInstanceOf(ScimError);
  expect(dup.message).toMatch(/already in use/);
  expect(await thrown(addUser(deps(), ['--password', 'pw'], out))).toBeInstanceOf(CliUsageError);
  expect(await thrown(addUser(deps(), ['--username', 'y', '--role', 'no-code'], out))).toBeInstanceOf(CliUsageError);
  expect(await thrown(addUser(deps(), ['--username', 'y', '--password', 'a', '--password-stdin'], out))).toBeInstanceOf(CliUsageError);
  expect((await thrown(addUser(deps(), ['--username', 'y', '--colour', 'red'], out))).message).toMatch(/--colour/);
  stdin = '';
  expect((await thrown(addUser(deps(), ['--username', 'y', '--password-stdin'], out))).message).toBe('no password on standard input');
  expect(await users.findByUserName('y')).toBeUndefined();
});

test('set-password reads standard input by default, or --password', async () => {
  await addUser(deps(), ['--username', 'amy', '--password', 'first password'], out);
  const first = await passwordHash('amy');
  lines = [];
  stdin = 'second password\r\n';
  await setUserPassword(deps(), ['amy'], out);
  expect(lines).toEqual(['password of "amy" changed']);
  const second = await passwordHash('amy');
  expect(second).not.toBe(first);
  expect(await verifyPassword(second, 'second password')).toBe(true);
  await setUserPassword(deps(), ['amy', '--password', 'third password'], out);
  expect(await verifyPassword(await passwordHash('amy'), 'third password')).toBe(true);
  expect((await thrown(setUserPassword(deps(), ['nobody', '--password', 'x'], out))).message).toBe('user "nobody" does not exist');
  expect(await thrown(setUserPassword(deps(), [], out))).toBeInstanceOf(CliUsageError);
});

test('list shows one row per user with status, sorted by user name', async () => {
  await listUsers(deps(), [], out);
  expect(lines).toEqual(['no users']);
  await addUser(deps(), ['--username', 'zed', '--given', 'Zed', '--family', 'Z', '--fhir-user', 'Patient/1'], out);
  await addUser(deps(), ['--username', 'amy'], out);
  await addUser(deps(), ['--username', 'bob'], out);
  await disableUser(deps(), ['bob'], out);
  const zed = (await users.findByUserName('zed'))!;
  await (await lockout.reserve(zed.id))?.failed();
  await (await lockout.reserve(zed.id))?.failed();
  lines = [];
  await listUsers(deps(), [], out);
  const [amy, bob] = [(await users.findByUserName('amy'))!, (await users.findByUserName('bob'))!];
  expect(lines).toEqual([
    'USER NAME  STATUS    FHIR USER  NAME   ID',
    `amy        active                      ${amy.id}`,
    `bob        disabled                    ${bob.id}`,
    `zed        locked    Patient/1  Zed Z  ${zed.id}`,
  ]);
  lines = [];
  await listUsers(deps(), ['--json'], out);
  const listed = JSON.parse(lines.join('\n')) as Array<{ userName: string }>;
  expect(listed.map((u) => u.userName)).toEqual(['amy', 'bob', 'zed']);
  expect(lines.join('\n')).not.toContain('argon2');
});

test('list pages through a directory larger than one page', async () => {
  const small = createUserStore({ ...config, scim: { maxFilterScan: 100, maxPageSize: 2 } }, redis, keyspace, lockout);
  for (const name of ['u1', 'u2', 'u3', 'u4', 'u5']) await small.create({ userName: name });
  await listUsers({ users: small, lockout, readStdin: async () => '' }, ['--json'], out);
  expect((JSON.parse(lines.join('\n')) as unknown[]).length).toBe(5);
});

test('disable and enable change whether the user may sign in', async () => {
  await addUser(deps(), ['--username', 'amy', '--password', 'pw'], out);
  lines = [];
  await disableUser(deps(), ['amy'], out);
  expect((await users.findByUserName('amy'))?.active).toBe(false);
  await disableUser(deps(), ['amy'], out);
  await enableUser(deps(), ['amy'], out);
  expect((await users.findByUserName('amy'))?.active).toBe(true);
  expect(lines).toEqual([
    'user "amy" disabled: it can no longer sign in, and its sessions and tokens have ended',
    'user "amy" is already disabled',
    'user "amy" enabled',
  ]);
  expect((await thrown(enableUser(deps(), ['ghost'], out))).message).toBe('user "ghost" does not exist');
});

test('unlock lifts a lock-out', async () => {
  await addUser(deps(), ['--username', 'amy', '--password', 'pw'], out);
  const amy = (await users.findByUserName('amy'))!;
  await (await lockout.reserve(amy.id))?.failed();
  await (await lockout.reserve(amy.id))?.failed();
  expect(await lockout.isLocked(amy.id)).toBe(true);
  lines = [];
  await unlockUser(deps(), ['amy'], out);
  expect(await lockout.isLocked(amy.id)).toBe(false);
  await unlockUser(deps(), ['amy'], out);
  expect(lines).toEqual(['user "amy" unlocked', 'user "amy" was not locked (failure count reset)']);
});

test('the usage text and the command map name every command', () => {
  const commands = ['add', 'set-password', 'list', 'disable', 'enable', 'unlock'];
  for (const command of commands) expect(USERS_USAGE).toMatch(new RegExp(`^  ${command} `, 'm'));
  expect(Object.keys(USER_COMMANDS).sort()).toEqual([...commands].sort());
});
