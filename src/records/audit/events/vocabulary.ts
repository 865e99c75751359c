import { LOCAL_SUBTYPE_SYSTEM } from '../disclosure.js';

/**
 * Codes of the AuditEvents this server writes: FHIR R4 / HL7 THO, DICOM (DCM), IHE BALP, and one
 * project-local CodeSystem for what no standard names.
 *
 * The local system is a constant, not derived from the issuer: the same event must carry the same
 * code in every deployment (and survive an issuer rename), so audit repositories and SIEM rules can
 * match on it. Every local code is listed in LOCAL_SUBTYPES with its display.
 */

export interface Coding {
  system: string;
  code: string;
  display?: string;
}

export const SYSTEMS = {
  dcm: 'http://dicom.nema.org/resources/ontology/DCM',
  auditEventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  restfulInteraction: 'http://hl7.org/fhir/restful-interaction',
  iheEventType: 'urn:ihe:event-type-code',
  balpUserAgentTypes: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes',
  balpAuthzSubType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  roleClass: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass',
  securityRoleType: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  securitySourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  auditEntityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  resourceTypes: 'http://hl7.org/fhir/resource-types',
} as const;

/**
 * This project's CodeSystem for audit subtypes no standard system has (defined once, beside the
 * disclosure rule that reads it: token-issued, token-refreshed, token-introspected and
 * break-the-glass with a Patient entity are disclosures).
 */

/** Identifier system of token hashes: base64url SHA-256 of an opaque token value (never the value). */
export const TOKEN_SHA256_SYSTEM = 'https://smart-authz.dev/fhir/NamingSystem/oauth-token-sha256';

/** The local codes, with their displays (the CodeSystem's content). */
export const LOCAL_SUBTYPES = {
  'token-issued': 'Token issued',
  'token-refused': 'Token request refused',
  'token-refreshed': 'Token refreshed',
  'refresh-reuse': 'Refresh token reuse detected (grant revoked)',
  'token-introspected': 'Token introspected',
  'token-revoked': 'Token revocation',
  'login-failed': 'Login failed',
  'account-locked': 'Account locked after repeated failures',
  'mfa-enrolled': 'Second factor enrolled',
  'mfa-removed': 'Second factor removed',
  'mfa-reset': 'Second factors reset by an administrator',
  'mfa-verified': 'Second factor verified',
  'mfa-failed': 'Second factor failed',
  'federated-login': 'Sign-in through an upstream identity provider',
  'identity-linked': 'Upstream identity linked to a user',
  'user-provisioned': 'User created just in time at a federated sign-in',
  'authorization-granted': 'Authorization granted',
  'authorization-denied': 'Authorization denied',
  'consent-recorded': 'Consent recorded',
  'consent-withdrawn': 'Consent withdrawn',
  'launch-created': 'EHR launch context created',
  'user-created': 'User created',
  'user-updated': 'User changed',
  'user-deleted': 'User deleted',
  'group-created': 'Group created',
  'group-updated': 'Group changed',
  'group-deleted': 'Group deleted',
  'password-changed': 'Password changed',
  'client-registered': 'Client registered',
  'client-updated': 'Client changed',
  'client-deleted': 'Client deleted',
  'key-introduced': 'Signing key introduced',
  'key-promoted': 'Signing key promoted',
  'key-removed': 'Signing key removed',
  'keys-reencrypted': 'Signing keys re-encrypted',
  'break-the-glass': 'Break-the-glass access',
} as const;

export type LocalSubtype = keyof typeof LOCAL_SUBTYPES;

/** Deep-freezes shared event parts: nobody may change them, and canonical JSON caches their text (chain.ts). */
export function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const member of Object.values(value)) frozen(member);
    Object.freeze(value);
  }
  return value;
}

const localCodings = new Map<string, Coding>();

export function local(code: LocalSubtype): Coding {
  let coding = localCodings.get(code);
  if (!coding) {
    coding = frozen({ system: LOCAL_SUBTYPE_SYSTEM, code, display: LOCAL_SUBTYPES[code] });
    localCodings.set(code, coding);
  }
  return coding;
}

const dcm = (code: string, display: string): Coding => ({ system: SYSTEMS.dcm, code, display });

export const EVENT_TYPES = frozen({
  applicationActivity: dcm('110100', 'Application Activity'),
  securityAlert: dcm('110113', 'Security Alert'),
  userAuthentication: dcm('110114', 'User Authentication'),
  rest: { system: SYSTEMS.auditEventType, code: 'rest', display: 'RESTful Operation' },
} as const satisfies Record<string, Coding>);

export const STANDARD_SUBTYPES = frozen({
  getAccessToken: { system: SYSTEMS.iheEventType, code: 'ITI-71', display: 'Get Access Token' },
  login: dcm('110122', 'Login'),
  logout: dcm('110123', 'Logout'),
  authzConsent: { system: SYSTEMS.balpAuthzSubType, code: 'AuthZ-Consent', display: 'Authorization Decision using Roles and Consent' },
  emergencyOverrideStarted: dcm('110127', 'Emergency Override Started'),
  securityConfiguration: dcm('110129', 'Security Configuration'),
  userSecurityAttributesChanged: dcm('110137', 'User Security Attributes Changed'),
  create: { system: SYSTEMS.restfulInteraction, code: 'create', display: 'create' },
  update: { system: SYSTEMS.restfulInteraction, code: 'update', display: 'update' },
  patch: { system: SYSTEMS.restfulInteraction, code: 'patch', display: 'patch' },
  delete: { system: SYSTEMS.restfulInteraction, code: 'delete', display: 'delete' },
  read: { system: SYSTEMS.restfulInteraction, code: 'read', display: 'read' },
  searchType: { system: SYSTEMS.restfulInteraction, code: 'search-type', display: 'search type' },
  operation: { system: SYSTEMS.restfulInteraction, code: 'operation', display: 'operation' },
} as const satisfies Record<string, Coding>);

export const AGENT_TYPES = frozen({
  application: dcm('110150', 'Application'),
  applicationLauncher: dcm('110151', 'Application Launcher'),
  authServer: { system: SYSTEMS.balpUserAgentTypes, code: 'AuthzOauthService', display: 'OAuth Authorization Server' },
  informationRecipient: { system: SYSTEMS.participationType, code: 'IRCP', display: 'information recipient' },
  provider: { system: SYSTEMS.roleClass, code: 'PROV', display: 'healthcare provider' },
  humanUser: { system: SYSTEMS.securityRoleType, code: 'humanuser', display: 'human user' },
  /** This server deciding an authorization (BALP AuthZ-Consent agent[authorizer]). */
  authorizer: { system: SYSTEMS.securityRoleType, code: 'authserver', display: 'authorization server' },
  /** Who decided or withdrew a Consent (the patient, a caregiver, a clinician). */
  consenter: { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'CONSENTER', display: 'consenter' },
} as const satisfies Record<string, Coding>);

/**
 * Profiles events claim in meta.profile: IHE BALP where an event meets it (validated in
 * test/records/audit/balp-profiles.test.ts), else this server's own (docs/fhir, docs/audit-profiles.md).
 */
export const BALP_PROFILES = {
  iua71: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.IUA.71',
  authzConsent: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.AuthZconsent',
} as const;
export const LOCAL_PROFILES = {
  tokenEvent: 'https://smart-authz.dev/fhir/StructureDefinition/smart-authz-token-event',
} as const;

export const SECURITY_SERVER: Coding = frozen({ system: SYSTEMS.securitySourceType, code: '6', display: 'Security Server' });

export const ENTITY_TYPES = frozen({
  person: { system: SYSTEMS.auditEntityType, code: '1', display: 'Person' },
  systemObject: { system: SYSTEMS.auditEntityType, code: '2', display: 'System Object' },
  consent: { system: SYSTEMS.resourceTypes, code: 'Consent', display: 'Consent' },
  auditEvent: { system: SYSTEMS.resourceTypes, code: 'AuditEvent', display: 'AuditEvent' },
} as const satisfies Record<string, Coding>);

export const OBJECT_ROLES = frozen({
  patient: { system: SYSTEMS.objectRole, code: '1', display: 'Patient' },
  user: { system: SYSTEMS.objectRole, code: '6', display: 'User' },
  securityUser: { system: SYSTEMS.objectRole, code: '11', display: 'Security User Entity' },
  securityGroup: { system: SYSTEMS.objectRole, code: '12', display: 'Security User Group' },
  securityResource: { system: SYSTEMS.objectRole, code: '13', display: 'Security Resource' },
  query: { system: SYSTEMS.objectRole, code: '24', display: 'Query' },
} as const satisfies Record<string, Coding>);

export const PURPOSES = {
  emergencyTreatment: { system: SYSTEMS.actReason, code: 'ETREAT', display: 'Emergency Treatment' },
  breakTheGlass: { system: SYSTEMS.actReason, code: 'BTG', display: 'break the glass' },
} as const satisfies Record<string, Coding>;

/** AuditEvent.outcome (R4 AuditEventOutcome). */
export const OUTCOME = { success: '0', minorFailure: '4', seriousFailure: '8', majorFailure: '12' } as const;
export type Outcome = (typeof OUTCOME)[keyof typeof OUTCOME];
