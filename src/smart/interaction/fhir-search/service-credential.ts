import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type Provider from 'oidc-provider';
import type { ClientRegistry } from '../../../oauth/clients/registry.js';
import type { FhirServer } from '../../../platform/config/schema.js';

/**
 * The access token this server uses itself to search the FHIR server for the patient and
 * encounter pickers. It belongs to an internal backend-service client, registered like any other
 * so it shows up in the client list and in the FHIR server's audit trail, but nobody can
 * authenticate as it: its only key is a public key whose private half was never kept. Its tokens
 * are minted in-process, for exactly the FHIR server being searched (aud), and reused until
 * shortly before they expire.
 */

export const PATIENT_SEARCH_CLIENT_ID = 'smart-authz-patient-search';
/** Patient for the patient picker, Encounter for the encounter picker; nothing else. */
export const PATIENT_SEARCH_SCOPES = ['system/Patient.rs', 'system/Encounter.rs'] as const;

function sameScopes(value: unknown): boolean {
  return Array.isArray(value) && value.length === PATIENT_SEARCH_SCOPES.length && PATIENT_SEARCH_SCOPES.every((s) => value.includes(s));
}

/** Registers the internal client, or repairs it if someone changed its kind or scopes. */
export async function ensurePatientSearchClient(
  registry: Pick<ClientRegistry, 'get' | 'upsert'>,
  clientAuthSigningAlgs: readonly string[],
): Promise<void> {
  const existing = await registry.get(PATIENT_SEARCH_CLIENT_ID);
  if (existing?.smart_client_kind === 'backend_service' && sameScopes(existing.smart_scopes) && existing.jwks !== undefined) return;
  const alg = clientAuthSigningAlgs.includes('ES384') ? 'ES384' : 'RS384';
  const { publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  await registry.upsert({
    client_id: PATIENT_SEARCH_CLIENT_ID,
    client_name: 'Patient and encounter picker (internal to the authorization server)',
    smart_client_kind: 'backend_service',
    jwks: { keys: [{ ...jwk, kid, alg, use: 'sig' }] },
    smart_scopes: [...PATIENT_SEARCH_SCOPES],
  });
}

export interface ServiceCredentialDeps {
  provider: Provider;
  /** Registers the client when it is missing (first use on a fresh store). */
  ensureClient: () => Promise<void>;
  /** Lifetime of the minted tokens, seconds (ttl.backendAccessToken). */
  ttlSeconds: number;
  now?: () => number;
}

interface CachedToken {
  value: string;
  /** Epoch milliseconds after which the token is not used any more. */
  renewAt: number;
}

/** The margin before expiry at which a token is replaced: long enough for one slow FHIR search. */
function renewalMargin(ttlSeconds: number): number {
  return Math.min(60, Math.max(5, Math.floor(ttlSeconds / 5))) * 1000;
}

export class ServiceCredential {
  private readonly tokens = new Map<string, Promise<CachedToken>>();
  private readonly now: () => number;

  constructor(private readonly deps: ServiceCredentialDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** A bearer token for `server`, from the cache while it has some life left. */
  async bearer(server: FhirServer): Promise<string> {
    const cached = this.tokens.get(server.base);
    if (cached) {
      const token = await cached.catch(() => undefined);
      if (token && token.renewAt > this.now()) return token.value;
      if (this.tokens.get(server.base) === cached) this.tokens.delete(server.base);
    }
    const minting = this.mint(server);
    this.tokens.set(server.base, minting);
    minting.catch(() => {
      if (this.tokens.get(server.base) === minting) this.tokens.delete(server.base);
    });
    return (await minting).value;
  }

  /** Forgets the token for `server` (the FHIR server said it is no longer valid). */
  invalidate(server: FhirServer): void {
    this.tokens.delete(server.base);
  }

  private async mint(server: FhirServer): Promise<CachedToken> {
    const { provider } = this.deps;
    let client = await provider.Client.find(PATIENT_SEARCH_CLIENT_ID);
    if (!client) {
      await this.deps.ensureClient();
      client = await provider.Client.find(PATIENT_SEARCH_CLIENT_ID);
      if (!client) throw new Error(`the internal client ${PATIENT_SEARCH_CLIENT_ID} could not be registered`);
    }
    const scope = PATIENT_SEARCH_SCOPES.join(' ');
    const ttl = this.deps.ttlSeconds;
    const token = new provider.ClientCredentials({ client, scope, expiresIn: ttl });
    token.resourceServer = new provider.ResourceServer(server.base, {
      scope,
      audience: server.base,
      accessTokenTTL: ttl,
      accessTokenFormat: server.accessTokenFormat,
      ...(server.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' as const } } } : {}),
    });
    const issuedAt = this.now();
    const value = await token.save();
    return { value, renewAt: issuedAt + ttl * 1000 - renewalMargin(ttl) };
  }
}
