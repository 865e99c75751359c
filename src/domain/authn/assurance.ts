/**
 * How strongly a person was authenticated, in the words id_tokens use: `amr` (RFC 8176 method
 * references) and `acr` (the assurance level). The levels are NIST SP 800-63B authenticator
 * assurance levels, named by the URIs the US federal identity profile uses, so a hospital's
 * identity team can read them without a glossary:
 *
 *   AAL1                      one factor (a password, or an upstream sign-in without multi-factor)
 *   AAL2                      two factors: a password (or upstream sign-in) and a one-time code,
 *                             or multi-factor done at a trusted upstream provider
 *   AAL2, phishing-resistant  a WebAuthn credential with user verification (a passkey or security
 *                             key): bound to this origin, so a look-alike site cannot relay it
 *
 * A request's `acr_values` asks for at least one of these; a session below the lowest one asked
 * for is stepped up (smart/interaction/second-factor/step-up-checks.ts).
 */

export const ACR = {
  aal1: 'http://idmanagement.gov/ns/assurance/aal/1',
  aal2: 'http://idmanagement.gov/ns/assurance/aal/2',
  aal2PhishingResistant: 'http://idmanagement.gov/ns/assurance/aal/2?phishing_resistant=true',
} as const;

export type AcrValue = (typeof ACR)[keyof typeof ACR];

/** What discovery advertises as `acr_values_supported`, weakest first. */
export const SUPPORTED_ACR_VALUES: readonly AcrValue[] = [ACR.aal1, ACR.aal2, ACR.aal2PhishingResistant];

/** Assurance as a number, so levels compare: 1 (one factor), 2 (two), 3 (two, phishing-resistant). */
export type Level = 1 | 2 | 3;

const LEVEL_OF_ACR: Record<AcrValue, Level> = { [ACR.aal1]: 1, [ACR.aal2]: 2, [ACR.aal2PhishingResistant]: 3 };
const ACR_OF_LEVEL: Record<Level, AcrValue> = { 1: ACR.aal1, 2: ACR.aal2, 3: ACR.aal2PhishingResistant };

/** RFC 8176 values this server sets itself. */
export const AMR = {
  password: 'pwd',
  oneTimeCode: 'otp',
  hardwareKey: 'hwk',
  softwareKey: 'swk',
  multiFactor: 'mfa',
} as const;

const WEBAUTHN_AMR: readonly string[] = [AMR.hardwareKey, AMR.softwareKey];

/** The level a sign-in reached, from its methods. `mfa` alone (an upstream's word) counts as two factors. */
export function levelOfAmr(amr: readonly string[] | undefined): Level {
  if (!amr?.includes(AMR.multiFactor)) return 1;
  return amr.some((m) => WEBAUTHN_AMR.includes(m)) ? 3 : 2;
}

export function acrOfLevel(level: Level): AcrValue {
  return ACR_OF_LEVEL[level];
}

/** The level an `acr` names, or undefined for a value this server does not issue. */
export function levelOfAcr(acr: unknown): Level | undefined {
  return typeof acr === 'string' && acr in LEVEL_OF_ACR ? LEVEL_OF_ACR[acr as AcrValue] : undefined;
}

/**
 * The level a request's `acr_values` asks for: the lowest of the values this server knows (any of
 * them satisfies the request, OIDC Core §3.1.2.1). Unknown values alone ask for nothing, as the
 * parameter is a preference and unknown levels cannot be met or refused meaningfully.
 */
export function requestedLevel(acrValues: unknown): Level | undefined {
  if (typeof acrValues !== 'string') return undefined;
  const levels = acrValues
    .split(' ')
    .map(levelOfAcr)
    .filter((l): l is Level => l !== undefined);
  return levels.length ? (Math.min(...levels) as Level) : undefined;
}

/** The methods of a sign-in completed with a second factor: the first factor's, the second's and `mfa`, once each. */
export function withSecondFactor(first: readonly string[], second: readonly string[]): string[] {
  return [...new Set([...first, ...second, AMR.multiFactor])];
}
