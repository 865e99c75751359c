import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import type { FhirContextItem } from '../../domain/fhir/types.js';
import type { HcsGrant } from '../../domain/hcs/decision.js';

/**
 * The launch context of one grant. oidc-provider's Grant keeps a fixed set of fields, so the
 * context lives beside it, keyed by grant id: every token exchange and refresh of that grant
 * answers with the same context (SMART: context is fixed for the life of the grant).
 */
export interface GrantContext {
  patient?: string;
  encounter?: string;
  fhirContext?: FhirContextItem[];
  need_patient_banner?: boolean;
  smart_style_url?: string;
  intent?: string;
  tenant?: string;
  /** Absolute FHIR URL of the user, as in the id_token. */
  fhirUser?: string;
  /** The grant's refresh token ends with the user's session. */
  onlineAccess?: boolean;
  /**
   * The id of the patient's Consent that authorizes the grant's patient/ scopes (consent/). Not a
   * token-response field; access tokens name it as `consent` (token-context.ts).
   */
  consentId?: string;
  /**
   * The HCS decision (purposes of use, subject, ceiling, obligations) its access tokens carry as
   * `extensions` (domain/hcs/claims.ts). Fixed for the grant's life, like the launch context.
   */
  hcs?: HcsGrant;
  /** Emergency access: the reason the clinician typed and when. Never put into tokens. */
  breakTheGlass?: { reason: string; at: string };
}

export class GrantContextStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {}

  async save(grantId: string, ctx: GrantContext, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.keyspace.grantContext(grantId), JSON.stringify(ctx), 'EX', Math.max(1, Math.ceil(ttlSeconds)));
  }

  async get(grantId: string): Promise<GrantContext | undefined> {
    const raw = await this.redis.get(this.keyspace.grantContext(grantId));
    if (raw === null) return undefined;
    const parsed = JSON.parse(raw) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as GrantContext) : undefined;
  }

  async delete(grantId: string): Promise<void> {
    await this.redis.del(this.keyspace.grantContext(grantId));
  }
}
