import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import type { Adapter, AdapterPayload, Configuration } from 'oidc-provider';
import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { Keyspace } from '../../../src/platform/redis/keyspace.js';
import {
  SMART_CLIENT_PROPERTIES,
  createClientMetadataValidator,
  type ClientMetadataPolicy,
} from '../../../src/oauth/clients/smart-metadata.js';
import { wrapClientAdapter } from '../../../src/oauth/clients/client-adapter.js';
import { ClientRegistry } from '../../../src/oauth/clients/registry.js';

export const FHIR_BASE = 'https://fhir.example.org/r4';
export const OTHER_FHIR_BASE = 'https://fhir2.example.org/r4';

export const DEV_POLICY: ClientMetadataPolicy = {
  production: false,
  clientAuthSigningAlgs: ['RS384', 'ES384'],
  fhirBases: [FHIR_BASE, OTHER_FHIR_BASE],
};

/**
 * Test-only storage for any model: JSON under the model key, on the real Redis. The production
 * adapter is written elsewhere; the registry only needs the Adapter contract.
 */
export class JsonRedisAdapter implements Adapter {
  constructor(
    private readonly name: string,
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {}

  key(id: string): string {
    return this.keyspace.model(this.name, id);
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const json = JSON.stringify(payload);
    if (expiresIn) await this.redis.set(this.key(id), json, 'EX', expiresIn);
    else await this.redis.set(this.key(id), json);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const json = await this.redis.get(this.key(id));
    return json ? (JSON.parse(json) as AdapterPayload) : undefined;
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }

  async consume(id: string): Promise<void> {
    const found = await this.find(id);
    if (found) await this.redis.set(this.key(id), JSON.stringify({ ...found, consumed: Math.floor(Date.now() / 1000) }), 'KEEPTTL');
  }

  async destroy(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }

  async revokeByGrantId(): Promise<void> {}
}

export interface Harness {
  redis: RedisClient;
  keyspace: Keyspace;
  provider: Provider;
  registry: ClientRegistry;
  close(): Promise<void>;
}

/** The provider's own signing key (it signs nothing here; this just avoids the dev-keys warning). */
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: 'test-signing',
  alg: 'RS256',
  use: 'sig',
};

export function providerConfig(
  redis: RedisClient,
  keyspace: Keyspace,
  policy: ClientMetadataPolicy = DEV_POLICY,
  extra: Partial<Configuration> = {},
): Configuration {
  return {
    jwks: { keys: [signingKey] },
    adapter: (name: string) => {
      const base = new JsonRedisAdapter(name, redis, keyspace);
      return name === 'Client' ? wrapClientAdapter(base) : base;
    },
    extraClientMetadata: { properties: [...SMART_CLIENT_PROPERTIES], validator: createClientMetadataValidator(policy) },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    ...extra,
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      ...extra.features,
    } as Configuration['features'],
  };
}

export async function createHarness(policy: ClientMetadataPolicy = DEV_POLICY): Promise<Harness> {
  const redis = createRedis({ url: process.env.REDIS_URL, prefix: '' });
  await connectRedis(redis);
  const keyspace = new Keyspace(`test-${randomUUID()}:`);
  const provider = new Provider('http://localhost:3000', providerConfig(redis, keyspace, policy));
  const registry = new ClientRegistry({
    adapter: wrapClientAdapter(new JsonRedisAdapter('Client', redis, keyspace)),
    redis,
    keyspace,
    validate: (m) => provider.Client.validate(m as never),
  });
  return {
    redis,
    keyspace,
    provider,
    registry,
    async close() {
      await redis.quit();
    },
  };
}

/** Runs oidc-provider's validation and returns the error description, or undefined when valid. */
export async function rejection(provider: Provider, metadata: Record<string, unknown>): Promise<string | undefined> {
  try {
    await provider.Client.validate(metadata as never);
    return undefined;
  } catch (err) {
    const e = err as { error_description?: string };
    if (typeof e.error_description !== 'string') throw err;
    return e.error_description;
  }
}

export type PublicJwk = Record<string, unknown>;

export function rsaKeyPair(kid: string, modulusLength = 2048): { publicJwk: PublicJwk; privateJwk: PublicJwk } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength });
  return {
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS384', use: 'sig' },
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS384', use: 'sig' },
  };
}

export function ecPublicJwk(kid: string, namedCurve: 'P-256' | 'P-384' = 'P-384'): PublicJwk {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve });
  return { ...publicKey.export({ format: 'jwk' }), kid };
}

/** Minimal definitions of each kind, relying on the kind defaults for OAuth metadata. */
export function minimalClients(jwks: { keys: PublicJwk[] }): Record<string, Record<string, unknown>> {
  return {
    public_app: {
      client_id: 'pub',
      smart_client_kind: 'public_app',
      redirect_uris: ['https://app.example.org/callback'],
      smart_scopes: ['openid', 'fhirUser', 'launch', 'patient/*.rs'],
    },
    confidential_symmetric: {
      client_id: 'sym',
      smart_client_kind: 'confidential_symmetric',
      redirect_uris: ['https://sym.example.org/callback'],
      smart_scopes: ['launch/patient', 'patient/Observation.rs'],
    },
    confidential_asymmetric: {
      client_id: 'asym',
      smart_client_kind: 'confidential_asymmetric',
      redirect_uris: ['https://asym.example.org/callback'],
      smart_scopes: ['user/*.cruds'],
      jwks,
    },
    backend_service: {
      client_id: 'bulk',
      smart_client_kind: 'backend_service',
      smart_scopes: ['system/*.rs'],
      jwks_uri: 'https://bulk.example.org/jwks.json',
    },
    resource_server: {
      client_id: 'rs',
      smart_client_kind: 'resource_server',
    },
    ehr_launcher: {
      client_id: 'ehr',
      smart_client_kind: 'ehr_launcher',
      smart_scopes: ['system/Patient.r'],
    },
  };
}
