import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { finish, type Interaction } from '../pages/interaction-http.js';

/**
 * The hand-over from a first factor (a password, a federated sign-in) to the rest of the sign-in.
 * The second-factor step defines these types in login/first-factor.ts; until that is merged this
 * is their copy, with a stand-in that finishes the sign-in at once.
 */

export interface FirstFactor {
  accountId: string;
  /** Upstream `amr` (RFC 8176 has no value for "federated"), or [] when it sent none. */
  amr: string[];
  /** Upstream `acr`. */
  acr?: string;
  /** Upstream `auth_time` (epoch seconds), else now. */
  authTime?: number;
  /** The provider id, when federated. */
  via?: { provider: string };
  /** A multi-factor sign-in upstream this server trusts (trustUpstreamMfa and `amr` has `mfa` or `acr` in mfaAcrValues). */
  upstreamMfa?: boolean;
}

export type AfterFirstFactor = (ctx: Context, interaction: Interaction, factor: FirstFactor) => Promise<void>;

/** Stand-in until the second-factor step is merged: the first factor completes the sign-in. */
export function finishAfterFirstFactor(provider: Provider): AfterFirstFactor {
  return async (ctx, _interaction, factor) => {
    const login = {
      accountId: factor.accountId,
      // An empty `amr` would be put in ID tokens as []; none is said better by leaving it out.
      ...(factor.amr.length ? { amr: factor.amr } : {}),
      ...(factor.acr !== undefined ? { acr: factor.acr } : {}),
      ts: factor.authTime ?? Math.floor(Date.now() / 1000),
      remember: false,
    };
    await finish(ctx, provider, { login }, { merge: false });
  };
}
