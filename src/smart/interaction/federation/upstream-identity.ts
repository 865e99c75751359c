import type { FederationProvider } from '../../../platform/config/schema.js';

/**
 * Who the upstream said signed in, from its verified ID token: issuer and subject, how they
 * authenticated (`amr`, `acr`, `auth_time`) and the claims linking and just-in-time creation may
 * read. Nothing else of the token is kept.
 */

export interface UpstreamIdentity {
  issuer: string;
  subject: string;
  amr: string[];
  acr?: string;
  /** Upstream `auth_time` (epoch seconds). */
  authTime?: number;
  /** The claims linking and JIT creation read (string and boolean values only). */
  claims: Record<string, string | boolean>;
}

/** Claims a just-in-time user may be made from (jit-user.ts), besides those the link rules name. */
const PROFILE_CLAIMS = ['preferred_username', 'email', 'email_verified', 'name', 'given_name', 'family_name'];

export function upstreamIdentityOf(provider: FederationProvider, token: Record<string, unknown>): UpstreamIdentity {
  const claims: Record<string, string | boolean> = {};
  for (const name of new Set([...PROFILE_CLAIMS, ...provider.link.map((l) => l.claim)])) {
    const value = token[name];
    if ((typeof value === 'string' && value.length <= 1024) || typeof value === 'boolean') claims[name] = value;
  }
  const amr = Array.isArray(token.amr) ? token.amr.filter((v): v is string => typeof v === 'string' && v.length <= 64).slice(0, 16) : [];
  return {
    issuer: String(token.iss),
    subject: String(token.sub),
    amr,
    ...(typeof token.acr === 'string' && token.acr.length <= 256 ? { acr: token.acr } : {}),
    ...(typeof token.auth_time === 'number' && Number.isFinite(token.auth_time) ? { authTime: Math.floor(token.auth_time) } : {}),
    claims,
  };
}

/** A trusted multi-factor sign-in upstream: `amr` has `mfa`, or `acr` is one the provider lists as multi-factor. */
export function upstreamMfa(provider: FederationProvider, identity: UpstreamIdentity): boolean {
  if (!provider.trustUpstreamMfa) return false;
  return identity.amr.includes('mfa') || (identity.acr !== undefined && provider.mfaAcrValues.includes(identity.acr));
}
