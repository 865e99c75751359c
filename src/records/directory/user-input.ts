import { invalidValue, mutability } from '../../domain/scim/errors.js';
import { readResource } from './scim/resource-input.js';
import { USER_RESOURCE } from './scim/schema-definitions.js';
import { SMART_USER_SCHEMA, type SmartUserExtension } from './model.js';
import { isPurpose } from '../../domain/hcs/vocabulary.js';
import { isValidNpi } from '../../domain/hcs/npi.js';

/**
 * A User as a client sent it (POST, PUT, or a PATCH result), checked against the schemas and the
 * rules of this server's SMART extension. The password is returned apart and never stored in
 * the resource; `locked` is not stored either (the lock lives in the login lock-out state).
 */

export const MAX_USER_NAME = 256;
export const MAX_PASSWORD = 1024;

const FHIR_TYPES = '(Practitioner|Patient|RelatedPerson|Person)';
const FHIR_ID = '[A-Za-z0-9\\-.]{1,64}';
const RELATIVE_FHIR_USER = new RegExp(`^${FHIR_TYPES}/${FHIR_ID}$`);
const ABSOLUTE_FHIR_USER_PATH = new RegExp(`/${FHIR_TYPES}/${FHIR_ID}$`);
const PATIENT_REFERENCE = new RegExp(`^(Patient/)?${FHIR_ID}$`);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export interface ParsedUser {
  /** Canonical resource without id, meta, groups, password or locked. */
  user: Record<string, unknown>;
  password?: string;
  /** `locked` as written: false asks to lift a lock-out; true is only accepted while locked. */
  locked?: boolean;
}

export function isValidFhirUser(value: string): boolean {
  if (RELATIVE_FHIR_USER.test(value)) return true;
  const url = URL.parse(value);
  return (
    !!url &&
    (url.protocol === 'https:' || url.protocol === 'http:') &&
    !url.search &&
    !url.hash &&
    ABSOLUTE_FHIR_USER_PATH.test(url.pathname)
  );
}

function checkSmartExtension(ext: SmartUserExtension): void {
  const label = SMART_USER_SCHEMA;
  if (ext.fhirUser !== undefined && !isValidFhirUser(ext.fhirUser)) {
    throw invalidValue(
      `${label}:fhirUser must be Practitioner/<id>, Patient/<id>, RelatedPerson/<id> or Person/<id>, or an absolute http(s) URL ending in one`,
    );
  }
  ext.proxyPatients?.forEach((p, i) => {
    if (!PATIENT_REFERENCE.test(p.value)) throw invalidValue(`${label}:proxyPatients[${i}].value must be a Patient id or Patient/<id>`);
  });
  if (ext.proxyPatients) {
    const seen = new Set<string>();
    ext.proxyPatients = ext.proxyPatients.filter((p) => {
      const id = p.value.replace(/^Patient\//, '');
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }
  ext.roles?.forEach((r, i) => {
    if (!URL.canParse(r.system)) throw invalidValue(`${label}:roles[${i}].system must be an absolute URI naming the code system`);
  });
  ext.purposesOfUse?.forEach((code, i) => {
    if (!isPurpose(code)) throw invalidValue(`${label}:purposesOfUse[${i}] must be a v3-PurposeOfUse code such as TREAT, HPAYMT or HRESCH`);
  });
  if (ext.purposesOfUse) ext.purposesOfUse = [...new Set(ext.purposesOfUse)];
  if (ext.npi !== undefined && !isValidNpi(ext.npi))
    throw invalidValue(`${label}:npi must be a National Provider Identifier: 10 digits with a valid check digit`);
  if (ext.organizationId !== undefined && (!URL.canParse(ext.organizationId) || CONTROL.test(ext.organizationId))) {
    throw invalidValue(`${label}:organizationId must be an absolute URI such as urn:oid:2.16.840.1.113883.19`);
  }
}

export function parseUserInput(input: unknown, current: { locked: boolean } = { locked: false }): ParsedUser {
  const { resource, writeOnly } = readResource(input, USER_RESOURCE, { active: true });
  const userName = resource.userName as string;
  if (!userName.length || userName.length > MAX_USER_NAME) throw invalidValue(`userName must have 1 to ${MAX_USER_NAME} characters`);
  if (userName.trim() !== userName || CONTROL.test(userName))
    throw invalidValue('userName must not start or end with white space or contain control characters');

  const parsed: ParsedUser = { user: resource };
  if (writeOnly.password !== undefined) {
    const password = writeOnly.password;
    if (typeof password !== 'string' || !password.length || password.length > MAX_PASSWORD) {
      throw invalidValue(`password must be a string of 1 to ${MAX_PASSWORD} characters`);
    }
    parsed.password = password;
  }

  const ext = resource[SMART_USER_SCHEMA] as SmartUserExtension | undefined;
  if (ext) {
    checkSmartExtension(ext);
    if (ext.locked !== undefined) {
      if (ext.locked && !current.locked)
        throw mutability(
          `${SMART_USER_SCHEMA}:locked can only be set to false (to lift a lock-out); accounts lock themselves after repeated failed sign-ins`,
        );
      parsed.locked = ext.locked;
      delete ext.locked;
    }
    if (!Object.keys(ext).length) {
      delete resource[SMART_USER_SCHEMA];
      resource.schemas = (resource.schemas as string[]).filter((s) => s !== SMART_USER_SCHEMA);
    }
  }
  return parsed;
}
