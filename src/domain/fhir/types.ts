/**
 * The few FHIR R4 shapes the consent module reads and writes (R4 4.0.1). Only the elements this
 * server fills are typed; the resources stay plain JSON.
 */

export interface Coding {
  system: string;
  code: string;
  display?: string;
}

export interface CodeableConcept {
  coding: Coding[];
  text?: string;
}

export interface Identifier {
  system: string;
  value: string;
}

export interface Reference {
  reference?: string;
  type?: string;
  identifier?: Identifier;
  display?: string;
}

export interface Period {
  start?: string;
  end?: string;
}

export interface Narrative {
  status: 'generated';
  div: string;
}

export interface Meta {
  versionId: string;
  lastUpdated: string;
}

export interface ConsentProvision {
  type?: 'permit' | 'deny';
  period?: Period;
  actor?: Array<{ role: CodeableConcept; reference: Reference }>;
  action?: CodeableConcept[];
  /** Coding, not CodeableConcept (R4). */
  securityLabel?: Coding[];
  /** Coding, not CodeableConcept (R4). */
  purpose?: Coding[];
  /** Coding, not CodeableConcept (R4). */
  class?: Coding[];
  provision?: ConsentProvision[];
}

/** R4 Consent.status codes. */
export type ConsentStatus = 'draft' | 'proposed' | 'active' | 'rejected' | 'inactive' | 'entered-in-error';

export interface Consent {
  resourceType: 'Consent';
  id?: string;
  meta?: Meta;
  text?: Narrative;
  status: ConsentStatus;
  scope: CodeableConcept;
  category: CodeableConcept[];
  patient: Reference;
  dateTime: string;
  performer: Reference[];
  policy?: Array<{ authority?: string; uri?: string }>;
  policyRule?: CodeableConcept;
  verification?: Array<{ verified: boolean; verifiedWith?: Reference; verificationDate?: string }>;
  provision?: ConsentProvision;
}

export interface Provenance {
  resourceType: 'Provenance';
  id: string;
  target: Reference[];
  recorded: string;
  activity: CodeableConcept;
  agent: Array<{ type: CodeableConcept; who: Reference }>;
}

export type IssueSeverity = 'fatal' | 'error' | 'warning' | 'information';

/** The R4 issue-type codes this module uses. */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'not-found'
  | 'not-supported'
  | 'business-rule'
  | 'conflict'
  | 'too-costly'
  | 'exception'
  | 'transient';

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: Array<{ severity: IssueSeverity; code: IssueType; diagnostics?: string }>;
}

/** SMART 2.2 `fhirContext` item: at least one of reference, canonical or identifier. */
export interface FhirContextItem {
  reference?: string;
  canonical?: string;
  identifier?: { system?: string; value: string };
  type?: string;
  role?: string;
}
