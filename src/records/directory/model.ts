import type { Coding } from '../../domain/fhir/types.js';
import type { Clearance } from '../../domain/hcs/vocabulary.js';

/**
 * The user directory's resource shapes: SCIM 2.0 core User and Group (RFC 7643 §4.1, §4.2), the
 * enterprise User extension (§4.3) and this server's own extensions for what SMART on FHIR needs
 * (who the user is in FHIR, whom they may act for, roles, purposes of use, clearance).
 */

export const CORE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SMART_USER_SCHEMA = 'urn:smart-authz:params:scim:schemas:extension:smart:2.0:User';
export const CORE_GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SMART_GROUP_SCHEMA = 'urn:smart-authz:params:scim:schemas:extension:smart:2.0:Group';

export interface MultiValue {
  value: string;
  display?: string;
  type?: string;
  primary?: boolean;
}

export interface Address {
  formatted?: string;
  streetAddress?: string;
  locality?: string;
  region?: string;
  postalCode?: string;
  country?: string;
  type?: string;
  primary?: boolean;
}

export interface ScimMeta<T extends 'User' | 'Group'> {
  resourceType: T;
  created: string;
  lastModified: string;
  /** A weak ETag, `W/"<n>"`, that changes with every write. */
  version: string;
  location?: string;
}

export interface EnterpriseUserExtension {
  employeeNumber?: string;
  costCenter?: string;
  organization?: string;
  division?: string;
  department?: string;
  manager?: { value?: string; $ref?: string; displayName?: string };
}

export interface SmartUserExtension {
  /** `Practitioner/123` (or Patient, RelatedPerson, Person), or an absolute URL ending in one. */
  fhirUser?: string;
  /** Patients this user may act for (proxy access): a Patient id or `Patient/<id>`. */
  proxyPatients?: Array<{ value: string; display?: string }>;
  /** Healthcare-security roles. */
  roles?: Coding[];
  /** Explicitly staff (besides holding a staff role): with a Practitioner fhirUser, may grant user/ scopes. */
  staff?: boolean;
  /** v3-ActReason purpose-of-use codes the user may assert. */
  purposesOfUse?: string[];
  /** The highest confidentiality label the user may see. */
  clearance?: Clearance;
  /** National Provider Identifier (10 digits), put in tokens as IUA `national_provider_identifier`. */
  npi?: string;
  /** The user's organization as a URI (e.g. `urn:oid:…`), IUA `subject_organization_id`; its name is the enterprise `organization`. */
  organizationId?: string;
  /** May break the glass (assert ETREAT/BTG) in an emergency; roles listed in the HCS policy may too. */
  breakTheGlass?: boolean;
  /** A test account: its tokens carry purpose of use HTEST only, so resource servers serve it test data. */
  testAccount?: boolean;
  /** True while sign-in is locked after too many failures; only `false` may be written (unlocks). */
  locked?: boolean;
  /** Read-only: the enrolled second factors (records/directory/factors/); removing them resets them. */
  secondFactors?: Array<{ value: string; type: 'totp' | 'webauthn'; display: string; created: string }>;
  /** Read-only: unused recovery codes. */
  recoveryCodesLeft?: number;
}

export interface SmartGroupExtension {
  /** Roles every member of the group holds. */
  roles?: Coding[];
}

export interface ScimUser {
  schemas: string[];
  id: string;
  externalId?: string;
  userName: string;
  active: boolean;
  name?: {
    formatted?: string;
    familyName?: string;
    givenName?: string;
    middleName?: string;
    honorificPrefix?: string;
    honorificSuffix?: string;
  };
  displayName?: string;
  nickName?: string;
  profileUrl?: string;
  title?: string;
  userType?: string;
  preferredLanguage?: string;
  locale?: string;
  timezone?: string;
  emails?: MultiValue[];
  phoneNumbers?: MultiValue[];
  ims?: MultiValue[];
  photos?: MultiValue[];
  addresses?: Address[];
  /** Read-only: the groups the user is a member of (managed through /Groups). */
  groups?: Array<{ value: string; $ref?: string; display?: string; type?: 'direct' }>;
  entitlements?: MultiValue[];
  roles?: MultiValue[];
  x509Certificates?: MultiValue[];
  [ENTERPRISE_USER_SCHEMA]?: EnterpriseUserExtension;
  [SMART_USER_SCHEMA]?: SmartUserExtension;
  meta: ScimMeta<'User'>;
}

export interface GroupMember {
  value: string;
  $ref?: string;
  display?: string;
  type?: 'User';
}

export interface ScimGroup {
  schemas: string[];
  id: string;
  externalId?: string;
  displayName: string;
  members?: GroupMember[];
  [SMART_GROUP_SCHEMA]?: SmartGroupExtension;
  meta: ScimMeta<'Group'>;
}

/** The weak ETag of a stored version counter. */
export function versionTag(version: string | number): string {
  return `W/"${version}"`;
}
