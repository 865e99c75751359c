import type { ClientHcsFacts } from './decision.js';

/** Client metadata the HCS decision reads (registered with the client; see oauth/clients/smart-metadata.ts). */
export interface ClientHcsMetadata {
  clientId: string;
  purposes_of_use?: unknown;
  default_purposes_of_use?: unknown;
  test_account?: unknown;
}

function codes(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}

export function clientHcsFacts(client: ClientHcsMetadata): ClientHcsFacts {
  const purposes = codes(client.purposes_of_use);
  const defaults = codes(client.default_purposes_of_use);
  return {
    clientId: client.clientId,
    ...(purposes ? { purposes } : {}),
    ...(defaults ? { defaults } : {}),
    testAccount: client.test_account === true,
  };
}
