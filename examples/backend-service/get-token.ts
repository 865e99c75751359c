import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { getSystemToken } from './backend-client.js';

/**
 * `npm run example:backend`: gets a `system/` token as a backend service and searches the example
 * FHIR server with it. With BACKEND_CLIENT_ID and BACKEND_KEY_FILE (a private JWK) it acts as your
 * own registered client; without them it is the seeded `demo-backend`, whose private key
 * development mode keeps in Redis (read the same way `smart-authz demo assertion` does).
 */
const issuer = process.env.AUTHZ_ISSUER ?? 'http://localhost:3000';
const fhirBase = process.env.FHIR_BASE ?? 'http://localhost:8080/fhir';
const clientId = process.env.BACKEND_CLIENT_ID ?? 'demo-backend';
const scope = process.env.BACKEND_SCOPE ?? 'system/Patient.rs';

async function privateKey(): Promise<JWK> {
  if (process.env.BACKEND_KEY_FILE) return JSON.parse(readFileSync(process.env.BACKEND_KEY_FILE, 'utf8')) as JWK;
  if (clientId !== 'demo-backend') throw new Error('set BACKEND_KEY_FILE to the private JWK of your client');
  const { loadConfig } = await import('../../src/platform/config/load.js');
  const { openRuntime } = await import('../../src/app/runtime.js');
  const { createLogger } = await import('../../src/platform/ops/logger.js');
  const { demoBackendKey } = await import('../../src/app/demo-seed.js');
  const config = loadConfig();
  if (config.mode !== 'development') throw new Error('the demo key exists only in development mode; set BACKEND_KEY_FILE');
  const rt = await openRuntime({ ...config, devRedis: false }, createLogger('silent'));
  try {
    return await demoBackendKey(rt.redis, rt.keyspace);
  } finally {
    await rt.close();
  }
}

try {
  const token = await getSystemToken({ issuer, clientId, privateJwk: await privateKey(), scope });
  console.log(`token for ${clientId}: scope "${token.scope}", expires in ${token.expires_in} s`);
  const res = await fetch(`${fhirBase}/Patient?_count=10`, {
    headers: { Authorization: `Bearer ${token.access_token}`, Accept: 'application/fhir+json' },
  });
  const bundle = (await res.json()) as {
    total?: number;
    entry?: { resource: { id: string; name?: { given?: string[]; family?: string }[] } }[];
  };
  console.log(`GET ${fhirBase}/Patient → ${res.status}, ${bundle.total ?? 0} patient(s)`);
  for (const e of bundle.entry ?? [])
    console.log(`  Patient/${e.resource.id}: ${[...(e.resource.name?.[0]?.given ?? []), e.resource.name?.[0]?.family].join(' ')}`);
} catch (err) {
  console.error(`example failed: ${(err as Error).message}`);
  process.exitCode = 1;
}
