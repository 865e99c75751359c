import { randomUUID } from 'node:crypto';
import { parseScope } from '../../domain/scopes/scope-syntax.js';
import type { Clearance } from '../../domain/hcs/vocabulary.js';
import { ConsentInputError } from './errors.js';
import type { CodeableConcept, Coding, Consent, ConsentProvision, Provenance, Reference } from '../../domain/fhir/types.js';
import { consentNarrative } from './narrative.js';
import { clientReference, patientIdOf, relativeReference } from '../../domain/fhir/references.js';
import {
  ACCESS,
  AUTHOR,
  CORRECT,
  DATA_OPERATIONS,
  INFORMATION_DISCLOSURE,
  INFORMATION_RECIPIENT,
  OPT_IN,
  OPT_OUT,
  PATIENT_CONSENT,
  PATIENT_PRIVACY,
  SYSTEMS,
  labelsAbove,
} from './vocabulary.js';
import { isPurpose, purposeCoding } from '../../domain/hcs/vocabulary.js';

/** What someone decided on the consent page (or anywhere else a person allows or refuses an app). */
export interface ConsentDecision {
  kind: 'permit' | 'deny';
  /** The patient whose data it is: an id, `Patient/<id>` or an absolute Patient URL. */
  patientId: string;
  /** Who decided, e.g. `Patient/1`, `RelatedPerson/2`, `Practitioner/3` (absolute URLs are made relative). */
  performer: { reference: string; display?: string };
  clientId: string;
  clientName?: string;
  /** The granted scopes for a permit, the requested ones for a refusal. */
  scopes: string[];
  /** v3-ActReason codes; by default PATRQT when the performer is the patient or a caregiver. */
  purposes?: string[];
  /** How long the permit lasts: the grant's lifetime. */
  periodSeconds: number;
  /** The confidentiality ceiling of the access (the tokens' one): data labelled above it stays denied (a nested deny provision). */
  clearance?: Clearance;
  /** The grant the permit is for, when it already exists. */
  grantId?: string;
}

export interface ConsentContext {
  /** This server's issuer: the base of the policy URI and of the client identifier system. */
  issuer: string;
}

/** R4 Consent.performer target types. */
const PERFORMER_TYPES = new Set(['Patient', 'RelatedPerson', 'Practitioner', 'PractitionerRole', 'Organization']);
/** R4 Consent.verification.verifiedWith target types. */
const VERIFIER_TYPES = new Set(['Patient', 'RelatedPerson']);
/** Who acts for themselves or as a caregiver: their purpose is the patient's request. */
const PERSONAL_TYPES = new Set(['Patient', 'RelatedPerson']);

export const SMART_APP_ACCESS_POLICY = '/policies/smart-app-access';

/** FHIR instants without milliseconds: the same second reads the same everywhere. */
export function fhirInstant(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function concept(coding: Coding): CodeableConcept {
  return { coding: [coding] };
}

function performerOf(decision: ConsentDecision): Reference & { reference: string } {
  const ref = relativeReference(decision.performer.reference);
  if (!ref || !PERFORMER_TYPES.has(ref.type)) {
    throw new ConsentInputError(
      `the performer must reference a ${[...PERFORMER_TYPES].join(', ')} (got ${JSON.stringify(decision.performer.reference)})`,
    );
  }
  const display = decision.performer.display?.trim().slice(0, 200);
  return display ? { reference: ref.reference, display } : { reference: ref.reference };
}

function purposesOf(decision: ConsentDecision, performerType: string): Coding[] {
  const codes = decision.purposes?.length ? decision.purposes : PERSONAL_TYPES.has(performerType) ? ['PATRQT'] : [];
  for (const code of codes) {
    if (!isPurpose(code)) throw new ConsentInputError(`purpose ${JSON.stringify(code)} is not a v3-PurposeOfUse code`);
  }
  return [...new Set(codes)].map(purposeCoding);
}

/**
 * What the scopes reach: the resource types they name (no class at all when one names every type,
 * `*`), and whether any may change data (c, u or d: the `correct` action).
 */
export function scopeReach(scopes: readonly string[]): { classes: Coding[] | undefined; writes: boolean } {
  const types = new Set<string>();
  let writes = false;
  for (const s of scopes) {
    const p = parseScope(s);
    if (p.kind !== 'resource') continue;
    types.add(p.resourceType);
    if (p.permissions.has('c') || p.permissions.has('u') || p.permissions.has('d')) writes = true;
  }
  if (types.has('*') || types.size === 0) return { classes: undefined, writes };
  return { classes: [...types].sort().map((code) => ({ system: SYSTEMS.resourceTypes, code })), writes };
}

/**
 * The R4 Consent recording a decision. A permit is `active` (opt-in) and lasts `periodSeconds`; a
 * refusal is `rejected` (opt-out). The app is the provision's actor as information recipient.
 */
export function buildConsent(decision: ConsentDecision, now: Date, context: ConsentContext): Consent {
  const patientId = patientIdOf(decision.patientId);
  if (!patientId) throw new ConsentInputError(`patientId ${JSON.stringify(decision.patientId)} is not a Patient id or reference`);
  if (!decision.clientId) throw new ConsentInputError('clientId is required');
  if (!Number.isInteger(decision.periodSeconds) || decision.periodSeconds <= 0)
    throw new ConsentInputError('periodSeconds must be a positive whole number');
  const permit = decision.kind === 'permit';
  const performer = performerOf(decision);
  const performerType = performer.reference.split('/')[0]!;
  const at = fhirInstant(now);
  const { classes, writes } = scopeReach(decision.scopes);
  const purposes = purposesOf(decision, performerType);

  const provision: ConsentProvision = {
    type: permit ? 'permit' : 'deny',
    period: permit ? { start: at, end: fhirInstant(new Date(now.getTime() + decision.periodSeconds * 1000)) } : { start: at },
    actor: [{ role: concept(INFORMATION_RECIPIENT), reference: clientReference(context.issuer, decision.clientId, decision.clientName) }],
    action: permit && writes ? [concept(ACCESS), concept(CORRECT)] : [concept(ACCESS)],
    ...(purposes.length ? { purpose: purposes } : {}),
    ...(classes ? { class: classes } : {}),
  };
  const excluded = permit && decision.clearance ? labelsAbove(decision.clearance) : [];
  if (excluded.length) provision.provision = [{ type: 'deny', securityLabel: excluded }];

  const consent: Consent = {
    resourceType: 'Consent',
    status: permit ? 'active' : 'rejected',
    scope: concept(PATIENT_PRIVACY),
    category: [concept(PATIENT_CONSENT), concept(INFORMATION_DISCLOSURE)],
    patient: { reference: `Patient/${patientId}` },
    dateTime: at,
    performer: [performer],
    policy: [{ uri: `${context.issuer}${SMART_APP_ACCESS_POLICY}` }],
    policyRule: concept(permit ? OPT_IN : OPT_OUT),
    verification: [
      {
        verified: true,
        ...(VERIFIER_TYPES.has(performerType) ? { verifiedWith: { reference: performer.reference } } : {}),
        verificationDate: at,
      },
    ],
    provision,
  };
  return { ...consent, text: consentNarrative(consent) };
}

export type ProvenanceActivity = keyof typeof DATA_OPERATIONS;

/**
 * The id of the Provenance of one Consent version: `<consent id>-<version>`. Each version has
 * exactly one Provenance (its creation or its withdrawal), and the id leads to where it is stored
 * (GET /fhir/Provenance/<id>, provenance-routes.ts).
 */
export function provenanceId(consentId: string, version: string): string {
  return `${consentId}-${version}`;
}

/** The Consent id and version a Provenance id names, or undefined when it names none. */
export function provenanceIdParts(id: string): { consentId: string; version: string } | undefined {
  const m = /^([A-Za-z0-9\-.]{1,54})-(\d{1,9})$/.exec(id);
  return m ? { consentId: m[1]!, version: m[2]! } : undefined;
}

/** Who created (CREATE) or withdrew (UPDATE) a Consent, and when; the target is the exact version. */
export function buildProvenance(consent: Consent, activity: ProvenanceActivity, who: Reference, now: Date): Provenance {
  if (!consent.id) throw new ConsentInputError('a Provenance needs a Consent with an id');
  const version = consent.meta?.versionId;
  return {
    resourceType: 'Provenance',
    id: version ? provenanceId(consent.id, version) : randomUUID(),
    target: [{ reference: version ? `Consent/${consent.id}/_history/${version}` : `Consent/${consent.id}` }],
    recorded: fhirInstant(now),
    activity: concept(DATA_OPERATIONS[activity]),
    agent: [{ type: concept(AUTHOR), who }],
  };
}
