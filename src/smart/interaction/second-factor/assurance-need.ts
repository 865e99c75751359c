import type { Coding } from '../../../domain/fhir/types.js';
import { isEmergencyPurpose } from '../../../domain/hcs/vocabulary.js';
import { acrOfLevel, levelOfAcr, levelOfAmr, requestedLevel, type AcrValue, type Level } from '../../../domain/authn/assurance.js';
import type { ScimUser } from '../../../records/directory/model.js';
import { purposesOf } from '../facts/authorization-facts.js';
import type { SecondFactorReason } from '../login/sign-in-progress.js';
import { needsSecondFactor, type MfaPolicy } from './mfa-policy.js';

/** What one authorization asks of the sign-in: a level, and why (for the page and the audit trail). */
export interface AssuranceNeed {
  level: Level;
  reasons: SecondFactorReason[];
}

/** `claims={"id_token":{"acr":{"essential":true,"values":[…]}}}` (OIDC Core §5.5.1.1): the acr values it insists on. */
function essentialAcrValues(claims: unknown): string[] {
  if (typeof claims !== 'string') return [];
  try {
    const acr = (JSON.parse(claims) as { id_token?: { acr?: { essential?: unknown; value?: unknown; values?: unknown } } }).id_token?.acr;
    if (acr?.essential !== true) return [];
    if (typeof acr.value === 'string') return [acr.value];
    return Array.isArray(acr.values) ? acr.values.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

/** Every acr value the request names, from `acr_values` and from an essential `claims` request. */
function requestedAcrValues(params: Record<string, unknown>): string[] {
  const voluntary = typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
  return [...voluntary, ...essentialAcrValues(params.claims)];
}

/**
 * The second factor this authorization needs, or undefined when one factor is enough: the policy
 * names the user, the user has set one up (a person who enrolled a factor expects to be asked for
 * it, or it protects nothing), the app asks for a level above one factor, or the request breaks
 * the glass (which also wants the factor fresh: see isMet).
 */
export function assuranceNeed(input: {
  policy: MfaPolicy;
  user: ScimUser;
  roles: readonly Coding[];
  /** The user has a second factor set up. */
  enrolled: boolean;
  params: Record<string, unknown>;
}): AssuranceNeed | undefined {
  const reasons: SecondFactorReason[] = [];
  let level: Level = 1;
  if (needsSecondFactor(input.policy, input.user, input.roles)) {
    reasons.push('policy');
    level = 2;
  } else if (input.enrolled) {
    reasons.push('enrolled');
    level = 2;
  }
  const asked = requestedLevel(requestedAcrValues(input.params).join(' '));
  if (asked && asked > 1) {
    reasons.push('acr_values');
    level = Math.max(level, asked) as Level;
  }
  if (purposesOf(input.params.purpose_of_use).some(isEmergencyPurpose)) {
    reasons.push('break_the_glass');
    level = Math.max(level, 2) as Level;
  }
  return reasons.length ? { level, reasons } : undefined;
}

/**
 * Whether a sign-in (its methods, and when it happened in epoch seconds) meets the need. Breaking
 * the glass wants the sign-in that included the second factor to be at most `freshSeconds` old.
 */
export function isMet(
  need: AssuranceNeed,
  signIn: { amr?: readonly string[]; authTime?: number },
  now: number,
  freshSeconds: number,
): boolean {
  if (levelOfAmr(signIn.amr) < need.level) return false;
  if (need.reasons.includes('break_the_glass')) {
    if (signIn.authTime === undefined || now - signIn.authTime > freshSeconds) return false;
  }
  return true;
}

/**
 * The `acr` an id_token states for a sign-in of this level: of the values the request asked for,
 * the strongest one the sign-in meets (so an app that asked for AAL2 and got a passkey reads the
 * AAL2 it asked for, and an essential request is answered with its own value); otherwise the
 * sign-in's own level.
 */
export function acrFor(level: Level, params: Record<string, unknown>): AcrValue {
  let best: AcrValue | undefined;
  for (const value of requestedAcrValues(params)) {
    const asked = levelOfAcr(value);
    if (asked === undefined || asked > level) continue;
    if (!best || asked > levelOfAcr(best)!) best = value as AcrValue;
  }
  return best ?? acrOfLevel(level);
}
