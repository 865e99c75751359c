/*
 * The system under fuzz: the real app on the suite's real Redis, in a Redis database of its own
 * (so a snapshot of "everything this app stores" is one cheap server-side scan), seeded with the
 * clients, user, interaction and tokens the generators aim at, so bad input reaches the deep code
 * behind authentication instead of stopping at the first 401.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import type supertest from 'supertest';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { backendKey, registerBackend, signAssertion, tokenRequest, type BackendKey } from '../../support/backend-client.js';
import { createPerson, registerEhrLauncher, registerResourceServer, registerSmartApp } from '../../support/fixtures.js';
import { ownApiAudience } from '../../../src/oauth/provider/own-api.js';
import { RegistrationTokens, MAX_REGISTRATION_USES } from '../../../src/oauth/clients/registration-tokens.js';
import { DEFAULT_REGISTRATION_KINDS, DEFAULT_REGISTRATION_SCOPES } from '../../../src/oauth/clients/registration-policy.js';

export const ISSUER = 'http://localhost:3000';
export const FHIR_BASE = 'http://localhost:8080/fhir';
export const TOKEN_URL = `${ISSUER}/token`;
export const REDIRECT_URI = 'https://app.example.org/cb';

export const CLIENTS = {
  publicApp: 'fuzz-app',
  confidential: 'fuzz-conf',
  confidentialSecret: 'fuzz-conf-secret-0123456789',
  backend: 'fuzz-backend',
  admin: 'fuzz-admin',
  resourceServer: 'fuzz-rs',
  resourceServerSecret: 'fuzz-rs-secret-0123456789',
  launcher: 'fuzz-ehr',
  launcherSecret: 'fuzz-ehr-secret-0123456789',
} as const;

export const USER = { userName: 'fuzz.user', password: 'a long enough test password' };

export interface Snapshot {
  at: number;
  /** key → content digest and milliseconds left to live (-1: no expiry). */
  keys: Map<string, { digest: string; pttl: number }>;
}

export interface FuzzWorld {
  t: TestApp;
  key: BackendKey;
  userId: string;
  /** Tokens with the deep scopes: scim; system/Consent and system/AuditEvent (FHIR audience); a patient app's. */
  tokens: { scim: string; fhirAdmin: string; patientApp: string };
  initialAccessToken: string;
  /** Error-level log lines (server errors with their stack), to explain a 5xx the properties catch. */
  errors: string[];
  /** A fresh client assertion for the admin backend client. */
  assertion(clientId?: string): Promise<string>;
  /** Fingerprint of every key this app stores (see `SNAPSHOT_SCRIPT`), taken at `at`. */
  snapshot(): Promise<Snapshot>;
  close(): Promise<void>;
}

/**
 * Keys whose change on a refused request is expected, with why:
 *  - `{audit}:`      refusals are audit events by design (token, authorization, login failures…);
 *  - `ratelimit:`    counting attempts, refused ones included, is what a limiter/lock-out is for;
 *  - `once:`         a client assertion's jti is spent as soon as its signature checks, before a
 *                    later rule refuses the request, so it cannot be replayed;
 *  - `oidc:Session:`, `oidc:sessionUid:`, `oidc:Interaction:` are browser state: oidc-provider saves
 *    the (anonymous) session of every authorization-endpoint visit and the interaction of a shown
 *    page; neither grants anything, and both expire.
 * Everything else (clients, users, groups, grants, tokens, consents, launches, keys, …) must be
 * byte-identical after a refusal.
 */
export const VOLATILE = ['{audit}:', 'ratelimit:', 'once:', 'oidc:Session:', 'oidc:sessionUid:', 'oidc:Interaction:'];

/*
 * One pass over the database: key → SHA-1 of its DUMP (type and content) and its PTTL, skipping
 * the families above. Server-side so a snapshot costs one round trip whatever the audit trail's size.
 */
const SNAPSHOT_SCRIPT = `
local out = {}
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = r[1]
  for _, key in ipairs(r[2]) do
    local rest = string.sub(key, #ARGV[1] + 1)
    local skip = string.sub(key, 1, #ARGV[1]) ~= ARGV[1]
    for i = 2, #ARGV do
      if not skip and string.sub(rest, 1, #ARGV[i]) == ARGV[i] then skip = true end
    end
    if not skip then
      local dump = redis.call('DUMP', key)
      if dump then
        out[#out + 1] = key
        out[#out + 1] = redis.sha1hex(dump)
        out[#out + 1] = redis.call('PTTL', key)
      end
    end
  end
until cursor == '0'
return out
`;

/** A database number per fuzz file (jest runs files in parallel workers on the one suite Redis). */
function redisUrlWithDb(db: number): string {
  const url = new URL(process.env.REDIS_URL!);
  url.pathname = `/${db}`;
  return url.toString();
}

export async function createFuzzWorld(db: number, env: Record<string, string> = {}): Promise<FuzzWorld> {
  const errors: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      errors.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'error' }, sink);
  const fresh = await createTestApp(
    {
      // X-Forwarded-* are then read, so the fuzzed ones reach the address and URL logic.
      AUTHZ_PROXY: 'true',
      // Limits high enough that fuzzed logins keep reaching the password check.
      AUTHZ_LOGIN_MAX_PER_IP_PER_MINUTE: '1000000',
      AUTHZ_LOGIN_MAX_FAILURES: '1000000',
      // The seeded tokens must outlive a long run, or their expiry reads as a state change.
      AUTHZ_TTL_BACKEND_ACCESS_TOKEN: '3600',
      AUTHZ_TTL_ACCESS_TOKEN: '7200',
      ...env,
    },
    { redisUrl: redisUrlWithDb(db), logger },
  );

  const key = await backendKey('ES384');
  await registerBackend(fresh, CLIENTS.backend, [key], { smart_scopes: ['system/*.rs'] });
  await registerBackend(fresh, CLIENTS.admin, [key], {
    smart_scopes: ['scim', 'system/Consent.cruds', 'system/AuditEvent.rs', 'system/*.rs'],
  });
  await registerSmartApp(fresh, {
    id: CLIENTS.publicApp,
    name: 'Fuzz app',
    redirectUri: REDIRECT_URI,
    scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs', 'user/*.rs'],
  });
  await registerSmartApp(fresh, {
    id: CLIENTS.confidential,
    name: 'Fuzz confidential',
    secret: CLIENTS.confidentialSecret,
    redirectUri: REDIRECT_URI,
    scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs'],
  });
  await registerResourceServer(
    fresh,
    { id: CLIENTS.resourceServer, secret: CLIENTS.resourceServerSecret },
    { client_name: 'Fuzz FHIR server' },
  );
  await registerEhrLauncher(fresh, { id: CLIENTS.launcher, secret: CLIENTS.launcherSecret });
  const userId = (await createPerson(fresh, { fhirUser: 'Practitioner/fuzz-1' }, { userName: USER.userName, password: USER.password })).id;

  const assertion = (clientId: string = CLIENTS.admin) => signAssertion(key, clientId, TOKEN_URL);
  const token = async (scope: string, resource?: string): Promise<string> => {
    const res = await tokenRequest(fresh, await assertion(), { scope, ...(resource ? { resource } : {}) });
    if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.text}`);
    return res.body.access_token as string;
  };
  const scim = await token('scim');
  // The Consent and AuditEvent APIs take only tokens for this server's own API (oauth/provider/own-api.ts).
  const fhirAdmin = await token('system/Consent.cruds system/AuditEvent.rs', ownApiAudience(fresh.config.issuer));
  const patientApp = await patientAppToken(fresh, userId);
  // Many uses and every app kind, so fuzzed registrations reach the metadata rules instead of
  // stopping at a spent token.
  const { token: initialAccessToken } = await new RegistrationTokens(fresh.redis, fresh.keyspace).issue(fresh.app, {
    kinds: [...DEFAULT_REGISTRATION_KINDS],
    scopes: [...DEFAULT_REGISTRATION_SCOPES],
    uses: MAX_REGISTRATION_USES,
    expiresIn: 3600,
  });

  return {
    t: fresh,
    key,
    userId,
    tokens: { scim, fhirAdmin, patientApp },
    initialAccessToken,
    errors,
    assertion,
    async snapshot() {
      const at = Date.now();
      const flat = (await fresh.redis.eval(SNAPSHOT_SCRIPT, 0, fresh.config.redis.prefix, ...VOLATILE)) as Array<string | number>;
      const keys = new Map<string, { digest: string; pttl: number }>();
      for (let i = 0; i < flat.length; i += 3) keys.set(String(flat[i]), { digest: String(flat[i + 1]), pttl: Number(flat[i + 2]) });
      return { at, keys };
    },
    async close() {
      await fresh.close();
    },
  };
}

/** An access token of the public app for the seeded user, minted straight from a grant (as the code exchange would). */
async function patientAppToken(t: TestApp, accountId: string): Promise<string> {
  const client = (await t.app.Client.find(CLIENTS.publicApp))!;
  const grant = new t.app.Grant({ accountId, clientId: CLIENTS.publicApp });
  grant.addOIDCScope('openid fhirUser launch/patient');
  grant.addResourceScope(FHIR_BASE, 'patient/*.rs');
  const grantId = await grant.save();
  return new t.app.AccessToken({
    accountId,
    client,
    grantId,
    scope: 'openid fhirUser patient/*.rs',
    aud: FHIR_BASE,
    gty: 'authorization_code',
  }).save();
}

export type Response = supertest.Response;
