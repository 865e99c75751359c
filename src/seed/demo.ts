import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ClientRegistry } from '../clients/registry.js';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';

/**
 * Development-only demo data, documented in the README's quick start. The demo secrets are
 * public knowledge on purpose; production mode never seeds (config forces demoData off).
 */
export const DEMO = {
  backendClientId: 'demo-backend',
  resourceServerId: 'demo-fhir-server',
  resourceServerSecret: 'demo-fhir-server-secret',
  ehrLauncherId: 'demo-ehr',
  ehrLauncherSecret: 'demo-ehr-secret',
  appClientId: 'demo-app',
} as const;

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

export async function seedDemoData(deps: { config: Config; registry: ClientRegistry; redis: RedisClient; keyspace: Keyspace; logger: Logger }): Promise<void> {
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
      smart_scopes: ['system/*.rs'],
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
  logger.info({ clients: results.map((r) => `${r.client.client_id as string}:${r.status}`) }, 'demo data seeded (development mode)');
}
