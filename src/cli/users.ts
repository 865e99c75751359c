import { CORE_USER_SCHEMA, SMART_USER_SCHEMA, type ScimUser } from '../records/directory/model.js';
import type { UserStore } from '../records/directory/user-store.js';
import type { LockState } from '../records/directory/lockout.js';
import { CliUsageError } from './errors.js';
import { type Out } from './clients.js';
import { parseCommandArgs, requirePositional } from './args.js';

/**
 * `users …` admin commands. They go through the same user store as SCIM, so the same validation
 * applies (its ScimError messages are shown as they are). Passwords are best given on standard
 * input: a `--password` value stays in the shell history and the process list.
 */

export interface UsersCliDeps {
  users: UserStore;
  lockout: LockState;
  /** Everything on standard input (the CLI entry reads process.stdin). */
  readStdin: () => Promise<string>;
}

export type UsersCommand = (deps: UsersCliDeps, args: string[], out: Out) => Promise<void>;

export const USERS_USAGE = `Usage: smart-authz users <command> [options]

Commands:
  add --username NAME [options]   create a user
  set-password NAME               set a user's password (from standard input, or --password)
  list [--json]                   list users
  disable NAME                    deactivate a user: it can no longer sign in; its sessions,
                                  grants and tokens end at once (enabling revives none)
  enable NAME                     reactivate a user
  unlock NAME                     lift a lock-out after too many wrong passwords

Options of add:
  --password-stdin         read the password from standard input (recommended)
  --password PASSWORD      the password on the command line (visible in shell history)
  --given NAME             given name
  --family NAME            family name
  --email ADDRESS          e-mail address (repeatable)
  --fhir-user REFERENCE    the user's FHIR resource, e.g. Practitioner/123 or an absolute URL
  --role SYSTEM|CODE       a security role, e.g. http://snomed.info/sct|309343006 (repeatable)
  --staff                  a member of staff: with a Practitioner --fhir-user, may grant user/ scopes

Without a password the user exists but cannot sign in until "users set-password".
`;

function requireName(positionals: string[], command: string): string {
  return requirePositional(positionals, `users ${command}`, 'a user name');
}

async function existing(users: UserStore, userName: string): Promise<ScimUser> {
  const user = await users.findByUserName(userName);
  if (!user) throw new CliUsageError(`user "${userName}" does not exist`);
  return user;
}

/** One trailing newline is what `echo` and here-strings add; it is not part of the password. */
async function passwordFrom(
  values: { password?: string | undefined; 'password-stdin'?: boolean | undefined },
  deps: UsersCliDeps,
  required: boolean,
): Promise<string | undefined> {
  if (values.password !== undefined && values['password-stdin']) throw new CliUsageError('give --password or --password-stdin, not both');
  if (values.password !== undefined) return values.password;
  if (!values['password-stdin'] && !required) return undefined;
  const password = (await deps.readStdin()).replace(/\r?\n$/, '');
  if (!password) throw new CliUsageError('no password on standard input');
  return password;
}

function parseRole(value: string): { system: string; code: string; display?: string } {
  const [system, code, display] = value.split('|');
  if (!system || !code) throw new CliUsageError(`--role must be SYSTEM|CODE (optionally |DISPLAY), got "${value}"`);
  return display ? { system, code, display } : { system, code };
}

export async function addUser(deps: UsersCliDeps, args: string[], out: Out): Promise<void> {
  const { values } = parseCommandArgs(
    args,
    {
      username: { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      given: { type: 'string' },
      family: { type: 'string' },
      email: { type: 'string', multiple: true },
      'fhir-user': { type: 'string' },
      role: { type: 'string', multiple: true },
      staff: { type: 'boolean' },
    },
    0,
  );
  if (!values.username) throw new CliUsageError('users add needs --username');
  const password = await passwordFrom(values, deps, false);
  const smart = {
    ...(values['fhir-user'] ? { fhirUser: values['fhir-user'] } : {}),
    ...(values.role?.length ? { roles: values.role.map(parseRole) } : {}),
    ...(values.staff ? { staff: true } : {}),
  };
  const name = { ...(values.given ? { givenName: values.given } : {}), ...(values.family ? { familyName: values.family } : {}) };
  const user = await deps.users.create({
    schemas: Object.keys(smart).length ? [CORE_USER_SCHEMA, SMART_USER_SCHEMA] : [CORE_USER_SCHEMA],
    userName: values.username,
    ...(Object.keys(name).length ? { name } : {}),
    ...(values.email?.length ? { emails: values.email.map((value, i) => ({ value, ...(i === 0 ? { primary: true } : {}) })) } : {}),
    ...(Object.keys(smart).length ? { [SMART_USER_SCHEMA]: smart } : {}),
    ...(password !== undefined ? { password } : {}),
  });
  out(`created user "${user.userName}" (id ${user.id})`);
  if (password === undefined) out(`no password set: "${user.userName}" cannot sign in until "users set-password ${user.userName}"`);
}

export async function setUserPassword(deps: UsersCliDeps, args: string[], out: Out): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, { password: { type: 'string' }, 'password-stdin': { type: 'boolean' } }, 1);
  const user = await existing(deps.users, requireName(positionals, 'set-password'));
  const password = (await passwordFrom(values, deps, true))!;
  await deps.users.setPassword(user.id, password);
  out(`password of "${user.userName}" changed`);
}

export async function listUsers(deps: UsersCliDeps, args: string[], out: Out): Promise<void> {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 0);
  const all: ScimUser[] = [];
  for (let startIndex = 1; ;) {
    const page = await deps.users.search({ startIndex });
    all.push(...page.resources);
    startIndex += page.resources.length;
    if (!page.resources.length || startIndex > page.totalResults) break;
  }
  all.sort((a, b) => a.userName.localeCompare(b.userName));
  if (values.json) {
    out(JSON.stringify(all, null, 2));
    return;
  }
  if (!all.length) {
    out('no users');
    return;
  }
  const rows = [
    ['USER NAME', 'STATUS', 'FHIR USER', 'NAME', 'ID'],
    ...all.map((u) => {
      const smart = u[SMART_USER_SCHEMA];
      const status = !u.active ? 'disabled' : smart?.locked ? 'locked' : 'active';
      const name = u.name?.formatted ?? ([u.name?.givenName, u.name?.familyName].filter(Boolean).join(' ') || u.displayName || '');
      return [u.userName, status, smart?.fhirUser ?? '', name, u.id];
    }),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const row of rows)
    out(
      row
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    );
}

function activation(active: boolean): UsersCommand {
  const command = active ? 'enable' : 'disable';
  return async (deps, args, out) => {
    const { positionals } = parseCommandArgs(args, {}, 1);
    const user = await existing(deps.users, requireName(positionals, command));
    if (user.active === active) {
      // Ending access again is harmless and finishes a disable that failed after the record was written.
      if (!active) await deps.users.endAccess(user.id);
      out(`user "${user.userName}" is already ${active ? 'active' : 'disabled'}`);
      return;
    }
    await deps.users.setActive(user.id, active);
    out(
      active
        ? `user "${user.userName}" enabled`
        : `user "${user.userName}" disabled: it can no longer sign in, and its sessions and tokens have ended`,
    );
  };
}

export const enableUser = activation(true);
export const disableUser = activation(false);

export async function unlockUser(deps: UsersCliDeps, args: string[], out: Out): Promise<void> {
  const { positionals } = parseCommandArgs(args, {}, 1);
  const user = await existing(deps.users, requireName(positionals, 'unlock'));
  const wasLocked = await deps.lockout.isLocked(user.id);
  await deps.lockout.clear(user.id);
  out(wasLocked ? `user "${user.userName}" unlocked` : `user "${user.userName}" was not locked (failure count reset)`);
}

/** `users <name>` → command, for the dispatcher. */
export const USER_COMMANDS: Readonly<Record<string, UsersCommand>> = {
  add: addUser,
  'set-password': setUserPassword,
  list: listUsers,
  disable: disableUser,
  enable: enableUser,
  unlock: unlockUser,
};
