import type Provider from 'oidc-provider';
import type { Adapter } from 'oidc-provider';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { ClientRegistry, type ClientMetadata } from './registry.js';

/**
 * A registry that stores through the provider's own `Client` adapter (the configured one, already
 * wrapped so secrets are hashed) and validates with the provider's own rules. `Client.adapter` is a
 * static getter of oidc-provider's Client model that the type definitions do not declare.
 */
export function clientRegistryFor(provider: Provider, redis: RedisClient, keyspace: Keyspace): ClientRegistry {
  const Client = provider.Client as unknown as { adapter: Adapter; validate(m: ClientMetadata): Promise<void> };
  return new ClientRegistry({
    adapter: Client.adapter,
    redis,
    keyspace,
    validate: (metadata) => Client.validate(metadata),
  });
}
