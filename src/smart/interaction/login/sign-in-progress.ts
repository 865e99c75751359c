import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import type { Level } from '../../../domain/authn/assurance.js';

/** Why a sign-in needs a second factor; the page says which, the audit trail records it. */
export type SecondFactorReason = 'policy' | 'enrolled' | 'acr_values' | 'break_the_glass';

/**
 * A sign-in whose first factor is done (a password, an upstream provider, or the session being
 * stepped up) and whose second is not yet. Nothing here signs anyone in: only a verified second
 * factor turns it into oidc-provider's login result (second-factor/complete-sign-in.ts).
 */
export interface SignInProgress {
  accountId: string;
  /** The first factor's methods (RFC 8176), e.g. `pwd`, or what the upstream provider said. */
  amr: string[];
  /** The upstream provider's `acr`, kept for the audit trail. */
  upstreamAcr?: string;
  /** When the first factor was done (epoch seconds). */
  authTime: number;
  /** The upstream provider, when the first factor was a federated sign-in. */
  via?: { provider: string };
  /** The assurance the second factor must reach: 2, or 3 for phishing-resistant (WebAuthn only). */
  level: Level;
  reasons: SecondFactorReason[];
  /** The session is being stepped up, not started: the person is already signed in as accountId. */
  stepUp?: boolean;
  /** A factor enrolled in this sign-in already counts as verified; the person is shown their recovery codes first. */
  verified?: { amr: string[]; kind: string };
}

/**
 * Sign-ins in progress, one per interaction, in Redis for as long as the interaction lives. The
 * record is deleted when the sign-in completes, so a verified factor is used once.
 */
export class SignInProgressStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly ttlSeconds: number,
  ) {}

  async get(interactionUid: string): Promise<SignInProgress | undefined> {
    const raw = await this.redis.get(this.keyspace.signInProgress(interactionUid));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as SignInProgress;
    } catch {
      return undefined;
    }
  }

  async save(interactionUid: string, progress: SignInProgress): Promise<void> {
    await this.redis.set(this.keyspace.signInProgress(interactionUid), JSON.stringify(progress), 'EX', this.ttlSeconds);
  }

  /** Ends the sign-in in progress and returns it, to one caller only (two racing posts complete it once). */
  async take(interactionUid: string): Promise<SignInProgress | undefined> {
    const raw = await this.redis.getdel(this.keyspace.signInProgress(interactionUid));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as SignInProgress;
    } catch {
      return undefined;
    }
  }
}
