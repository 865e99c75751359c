import type { ConsentDecision } from '../../../records/consent/consent-resource.js';
import type { Clearance } from '../../../domain/hcs/vocabulary.js';
import type { ConsentService } from '../../../records/consent/consent-service.js';
import type { StoredConsent } from '../../../records/consent/consent-store.js';
import { ConsentInputError, ConsentNotFoundError, ConsentStateError } from '../../../records/consent/errors.js';
import { relativeReference } from '../../../domain/fhir/references.js';
import { patientScopes } from '../../../records/consent/scope-coverage.js';
import type { AuthorizationFacts } from '../facts/authorization-facts.js';
import { RecordError, type ConsentStep } from '../record-context/context-recorder.js';
import { isRequiredScope } from './scope-descriptions.js';
import { ADDED_PROMPT_PARAM } from '../../launch/authorize-request.js';
import type { UserContext } from '../facts/fhir-user.js';

/**
 * Where an authorization meets the patient's consent (consent/). Any grant with patient/ scopes
 * stands on an R4 Consent: Allow on the consent page records one before the grant is saved, and
 * the grant is tied to it, so the token endpoint can refuse tokens once it is withdrawn or over.
 *
 * Remembered consent: the same person, app and patient with an active Consent that covers every
 * choice of the new request (all requested scopes except the ones the launch cannot do without)
 * get no page; the grant is tied to that Consent. When only some are covered, the page asks for
 * the rest and Allow records a new Consent for everything this authorization grants. A client
 * registered with `smart_remember_consent: false` is asked every time.
 */

export type ConsentGateDeps = Pick<ConsentService, 'recordDecision' | 'linkGrant' | 'coveringConsent' | 'missingScopes'>;

/** Consent lifetimes: the refresh token's with offline_access, else the sign-in session's. */
export interface ConsentLifetimes {
  refreshToken: number;
  session: number;
}

/** R4 Consent.performer types a signed-in user can be. */
const PERFORMER_TYPES = new Set(['Patient', 'RelatedPerson', 'Practitioner', 'PractitionerRole']);

export const NO_PERFORMER =
  'Your account is not linked to a patient, caregiver or clinician record, so consent to share patient data cannot be recorded for it. Ask an administrator to link your account.';

/** Who decides, as Consent.performer: the user's fhirUser, when it is someone who may consent. */
export function consentPerformer(user: UserContext): { reference: string; display?: string } | undefined {
  const ref = user.fhirUser ? relativeReference(user.fhirUser) : undefined;
  if (!ref || !PERFORMER_TYPES.has(ref.type)) return undefined;
  return user.displayName ? { reference: ref.reference, display: user.displayName } : { reference: ref.reference };
}

/** A Consent is needed when patient/ scopes would be granted for a patient. */
export function needsConsent(patient: string | undefined, scopes: readonly string[]): patient is string {
  return patient !== undefined && patientScopes(scopes).length > 0;
}

/** What a person decides on the page, hence what a remembered Consent must cover. */
export function choicesOf(scopes: readonly string[]): string[] {
  return scopes.filter((s) => !isRequiredScope(s));
}

export function consentSeconds(scopes: readonly string[], lifetimes: ConsentLifetimes): number {
  return scopes.includes('offline_access') ? lifetimes.refreshToken : lifetimes.session;
}

/**
 * When a covering Consent may spare the page (config `consents.remember`, AUTHZ_CONSENT_REMEMBER):
 * - `silent` (default): only where the person is not at this server to decide: an EHR launch
 *   (the EHR already put them in front of the app) or `prompt=none`. A standalone launch always
 *   shows the page, so a patient can narrow what an app they allowed before gets ((g)(10)
 *   Limited Access).
 * - `always`: every authorization a Consent covers skips the page.
 * - `never`: every authorization with patient/ scopes shows it (`prompt=none` gets consent_required).
 * A client's own `prompt=consent` always shows the page (OpenID Connect Core 3.1.2.1), and a client
 * registered with `smart_remember_consent: false` is never remembered.
 */
export const REMEMBER_MODES = ['silent', 'always', 'never'] as const;
export type RememberMode = (typeof REMEMBER_MODES)[number];

export interface RememberSituation {
  mode: RememberMode;
  /** The request names an EHR launch. */
  ehrLaunch: boolean;
  promptNone: boolean;
  /** The client itself sent prompt=consent (not the one this server adds for offline_access). */
  clientAskedConsent: boolean;
}

export function mayRemember(s: RememberSituation): boolean {
  if (s.clientAskedConsent) return false;
  switch (s.mode) {
    case 'always':
      return true;
    case 'never':
      return false;
    case 'silent':
      return s.ehrLaunch || s.promptNone;
  }
}

/** The client's own prompt asks for consent. */
export function clientAskedForConsent(params: Record<string, unknown>): boolean {
  const prompt = typeof params.prompt === 'string' ? params.prompt.split(' ') : [];
  return prompt.includes('consent') && params[ADDED_PROMPT_PARAM] !== 'consent';
}

export interface Remembered {
  /** One active Consent covering every choice: no page. */
  covering?: StoredConsent;
  /** Choices no active Consent of this person for this app and patient covers: the page asks these. */
  missing: string[];
  /** Choices already covered: the page lists them as allowed. */
  covered: string[];
}

export async function rememberedConsent(
  consents: ConsentGateDeps,
  facts: AuthorizationFacts,
  patient: string,
  scopes: readonly string[],
): Promise<Remembered> {
  const choices = choicesOf(scopes);
  const performer = consentPerformer(facts.user);
  if (!facts.rememberConsent || !performer) return { missing: choices, covered: [] };
  const query = { performerRef: performer.reference, clientId: facts.clientId, patientId: patient, scopes: choices };
  const covering = await consents.coveringConsent(query);
  if (covering) return { covering, missing: [], covered: choices };
  const missing = new Set(await consents.missingScopes(query));
  return { missing: choices.filter((s) => missing.has(s)), covered: choices.filter((s) => !missing.has(s)) };
}

export interface PermitFacts {
  facts: AuthorizationFacts & { clientName?: string };
  patient: string;
  lifetimes: ConsentLifetimes;
  /** The purposes the grant asserts (the HCS decision); the request's when absent. */
  purposes?: readonly string[];
  /**
   * The confidentiality ceiling the grant's tokens carry (the HCS decision: the user's clearance or
   * the policy default, lowered by rules, raised for break-the-glass). The Consent denies every
   * label above it, so the record says what the tokens enforce.
   */
  ceiling?: Clearance;
}

/** The ConsentDecision of an Allow (permit) or a Deny for this authorization. */
export function decisionOf(kind: 'permit' | 'deny', p: PermitFacts, scopes: readonly string[]): ConsentDecision {
  const performer = consentPerformer(p.facts.user);
  if (!performer) throw new ConsentInputError(NO_PERFORMER);
  const clearance = p.ceiling ?? p.facts.user.clearance;
  return {
    kind,
    patientId: p.patient,
    performer,
    clientId: p.facts.clientId,
    ...(p.facts.clientName ? { clientName: p.facts.clientName } : {}),
    scopes: [...scopes],
    ...((p.purposes ?? p.facts.purposes).length ? { purposes: [...(p.purposes ?? p.facts.purposes)] } : {}),
    periodSeconds: consentSeconds(scopes, p.lifetimes),
    ...(clearance ? { clearance } : {}),
  };
}

/**
 * The recorder's consent step for an Allow: a new permit for the granted scopes when they include
 * patient/ ones (recorded before the grant is saved), then the grant tied to it.
 */
export function newConsentStep(consents: ConsentGateDeps, p: PermitFacts): ConsentStep {
  return {
    async decide(scopes) {
      if (!needsConsent(p.patient, scopes)) return undefined;
      try {
        return (await consents.recordDecision(decisionOf('permit', p, scopes))).id;
      } catch (err) {
        if (err instanceof ConsentInputError) throw new RecordError('access_denied', `The consent could not be recorded: ${err.message}`);
        throw err;
      }
    },
    link: (consentId, grantId) => linkOrRefuse(consents, consentId, grantId),
  };
}

/** The recorder's consent step when an existing Consent already covers the grant. */
export function existingConsentStep(consents: ConsentGateDeps, consentId: string): ConsentStep {
  return {
    decide: async () => consentId,
    link: (id, grantId) => linkOrRefuse(consents, id, grantId),
  };
}

async function linkOrRefuse(consents: ConsentGateDeps, consentId: string, grantId: string): Promise<void> {
  try {
    await consents.linkGrant(consentId, grantId);
  } catch (err) {
    if (err instanceof ConsentStateError || err instanceof ConsentNotFoundError) {
      throw new RecordError('access_denied', 'The consent was withdrawn before the app got access. Start the app again.');
    }
    throw err;
  }
}
