import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../platform/config/schema.js';
import type { ClientRegistry } from '../oauth/clients/registry.js';
import type { RedisClient } from '../platform/redis/connection.js';
import type { Keyspace } from '../platform/redis/keyspace.js';
import { CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, SMART_USER_SCHEMA } from '../records/directory/model.js';
import { createUserStore, type UserStore } from '../records/directory/user-store.js';
import { ScimError } from '../domain/scim/errors.js';

/**
 * Development-only demo data, documented in the README's first launch. The demo secrets are
 * public knowledge on purpose; production mode never seeds (config forces demoData off).
 */
export const DEMO = {
  backendClientId: 'demo-backend',
  resourceServerId: 'demo-fhir-server',
  resourceServerSecret: 'demo-fhir-server-secret',
  ehrLauncherId: 'demo-ehr',
  ehrLauncherSecret: 'demo-ehr-secret',
  appClientId: 'demo-app',
  /** Demo sign-ins: user name → password. */
  users: {
    'dr.smith': 'demo-dr-smith-2026',
    'pat.jones': 'demo-pat-jones-2026',
    'care.jones': 'demo-care-jones-2026',
  },
} as const;

const SNOMED = 'http://snomed.info/sct';
const ROLE_CLASS = 'http://terminology.hl7.org/CodeSystem/v3-RoleClass';
const ROLE_CODE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';

/** A clinician, a patient and a caregiver acting for that patient and a child. */
export const DEMO_USERS = [
  {
    userName: 'dr.smith',
    name: { givenName: 'Jane', familyName: 'Smith', formatted: 'Dr Jane Smith' },
    emails: [{ value: 'dr.smith@example.org', primary: true }],
    [SMART_USER_SCHEMA]: {
      fhirUser: 'Practitioner/dr-smith',
      roles: [
        { system: SNOMED, code: '309343006', display: 'Physician' },
        { system: ROLE_CLASS, code: 'PROV', display: 'healthcare provider' },
      ],
      purposesOfUse: ['TREAT'],
      // A valid-looking NPI (check digit correct) and an example OID: demo values, not real ones.
      npi: '1234567893',
      organizationId: 'urn:oid:2.16.840.1.113883.19.5',
      breakTheGlass: true,
    },
    [ENTERPRISE_USER_SCHEMA]: { organization: 'Demo General Hospital' },
  },
  {
    userName: 'pat.jones',
    name: { givenName: 'Pat', familyName: 'Jones' },
    [SMART_USER_SCHEMA]: {
      fhirUser: 'Patient/pat-jones',
      roles: [{ system: ROLE_CLASS, code: 'PAT', display: 'patient' }],
    },
  },
  {
    userName: 'care.jones',
    name: { givenName: 'Chris', familyName: 'Jones' },
    [SMART_USER_SCHEMA]: {
      fhirUser: 'RelatedPerson/care-jones',
      roles: [{ system: ROLE_CODE, code: 'GUARD', display: 'guardian' }],
      proxyPatients: [
        { value: 'Patient/pat-jones', display: 'Pat Jones' },
        { value: 'Patient/sam-jones', display: 'Sam Jones' },
      ],
    },
  },
] as const;

/** Creates the demo users that do not exist yet; existing ones (and their passwords) are left alone. */
export async function seedDemoUsers(users: UserStore): Promise<string[]> {
  const results: string[] = [];
  for (const definition of DEMO_USERS) {
    if (await users.findByUserName(definition.userName)) {
      results.push(`${definition.userName}:unchanged`);
      continue;
    }
    try {
      const schemas = [CORE_USER_SCHEMA, SMART_USER_SCHEMA, ...(ENTERPRISE_USER_SCHEMA in definition ? [ENTERPRISE_USER_SCHEMA] : [])];
      await users.create({ schemas, ...structuredClone(definition), password: DEMO.users[definition.userName] });
      results.push(`${definition.userName}:created`);
    } catch (err) {
      // Another instance seeding at the same moment created it first.
      if (!(err instanceof ScimError && err.status === 409)) throw err;
      results.push(`${definition.userName}:unchanged`);
    }
  }
  return results;
}

/** The demo backend's private key lives in Redis (dev only) so the CLI can sign assertions for curl. */
export async function demoBackendKey(redis: RedisClient, keyspace: Keyspace): Promise<JWK> {
  const slot = keyspace.key('dev', 'demo-backend-private-jwk');
  const existing = await redis.get(slot);
  if (existing) return JSON.parse(existing) as JWK;
  const { privateKey } = await generateKeyPair('ES384', { extractable: true });
  const exported = await exportJWK(privateKey);
  const jwk = { ...exported, kid: await calculateJwkThumbprint(exported), alg: 'ES384', use: 'sig' };
  await redis.set(slot, JSON.stringify(jwk), 'NX');
  return JSON.parse((await redis.get(slot))!) as JWK;
}

function publicPart(jwk: JWK): JWK {
  const { d: _d, ...pub } = jwk;
  return pub;
}

export async function seedDemoData(deps: {
  config: Config;
  registry: ClientRegistry;
  redis: RedisClient;
  keyspace: Keyspace;
  logger: Logger;
  users?: UserStore;
}): Promise<void> {
  const { config, registry, logger } = deps;
  const backendKey = await demoBackendKey(deps.redis, deps.keyspace);
  const fhirBase = config.fhirServers[0]!.base;
  const definitions = [
    {
      client_id: DEMO.backendClientId,
      client_name: 'Demo bulk-export service',
      smart_client_kind: 'backend_service',
      jwks: { keys: [publicPart(backendKey)] },
      token_endpoint_auth_signing_alg: 'ES384',
      smart_scopes: ['system/*.rs', 'scim'],
      purposes_of_use: ['TREAT', 'HOPERAT'],
      default_purposes_of_use: ['HOPERAT'],
    },
    {
      client_id: DEMO.resourceServerId,
      client_name: 'Demo FHIR server (introspection)',
      smart_client_kind: 'resource_server',
      client_secret: DEMO.resourceServerSecret,
      fhir_servers: [fhirBase],
    },
    {
      client_id: DEMO.ehrLauncherId,
      client_name: 'Demo EHR (launch context API)',
      smart_client_kind: 'ehr_launcher',
      client_secret: DEMO.ehrLauncherSecret,
      smart_scopes: ['launch'],
    },
    {
      client_id: DEMO.appClientId,
      client_name: 'Demo SMART app',
      smart_client_kind: 'public_app',
      redirect_uris: ['http://localhost:4000/callback'],
      launch_url: 'http://localhost:4000/launch',
      smart_scopes: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'patient/*.rs', 'user/*.rs'],
    },
  ];
  const results = [];
  for (const definition of definitions) results.push(await registry.upsert(definition, { generateSecret: false }));
  const users = await seedDemoUsers(deps.users ?? createUserStore(config, deps.redis, deps.keyspace));
  logger.info({ clients: results.map((r) => `${r.client.client_id as string}:${r.status}`), users }, 'demo data seeded (development mode)');
}
