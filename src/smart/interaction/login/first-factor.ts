import type { Context } from 'koa';
import type { Interaction } from '../pages/interaction-http.js';

/**
 * What a first factor proved: who signed in, how, and when. A password check and a federated
 * sign-in both end here; what happens next (a second factor, or the sign-in completes) is
 * decided in one place for both (second-factor/sign-in-completion.ts).
 */
export interface FirstFactor {
  accountId: string;
  /** RFC 8176 methods: `pwd` for a password; for a federated sign-in, the upstream provider's `amr`. */
  amr: string[];
  /** The upstream provider's `acr`. */
  acr?: string;
  /** When the person authenticated (epoch seconds): now for a password, the upstream's `auth_time`. */
  authTime?: number;
  /** The upstream provider's id, when federated. */
  via?: { provider: string };
  /** The upstream provider did multi-factor authentication, and its configuration trusts that. */
  upstreamMfa?: boolean;
}

export type AfterFirstFactor = (ctx: Context, interaction: Interaction, factor: FirstFactor) => Promise<void>;
