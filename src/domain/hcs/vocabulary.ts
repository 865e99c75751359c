/**
 * The HL7 Healthcare Classification System codes tokens carry, as data: PurposeOfUse (v3-ActReason),
 * Confidentiality, obligation and refrain policies (v3-ActCode) and security role codes. Source: HL7
 * UTG (THO) code systems; displays are THO's. Only the codes a policy can name are listed; a code
 * outside these tables is refused, never passed through unchecked.
 */

import type { Coding } from '../fhir/types.js';

export const SYSTEMS = {
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  confidentiality: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality',
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  roleCode: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode',
  roleClass: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  securityRoleType: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type',
  snomed: 'http://snomed.info/sct',
  nucc: 'http://nucc.org/provider-taxonomy',
} as const;

/** OIDs UDAP and XUA use for the same systems (`urn:oid:<oid>#<code>`). */
export const SYSTEM_OIDS: Readonly<Record<string, string>> = {
  '2.16.840.1.113883.5.8': SYSTEMS.actReason,
  '2.16.840.1.113883.5.25': SYSTEMS.confidentiality,
  '2.16.840.1.113883.5.4': SYSTEMS.actCode,
  '2.16.840.1.113883.5.111': SYSTEMS.roleCode,
  '2.16.840.1.113883.5.110': SYSTEMS.roleClass,
  '2.16.840.1.113883.5.90': SYSTEMS.participationType,
  '2.16.840.1.113883.6.96': SYSTEMS.snomed,
  '2.16.840.1.113883.6.101': SYSTEMS.nucc,
};

/** Older spellings of the ActReason system seen in FHIR examples; accepted, never emitted. */
export const LEGACY_ACT_REASON = ['http://hl7.org/fhir/v3/ActReason', 'urn:oid:2.16.840.1.113883.5.8'];

/** v3-PurposeOfUse: code → [display, parent]. A root has no parent. */
const PURPOSES: Readonly<Record<string, readonly [string, string?]>> = {
  HMARKT: ['healthcare marketing'],
  HOPERAT: ['healthcare operations'],
  CAREMGT: ['care management', 'HOPERAT'],
  DONAT: ['donation', 'HOPERAT'],
  FRAUD: ['fraud', 'HOPERAT'],
  GOV: ['government', 'HOPERAT'],
  HACCRED: ['health accreditation', 'HOPERAT'],
  HCOMPL: ['health compliance', 'HOPERAT'],
  HDECD: ['decedent', 'HOPERAT'],
  HDIRECT: ['directory', 'HOPERAT'],
  HDM: ['healthcare delivery management', 'HOPERAT'],
  HLEGAL: ['legal', 'HOPERAT'],
  HOUTCOMS: ['health outcome measure', 'HOPERAT'],
  HPRGRP: ['health program reporting', 'HOPERAT'],
  HQUALIMP: ['health quality improvement', 'HOPERAT'],
  HSYSADMIN: ['health system administration', 'HOPERAT'],
  LABELING: ['labeling', 'HSYSADMIN'],
  METAMGT: ['metadata management', 'HSYSADMIN'],
  MEMADMIN: ['member administration', 'HOPERAT'],
  MILCDM: ['military command', 'HOPERAT'],
  PATADMIN: ['patient administration', 'HOPERAT'],
  PATSFTY: ['patient safety', 'HOPERAT'],
  PERFMSR: ['performance measure', 'HOPERAT'],
  RECORDMGT: ['records management', 'HOPERAT'],
  SYSDEV: ['system development', 'HOPERAT'],
  HTEST: ['test health data', 'SYSDEV'],
  TRAIN: ['training', 'HOPERAT'],
  MLTRAINING: ['machine learning training', 'HOPERAT'],
  HPAYMT: ['healthcare payment'],
  CLMATTCH: ['claim attachment', 'HPAYMT'],
  COVAUTH: ['coverage authorization', 'HPAYMT'],
  COVERAGE: ['coverage under policy or program', 'HPAYMT'],
  ELIGDTRM: ['eligibility determination', 'COVERAGE'],
  ELIGVER: ['eligibility verification', 'COVERAGE'],
  ENROLLM: ['enrollment', 'COVERAGE'],
  MILDCRG: ['military discharge', 'COVERAGE'],
  REMITADV: ['remittance advice', 'HPAYMT'],
  PMTDS: ['decision support assisted payment decision', 'HPAYMT'],
  HRESCH: ['healthcare research'],
  BIORCH: ['biomedical research', 'HRESCH'],
  CLINTRCH: ['clinical trial research', 'HRESCH'],
  CLINTRCHNPC: ['clinical trial research without patient care', 'CLINTRCH'],
  CLINTRCHPC: ['clinical trial research with patient care', 'CLINTRCH'],
  PRECLINTRCH: ['preclinical trial research', 'CLINTRCH'],
  DSRCH: ['disease specific healthcare research', 'HRESCH'],
  POARCH: ['population origins or ancestry healthcare research', 'HRESCH'],
  TRANSRCH: ['translational healthcare research', 'HRESCH'],
  PATRQT: ['patient requested'],
  FAMRQT: ['family requested', 'PATRQT'],
  PWATRNY: ['power of attorney', 'PATRQT'],
  SUPNWK: ['support network', 'PATRQT'],
  PUBHLTH: ['public health'],
  DISASTER: ['disaster', 'PUBHLTH'],
  THREAT: ['threat', 'PUBHLTH'],
  TREAT: ['treatment'],
  CLINTRL: ['clinical trial', 'TREAT'],
  COC: ['coordination of care', 'TREAT'],
  ETREAT: ['Emergency Treatment', 'TREAT'],
  BTG: ['break the glass', 'ETREAT'],
  ERTREAT: ['emergency room treatment', 'ETREAT'],
  POPHLTH: ['population health', 'TREAT'],
  TREATDS: ['decision support assisted treatment decision', 'TREAT'],
};

export function isPurpose(code: string): boolean {
  return Object.hasOwn(PURPOSES, code);
}

/** The code and its ancestors, nearest first (BTG → BTG, ETREAT, TREAT). */
export function purposeLineage(code: string): string[] {
  const line: string[] = [];
  for (let c: string | undefined = code; c && isPurpose(c); c = PURPOSES[c]![1]) line.push(c);
  return line;
}

/** True when `code` is `ancestor` or lies under it in the v3-PurposeOfUse hierarchy. */
export function purposeIsA(code: string, ancestor: string): boolean {
  return purposeLineage(code).includes(ancestor);
}

/** Emergency purposes: asserting one is breaking the glass, whatever else is permitted. */
export function isEmergencyPurpose(code: string): boolean {
  return purposeIsA(code, 'ETREAT');
}

export function purposeCoding(code: string): Coding {
  const entry = PURPOSES[code];
  return entry ? { system: SYSTEMS.actReason, code, display: entry[0] } : { system: SYSTEMS.actReason, code };
}

/** HL7 v3-Confidentiality, lowest first: U < L < M < N < R < V (users' clearances use the same). */
export const CONFIDENTIALITY = ['U', 'L', 'M', 'N', 'R', 'V'] as const;
export type Confidentiality = (typeof CONFIDENTIALITY)[number];

/** A user's clearance is a confidentiality label: the highest they may see. */
export type Clearance = Confidentiality;

const CONFIDENTIALITY_DISPLAY: Record<Confidentiality, string> = {
  U: 'unrestricted',
  L: 'low',
  M: 'moderate',
  N: 'normal',
  R: 'restricted',
  V: 'very restricted',
};

export function confidentialityCoding(code: Confidentiality): Coding {
  return { system: SYSTEMS.confidentiality, code, display: CONFIDENTIALITY_DISPLAY[code] };
}

/** The lower of two ceilings. */
export function lowerCeiling(a: Confidentiality, b: Confidentiality): Confidentiality {
  return CONFIDENTIALITY.indexOf(a) <= CONFIDENTIALITY.indexOf(b) ? a : b;
}

/** v3-ObligationPolicy (what the recipient must do) and v3-RefrainPolicy (what it must not). */
const HANDLING: Readonly<Record<string, string>> = {
  // ObligationPolicy
  ANONY: 'anonymize',
  AOD: 'accounting of disclosure',
  AUDIT: 'audit',
  AUDTR: 'audit trail',
  CPLYCC: 'comply with confidentiality code',
  CPLYCD: 'comply with consent directive',
  CPLYCUI: 'comply with CUI policy',
  CPLYJPP: 'comply with jurisdictional privacy policy',
  CPLYJSP: 'comply with jurisdictional security policy',
  CPLYOPP: 'comply with organizational privacy policy',
  CPLYOSP: 'comply with organizational security policy',
  CPLYPOL: 'comply with policy',
  DECLASSIFYLABEL: 'declassify security label',
  DEID: 'deidentify',
  DELAU: 'delete after use',
  DOWNGRDLABEL: 'downgrade security label',
  DRIVLABEL: 'derive security label',
  ENCRYPT: 'encrypt',
  ENCRYPTR: 'encrypt at rest',
  ENCRYPTT: 'encrypt in transit',
  ENCRYPTU: 'encrypt in use',
  HUAPRV: 'human approval',
  LABEL: 'assign security label',
  MASK: 'mask',
  MINEC: 'minimum necessary',
  PERSISTLABEL: 'persist security label',
  PRIVMARK: 'privacy mark',
  PSEUD: 'pseudonymize',
  REDACT: 'redact',
  UPGRDLABEL: 'upgrade security label',
  // RefrainPolicy
  NOAUTH: 'no disclosure without subject authorization',
  NOCOLLECT: 'no collection',
  NODSCLCD: 'no disclosure without consent directive',
  NODSCLCDS: "no disclosure without information subject's consent directive",
  NOINTEGRATE: 'no integration',
  NOLIST: 'no unlisted entity disclosure',
  NOMOU: 'no disclosure without MOU',
  NOORGPOL: 'no disclosure without organizational authorization',
  NOPAT: "no disclosure to patient, family or caregivers without attending provider's authorization",
  NOPERSISTP: 'no collection beyond purpose of use',
  NORDSCLCD: 'no redisclosure without consent directive',
  NORDSCLCDS: "no redisclosure without information subject's consent directive",
  NORDSCLW: 'no disclosure without jurisdictional authorization',
  NORELINK: 'no relinking',
  NOREUSE: 'no reuse beyond purpose of use',
  NOVIP: 'no unauthorized VIP disclosure',
  ORCON: 'no disclosure without originator authorization',
};

export function isHandlingCode(code: string): boolean {
  return Object.hasOwn(HANDLING, code);
}

export function handlingCoding(code: string): Coding {
  return { system: SYSTEMS.actCode, code, display: HANDLING[code] ?? code };
}

/** extra-security-role-type: the roles an access decision's parties play. */
export const SECURITY_ROLE_TYPES: Readonly<Record<string, string>> = {
  authserver: 'Authorization Server',
  datacollector: 'Data Collector',
  dataprocessor: 'Data Processor',
  datasubject: 'Data Subject',
  humanuser: 'Human User',
};

/** v3-RoleClass and v3-RoleCode codes of the FHIR SecurityRoleType value set that describe people. */
export const PERSON_ROLE_CODES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  [SYSTEMS.roleClass]: {
    AFFL: 'affiliate',
    AGNT: 'agent',
    ASSIGNED: 'assigned entity',
    CLAIM: 'claimant',
    COVPTY: 'covered party',
    DEPEN: 'dependent',
    ECON: 'emergency contact',
    EMP: 'employee',
    GUARD: 'guardian',
    INVSBJ: 'Investigation Subject',
    NAMED: 'named insured',
    NOK: 'next of kin',
    PAT: 'patient',
    PROV: 'healthcare provider',
    NOT: 'notary public',
  },
  [SYSTEMS.roleCode]: {
    CONSENTER: 'consenter',
    DELEGATEE: 'delegatee',
    DELEGATOR: 'delegator',
    DPOWATT: 'durable power of attorney',
    GRANTEE: 'grantee',
    GRANTOR: 'grantor',
    GUADLTM: 'guardian ad lidem',
    GUARD: 'guardian',
    HPOWATT: 'healthcare power of attorney',
    INTPRTER: 'interpreter',
    POWATT: 'power of attorney',
    RESPRSN: 'responsible party',
    SPOWATT: 'special power of attorney',
  },
};

/** A role Coding with THO's display filled in when the code is one we know. */
export function roleCoding(role: Coding): Coding {
  const display =
    role.display ??
    PERSON_ROLE_CODES[role.system]?.[role.code] ??
    (role.system === SYSTEMS.securityRoleType ? SECURITY_ROLE_TYPES[role.code] : undefined);
  return display ? { system: role.system, code: role.code, display } : { system: role.system, code: role.code };
}
