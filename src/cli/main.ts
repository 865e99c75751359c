import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import { loadConfig, ConfigError } from '../platform/config/load.js';
import { createLogger } from '../platform/ops/logger.js';
import { Metrics } from '../platform/ops/metrics.js';
import { openRuntime, StartupError, type Runtime } from '../app/runtime.js';
import { buildApp } from '../app/app.js';
import { clientRegistryFor } from '../oauth/clients/wiring.js';
import { ClientRegistryError } from '../oauth/clients/registry.js';
import { KeyStoreError } from '../platform/keys/errors.js';
import { ROUTES } from '../oauth/paths.js';
import {
  DEFAULT_REGISTRATION_KINDS,
  DEFAULT_REGISTRATION_SCOPES,
  ceilingProblem,
  splitList,
} from '../oauth/clients/registration-policy.js';
import {
  MAX_REGISTRATION_TOKEN_SECONDS,
  MAX_REGISTRATION_USES,
  RegistrationTokenError,
  RegistrationTokens,
  type RegistrationTokenPolicy,
} from '../oauth/clients/registration-tokens.js';
import type { SmartClientKind } from '../oauth/clients/client-kinds.js';
import { parseCommandArgs } from './args.js';
import { DEMO, demoBackendKey } from '../app/demo-seed.js';
import {
  CLIENTS_USAGE,
  addClient,
  listClients,
  removeClient,
  rotateClientSecret,
  setClientJwks,
  showClient,
  updateClient,
  type Out,
} from './clients.js';
import { CliUsageError } from './errors.js';
import { USERS_USAGE, USER_COMMANDS } from './users.js';
import { LoginLockout } from '../records/directory/lockout.js';
import { createUserStore } from '../records/directory/user-store.js';
import { ScimError } from '../domain/scim/errors.js';
import { audit } from './audit.js';
import { createAuditTrail } from '../records/audit/trail.js';
import { auditedLockState, auditedRegistry, auditedUserStore, cliOperator, recordKeyChange, type CliAudit } from './cli-audit.js';

const USAGE = `Usage: smart-authz <group> <command> [options]

  clients  add|list|show|update|remove|rotate-secret|set-jwks   manage registered clients
  users    add|set-password|list|disable|enable|unlock         manage user accounts
  keys     list|introduce|promote|remove|encrypt                 manage signing keys
  registration token [--kinds K] [--scopes S] [--uses N] [--expires-in SECONDS]
                                                                 issue an RFC 7591 initial access token bound to a policy
  demo     assertion [--aud URL]                                 (development) sign a client assertion for demo-backend
  config   check                                                 validate the configuration and print a summary
  audit    verify|export|purge|checkpoint                        the audit trail (hash chain, retention, export)

The CLI reads the same environment variables and AUTHZ_CONFIG file as the server.
Run "smart-authz clients help", "smart-authz users help" or "smart-authz keys help" for details.`;

const KEYS_USAGE = `Usage: smart-authz keys <command>
  list                      show every key with its status (next, current, retired)
  introduce RSA|EC          add a next key: published, not yet signing
  promote KID               make a next key current; the previous current key is retired
  remove KID [--force]      delete a retired key (refused until the longest token lifetime has passed)
  encrypt                   (re-)encrypt stored keys with AUTHZ_KEY_ENCRYPTION_SECRET;
                            the old secret, if any, comes from AUTHZ_OLD_KEY_ENCRYPTION_SECRET

Rotation: introduce, wait for every instance to reload (30 s), promote, wait for the longest
token lifetime, remove.`;

type AuditedRuntime = Runtime & { cliAudit: CliAudit };

/** The runtime of one command, with an audit trail: changes made here are recorded like the server's. */
async function withRuntime<T>(fn: (rt: AuditedRuntime) => Promise<T>, opts: { keySecret?: string | undefined } = {}): Promise<T> {
  const config = { ...loadConfig(), devRedis: false };
  const rt = await openRuntime(
    opts.keySecret === undefined ? config : { ...config, keyEncryptionSecret: opts.keySecret },
    createLogger('silent'),
  );
  const trail = createAuditTrail({
    config: rt.config,
    redis: rt.redis,
    keyspace: rt.keyspace,
    logger: rt.logger,
    intervalCheckpoints: false,
  });
  try {
    return await fn({ ...rt, cliAudit: { audit: trail, issuer: rt.config.issuer, operator: cliOperator() } });
  } finally {
    await trail.close();
    await rt.close();
  }
}

async function providerFor(rt: AuditedRuntime) {
  // On a store no server has started on yet, the keys are made here as the first start would
  // make them: oidc-provider cannot validate client metadata without a key set.
  const { jwks } = await rt.keystore.ensureKeys();
  return buildApp({
    ...rt,
    metrics: new Metrics({ defaultMetrics: false }),
    jwks,
    cookieKeys: ['cli-does-not-set-cookies-0000000000'],
    audit: rt.cliAudit.audit,
  });
}

async function clients(args: string[], out: Out): Promise<void> {
  const [command, ...rest] = args;
  const commands = {
    add: addClient,
    list: listClients,
    show: showClient,
    update: updateClient,
    remove: removeClient,
    'rotate-secret': rotateClientSecret,
    'set-jwks': setClientJwks,
  };
  const run = commands[command as keyof typeof commands];
  if (!run) {
    out(CLIENTS_USAGE);
    if (command && command !== 'help') process.exitCode = 2;
    return;
  }
  await withRuntime(async (rt) =>
    run(auditedRegistry(clientRegistryFor(await providerFor(rt), rt.redis, rt.keyspace), rt.cliAudit), rest, out),
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function users(args: string[], out: Out): Promise<void> {
  const [command, ...rest] = args;
  const run = command ? USER_COMMANDS[command] : undefined;
  if (!run) {
    out(USERS_USAGE);
    if (command && command !== 'help') process.exitCode = 2;
    return;
  }
  await withRuntime(async (rt) => {
    const lockout = new LoginLockout(rt.redis, rt.keyspace, rt.config.login);
    const store = auditedUserStore(createUserStore(rt.config, rt.redis, rt.keyspace, lockout), rt.cliAudit);
    await run({ users: store, lockout: auditedLockState(lockout, rt.cliAudit), readStdin }, rest, out);
  });
}

function longestSignedLifetime(rt: Runtime): number {
  const t = rt.config.ttl;
  return Math.max(t.idToken, t.accessToken, t.backendAccessToken) + 60;
}

async function keys(args: string[], out: Out): Promise<void> {
  // Key ids are base64url thumbprints and may start with "-", so only the known flag is an option.
  const values = { force: args.includes('--force') };
  const positionals = args.filter((a) => a !== '--force' && a !== '--');
  const [command, arg] = positionals;
  switch (command) {
    case 'list':
      return withRuntime(async (rt) => {
        const { version, keys } = await rt.keystore.list();
        out(`key set version ${version}`);
        for (const k of keys)
          out(
            `${k.kid}  ${k.kty.padEnd(3)}  ${k.status.padEnd(7)}  created ${k.createdAt}${k.retiredAt ? `  retired ${k.retiredAt}` : ''}${k.encrypted ? '  encrypted' : ''}`,
          );
      });
    case 'introduce': {
      if (arg !== 'RSA' && arg !== 'EC') throw new CliUsageError('keys introduce needs RSA or EC');
      return withRuntime(async (rt) => {
        const k = await rt.keystore.introduce(arg);
        await recordKeyChange(rt.cliAudit, 'introduced', { kid: k.kid, kty: k.kty });
        out(`introduced ${k.kid} (${k.kty}, next): published now, signs after "keys promote ${k.kid}"`);
      });
    }
    case 'promote':
      if (!arg) throw new CliUsageError('keys promote needs a kid');
      return withRuntime(async (rt) => {
        const { promoted, retired } = await rt.keystore.promote(arg);
        await recordKeyChange(rt.cliAudit, 'promoted', { kid: promoted.kid, kty: promoted.kty, retired: retired.map((k) => k.kid) });
        out(`${promoted.kid} is current; retired: ${retired.map((k) => k.kid).join(', ') || 'none'}`);
      });
    case 'remove':
      if (!arg) throw new CliUsageError('keys remove needs a kid');
      return withRuntime(async (rt) => {
        const { keys } = await rt.keystore.list();
        const key = keys.find((k) => k.kid === arg);
        const wait = longestSignedLifetime(rt);
        if (key?.retiredAt && !values.force && Date.now() - Date.parse(key.retiredAt) < wait * 1000) {
          throw new CliUsageError(
            `${arg} was retired less than ${wait} s ago; tokens it signed may still be in use (use --force to remove anyway)`,
          );
        }
        const removed = await rt.keystore.remove(arg);
        await recordKeyChange(rt.cliAudit, 'removed', { kid: removed.kid, kty: removed.kty });
        out(`removed ${removed.kid}`);
      });
    case 'encrypt': {
      const target = process.env.AUTHZ_KEY_ENCRYPTION_SECRET;
      if (!target) throw new CliUsageError('set AUTHZ_KEY_ENCRYPTION_SECRET to the new secret');
      return withRuntime(
        async (rt) => {
          const n = await rt.keystore.reencrypt(target);
          await recordKeyChange(rt.cliAudit, 'reencrypted', { count: n });
          out(`${n} keys now encrypted with the configured secret; restart instances with AUTHZ_KEY_ENCRYPTION_SECRET set`);
        },
        { keySecret: process.env.AUTHZ_OLD_KEY_ENCRYPTION_SECRET ?? '' },
      );
    }
    default:
      out(KEYS_USAGE);
      if (command && command !== 'help') process.exitCode = 2;
  }
}

const REGISTRATION_USAGE = `Usage: smart-authz registration token [options]
  --kinds LIST        client kinds it may register (default: ${DEFAULT_REGISTRATION_KINDS.join(',')});
                      also backend_service, resource_server, ehr_launcher when named
  --scopes LIST       the ceiling of smart_scopes (default: '${DEFAULT_REGISTRATION_SCOPES.join(' ')}')
  --uses N            registrations it allows (default 1, at most ${MAX_REGISTRATION_USES})
  --expires-in SECS   lifetime (default 86400, at most ${MAX_REGISTRATION_TOKEN_SECONDS})
Administrative scopes (scim, introspect, system/AuditEvent.*, system/Consent.*, system/ writes) are
never registrable dynamically; grant them with "smart-authz clients".`;

/** The policy asked for on the command line, with the defaults filled in. */
function registrationTokenPolicy(args: string[]): RegistrationTokenPolicy {
  const { positionals, values } = parseCommandArgs(
    args,
    {
      kinds: { type: 'string' },
      scopes: { type: 'string' },
      uses: { type: 'string', default: '1' },
      'expires-in': { type: 'string', default: '86400' },
    },
    1,
  );
  if (positionals[0] !== 'token') throw new CliUsageError(REGISTRATION_USAGE);
  const wholeNumber = (flag: string, text: string, max: number): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > max)
      throw new CliUsageError(`${flag} must be a positive number${flag === '--expires-in' ? ' of seconds' : ''} (at most ${max})`);
    return n;
  };
  const kinds = values.kinds === undefined ? [...DEFAULT_REGISTRATION_KINDS] : splitList(values.kinds);
  const scopes = values.scopes === undefined ? [...DEFAULT_REGISTRATION_SCOPES] : splitList(values.scopes);
  const policy = {
    kinds: kinds as SmartClientKind[],
    scopes,
    uses: wholeNumber('--uses', values.uses, MAX_REGISTRATION_USES),
    expiresIn: wholeNumber('--expires-in', values['expires-in'], MAX_REGISTRATION_TOKEN_SECONDS),
  };
  const problem = ceilingProblem(policy);
  if (problem) throw new CliUsageError(`registration token: ${problem}`);
  if (kinds.includes('backend_service') && !scopes.some((s) => s.startsWith('system/'))) {
    throw new CliUsageError("registration token: --kinds backend_service needs system/ read scopes in --scopes (e.g. 'system/*.rs')");
  }
  return policy;
}

async function registration(args: string[], out: Out): Promise<void> {
  if (args[0] === 'help' || args[0] === undefined) {
    out(REGISTRATION_USAGE);
    if (args[0] === undefined) process.exitCode = 2;
    return;
  }
  const policy = registrationTokenPolicy(args);
  await withRuntime(async (rt) => {
    const provider = await providerFor(rt);
    const { token, expiresAt } = await new RegistrationTokens(rt.redis, rt.keyspace).issue(provider, policy);
    out(token);
    out(`initial access token for ${rt.config.issuer}${ROUTES.registration}; send it as "Authorization: Bearer <token>"`);
    out(`  kinds:      ${policy.kinds.join(', ')}`);
    out(`  scopes:     ${policy.scopes.join(' ')}`);
    out(`  uses:       ${policy.uses} registration${policy.uses === 1 ? '' : 's'}`);
    out(`  expires:    ${new Date(expiresAt * 1000).toISOString()} (in ${policy.expiresIn} s)`);
    out('  never:      scim, introspect, system/AuditEvent.*, system/Consent.*, system/ writes (operator-only)');
  });
}

async function demo(args: string[], out: Out): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { aud: { type: 'string' } } });
  if (positionals[0] !== 'assertion') throw new CliUsageError('usage: demo assertion [--aud URL]');
  await withRuntime(async (rt) => {
    if (rt.config.mode !== 'development') throw new CliUsageError('demo commands exist only in development mode');
    const jwk = await demoBackendKey(rt.redis, rt.keyspace);
    const key = await importJWK(jwk, 'ES384');
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: jwk.kid! })
      .setIssuer(DEMO.backendClientId)
      .setSubject(DEMO.backendClientId)
      .setAudience(values.aud ?? `${rt.config.issuer}${ROUTES.token}`)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
    out(assertion);
  });
}

async function config(args: string[], out: Out): Promise<void> {
  if (args[0] !== 'check') throw new CliUsageError('usage: config check');
  const c = loadConfig();
  out(`mode ${c.mode}; issuer ${c.issuer}; port ${c.port}; proxy ${c.proxy}; tls ${c.tls ? 'on' : 'off'}`);
  out(`FHIR servers: ${c.fhirServers.map((s) => (s.tenant ? `${s.tenant}=${s.base}` : s.base)).join(', ')}`);
  out(
    `cookie keys: ${c.cookieKeys ? `${c.cookieKeys.length} configured` : 'generated (development)'}; key encryption: ${c.keyEncryptionSecret ? 'on' : 'off'}`,
  );
  out('configuration is valid');
}

export async function runCli(argv: string[], out: Out = (line) => console.log(line)): Promise<void> {
  const [group, ...rest] = argv;
  const groups: Record<string, (a: string[], o: Out) => Promise<void>> = { clients, users, keys, registration, demo, config, audit };
  const run = group ? groups[group] : undefined;
  if (!run) {
    out(USAGE);
    if (group && group !== 'help' && group !== '--help') process.exitCode = 2;
    return;
  }
  await run(rest, out);
}

/** Entry point for bin/smart-authz.js: one clear line on stderr for anything an operator can fix. */
export function cliMain(argv: string[]): void {
  runCli(argv).catch((err: unknown) => {
    const known = [ConfigError, StartupError, KeyStoreError, ClientRegistryError, CliUsageError, ScimError, RegistrationTokenError].some(
      (E) => err instanceof E,
    );
    const e = err as { error_description?: string; message?: string };
    console.error(known ? e.message : `error: ${e.error_description ?? e.message ?? String(err)}`);
    process.exit(err instanceof CliUsageError ? 2 : 1);
  });
}
