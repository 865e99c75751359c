import { CONFIDENTIALITY } from '../../../domain/hcs/vocabulary.js';
import { CORE_GROUP_SCHEMA, CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA, SMART_GROUP_SCHEMA, SMART_USER_SCHEMA } from '../model.js';

/**
 * The schemas this directory serves, in RFC 7643 §7 form. One description drives everything that
 * depends on attribute characteristics: `/Schemas`, input validation, filter case rules, PATCH
 * paths, mutability checks and `attributes`/`excludedAttributes`.
 */

export type AttributeType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex' | 'binary';

export interface AttributeDef {
  name: string;
  type: AttributeType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
  returned: 'always' | 'never' | 'default' | 'request';
  uniqueness: 'none' | 'server' | 'global';
  canonicalValues?: readonly string[];
  referenceTypes?: readonly string[];
  subAttributes?: AttributeDef[];
  /** Values outside `canonicalValues` are refused (RFC 7643 lets a server choose). */
  restrictValues?: boolean;
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
  /** Unknown attributes are refused rather than ignored (our own extensions: a typo must not pass silently). */
  strict?: boolean;
}

export interface ResourceTypeDef {
  name: 'User' | 'Group';
  endpoint: string;
  description: string;
  schema: SchemaDef;
  extensions: SchemaDef[];
}

type Options = Partial<Omit<AttributeDef, 'name' | 'type' | 'description'>>;

function attr(name: string, type: AttributeType, description: string, o: Options = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: false,
    description,
    required: false,
    caseExact: false,
    mutability: 'readWrite',
    returned: 'default',
    uniqueness: 'none',
    ...o,
  };
}

const str = (name: string, description: string, o: Options = {}) => attr(name, 'string', description, o);
const complex = (name: string, description: string, subAttributes: AttributeDef[], o: Options = {}) =>
  attr(name, 'complex', description, { ...o, subAttributes });

/** The usual shape of multi-valued attributes such as emails (RFC 7643 §2.4). */
function multiValued(
  name: string,
  description: string,
  types: readonly string[],
  valueType: AttributeType = 'string',
  extra: AttributeDef[] = [],
): AttributeDef {
  return complex(
    name,
    description,
    [
      attr('value', valueType, `The ${name} value.`, valueType === 'reference' ? { referenceTypes: ['external'] } : {}),
      str('display', 'A human-readable name, primarily used for display purposes.'),
      str('type', 'A label indicating the function of the value.', types.length ? { canonicalValues: types } : {}),
      attr('primary', 'boolean', 'Whether this is the primary value of the attribute.'),
      ...extra,
    ],
    { multiValued: true },
  );
}

const codingAttributes = (what: string): AttributeDef[] => [
  attr('system', 'reference', `The code system of the ${what} (a URI).`, { required: true, caseExact: true, referenceTypes: ['uri'] }),
  str('code', `The ${what} code.`, { required: true, caseExact: true }),
  str('display', `A human-readable name of the ${what}.`),
];

export const ID_ATTRIBUTE = str('id', 'Unique identifier of the resource, assigned by this server.', {
  caseExact: true,
  mutability: 'readOnly',
  returned: 'always',
  uniqueness: 'server',
});

export const EXTERNAL_ID_ATTRIBUTE = str('externalId', 'Identifier of the resource as defined by the provisioning client.', {
  caseExact: true,
});

export const META_ATTRIBUTE = complex(
  'meta',
  'Resource metadata.',
  [
    str('resourceType', 'The name of the resource type.', { caseExact: true, mutability: 'readOnly' }),
    attr('created', 'dateTime', 'When the resource was added.', { mutability: 'readOnly' }),
    attr('lastModified', 'dateTime', 'When the resource was last changed.', { mutability: 'readOnly' }),
    attr('location', 'reference', 'The URI of the resource.', { caseExact: true, mutability: 'readOnly', referenceTypes: ['uri'] }),
    str('version', 'The version (ETag) of the resource.', { caseExact: true, mutability: 'readOnly' }),
  ],
  { mutability: 'readOnly' },
);

/** Attributes every resource has (RFC 7643 §3.1); they belong to no schema's attribute list. */
export const COMMON_ATTRIBUTES = [ID_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE, META_ATTRIBUTE];

const EMAIL_TYPES = ['work', 'home', 'other'];

export const USER_SCHEMA: SchemaDef = {
  id: CORE_USER_SCHEMA,
  name: 'User',
  description: 'User Account',
  attributes: [
    str('userName', 'Unique identifier for the user, used to sign in. Unique regardless of case.', {
      required: true,
      uniqueness: 'server',
    }),
    complex('name', "The components of the user's name.", [
      str('formatted', 'The full name, formatted for display.'),
      str('familyName', 'The family name.'),
      str('givenName', 'The given name.'),
      str('middleName', 'The middle name(s).'),
      str('honorificPrefix', 'The honorific prefix(es), e.g. "Dr.".'),
      str('honorificSuffix', 'The honorific suffix(es), e.g. "III".'),
    ]),
    str('displayName', 'The name of the user, suitable for display to end-users.'),
    str('nickName', 'The casual way to address the user.'),
    attr('profileUrl', 'reference', "A URI of the user's online profile.", { referenceTypes: ['external'] }),
    str('title', "The user's title, such as Vice President."),
    str('userType', 'The relationship between the organization and the user.'),
    str('preferredLanguage', 'Preferred written or spoken language (RFC 7231 Accept-Language form).'),
    str('locale', 'Default location for localizing, e.g. en-US.'),
    str('timezone', 'Time zone in IANA form, e.g. Europe/Berlin.'),
    attr('active', 'boolean', 'Whether the user may sign in. Inactive users cannot.'),
    str('password', 'The password; write-only, never returned, stored as an argon2id hash.', {
      mutability: 'writeOnly',
      returned: 'never',
      caseExact: true,
    }),
    multiValued('emails', 'Email addresses of the user.', EMAIL_TYPES),
    multiValued('phoneNumbers', 'Phone numbers of the user.', ['work', 'home', 'mobile', 'fax', 'pager', 'other']),
    multiValued('ims', 'Instant messaging addresses of the user.', ['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo']),
    multiValued('photos', 'URLs of photos of the user.', ['photo', 'thumbnail'], 'reference'),
    complex(
      'addresses',
      'Physical mailing addresses of the user.',
      [
        str('formatted', 'The full mailing address, formatted for display.'),
        str('streetAddress', 'The street address.'),
        str('locality', 'The city or locality.'),
        str('region', 'The state or region.'),
        str('postalCode', 'The postal code.'),
        str('country', 'The country (ISO 3166-1 alpha-2).'),
        str('type', 'A label indicating the function of the address.', { canonicalValues: ['work', 'home', 'other'] }),
        attr('primary', 'boolean', 'Whether this is the primary address.'),
      ],
      { multiValued: true },
    ),
    complex(
      'groups',
      'The groups the user belongs to; read-only, change membership through the Group resource.',
      [
        str('value', 'The id of the group.', { mutability: 'readOnly', caseExact: true }),
        attr('$ref', 'reference', 'The URI of the group.', { mutability: 'readOnly', caseExact: true, referenceTypes: ['Group'] }),
        str('display', 'The name of the group.', { mutability: 'readOnly' }),
        str('type', 'How the user is a member (direct).', { mutability: 'readOnly', canonicalValues: ['direct'] }),
      ],
      { multiValued: true, mutability: 'readOnly' },
    ),
    multiValued('entitlements', 'Entitlements of the user.', []),
    multiValued('roles', 'Roles of the user (free-form, see the SMART extension for coded roles).', []),
    multiValued('x509Certificates', 'X.509 certificates of the user (DER, base64).', [], 'binary'),
  ],
};

export const ENTERPRISE_USER_SCHEMA_DEF: SchemaDef = {
  id: ENTERPRISE_USER_SCHEMA,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    str('employeeNumber', 'Identifier assigned by the organization.'),
    str('costCenter', 'Name of a cost center.'),
    str('organization', 'Name of an organization.'),
    str('division', 'Name of a division.'),
    str('department', 'Name of a department.'),
    complex('manager', "The user's manager.", [
      str('value', 'The id of the manager in this directory.', { caseExact: true }),
      attr('$ref', 'reference', 'The URI of the manager.', { caseExact: true, referenceTypes: ['User'] }),
      str('displayName', 'The name of the manager.', { mutability: 'readOnly' }),
    ]),
  ],
};

export const SMART_USER_SCHEMA_DEF: SchemaDef = {
  id: SMART_USER_SCHEMA,
  name: 'SmartUser',
  description: 'What a SMART on FHIR authorization server needs to know about a user',
  strict: true,
  attributes: [
    attr(
      'fhirUser',
      'reference',
      "The user's FHIR resource: Practitioner/<id>, Patient/<id>, RelatedPerson/<id> or Person/<id>, or an absolute http(s) URL ending in one.",
      {
        caseExact: true,
        referenceTypes: ['Practitioner', 'Patient', 'RelatedPerson', 'Person'],
      },
    ),
    complex(
      'proxyPatients',
      'Patients this user may act for (proxy access), e.g. a parent for a child.',
      [
        str('value', 'The Patient id, or Patient/<id>.', { required: true, caseExact: true }),
        str('display', "The patient's name as shown when choosing whom to act for."),
      ],
      { multiValued: true },
    ),
    complex(
      'roles',
      'Healthcare-security roles (Codings) of the user; members of groups also hold the roles of their groups.',
      codingAttributes('role'),
      { multiValued: true },
    ),
    attr(
      'staff',
      'boolean',
      'A member of staff: with a Practitioner fhirUser, may let apps have user/ scopes (as may holders of a staff role of the HCS policy).',
    ),
    str('purposesOfUse', 'Purposes of use the user may assert (v3-ActReason codes such as TREAT).', { multiValued: true, caseExact: true }),
    str('clearance', 'The highest v3-Confidentiality label the user may see (U < L < M < N < R < V).', {
      caseExact: true,
      canonicalValues: CONFIDENTIALITY,
      restrictValues: true,
    }),
    str('npi', 'National Provider Identifier (10 digits with a valid check digit), sent to resource servers in tokens.', {
      caseExact: true,
    }),
    attr(
      'organizationId',
      'reference',
      "The user's organization as a URI such as urn:oid:1.2.3 (its name is the enterprise extension's organization).",
      { caseExact: true, referenceTypes: ['uri'] },
    ),
    attr(
      'breakTheGlass',
      'boolean',
      'May assert an emergency purpose of use (ETREAT, BTG) with a stated reason; every use is flagged for review.',
    ),
    attr('testAccount', 'boolean', 'A test account: its tokens carry purpose of use HTEST only, so resource servers serve it test data.'),
    attr('locked', 'boolean', 'True while sign-in is locked after repeated failures; write false to unlock. Other writes are refused.'),
    complex(
      'secondFactors',
      'The second factors the user has enrolled (authenticator apps, security keys, passkeys). Read-only: PATCH remove resets them all, or one with a filter such as [value eq "<id>"].',
      [
        str('value', 'The id of the factor.', { mutability: 'readOnly', caseExact: true }),
        str('type', 'totp (an authenticator app) or webauthn (a security key or passkey).', {
          mutability: 'readOnly',
          caseExact: true,
          canonicalValues: ['totp', 'webauthn'],
        }),
        str('display', 'The name the user gave it.', { mutability: 'readOnly' }),
        attr('created', 'dateTime', 'When it was enrolled.', { mutability: 'readOnly' }),
      ],
      { multiValued: true, mutability: 'readOnly' },
    ),
    attr('recoveryCodesLeft', 'integer', 'Unused one-time recovery codes. Read-only; removing secondFactors removes them too.', {
      mutability: 'readOnly',
    }),
  ],
};

export const GROUP_SCHEMA: SchemaDef = {
  id: CORE_GROUP_SCHEMA,
  name: 'Group',
  description: 'Group',
  attributes: [
    str('displayName', 'A human-readable name for the group.', { required: true }),
    complex(
      'members',
      'The users in the group.',
      [
        str('value', 'The id of a user.', { caseExact: true, mutability: 'immutable' }),
        attr('$ref', 'reference', 'The URI of the user.', { caseExact: true, mutability: 'immutable', referenceTypes: ['User'] }),
        str('display', 'The name of the user.', { mutability: 'readOnly' }),
        str('type', 'The type of member; only User is supported.', { mutability: 'immutable', canonicalValues: ['User'] }),
      ],
      { multiValued: true },
    ),
  ],
};

export const SMART_GROUP_SCHEMA_DEF: SchemaDef = {
  id: SMART_GROUP_SCHEMA,
  name: 'SmartGroup',
  description: 'Roles a group confers on its members',
  strict: true,
  attributes: [
    complex('roles', 'Healthcare-security roles (Codings) every member holds.', codingAttributes('role'), { multiValued: true }),
  ],
};

export const USER_RESOURCE: ResourceTypeDef = {
  name: 'User',
  endpoint: '/Users',
  description: 'User Account',
  schema: USER_SCHEMA,
  extensions: [ENTERPRISE_USER_SCHEMA_DEF, SMART_USER_SCHEMA_DEF],
};

export const GROUP_RESOURCE: ResourceTypeDef = {
  name: 'Group',
  endpoint: '/Groups',
  description: 'Group',
  schema: GROUP_SCHEMA,
  extensions: [SMART_GROUP_SCHEMA_DEF],
};

export const RESOURCE_TYPES = [USER_RESOURCE, GROUP_RESOURCE];
export const ALL_SCHEMAS = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA_DEF, SMART_USER_SCHEMA_DEF, GROUP_SCHEMA, SMART_GROUP_SCHEMA_DEF];
