import type { B2bAssertion, HcsSubject } from './decision.js';
import { isValidNpi } from './npi.js';
import { PurposeInputError, purposeCodes } from './purpose-input.js';
import { SYSTEMS, SYSTEM_OIDS, roleCoding } from './vocabulary.js';
import { type Coding } from '../fhir/types.js';

/**
 * The HL7 UDAP Security IG's B2B authorization extension object (`extensions["hl7-b2b"]` in a
 * backend's client assertion): who the request is for and why. `version` "1", `organization_id`
 * and `purpose_of_use` are required; `subject_*` describe a person behind the request when there is
 * one. Anything malformed is refused with a sentence naming the member (invalid_request).
 */

export class B2bInputError extends Error {}

const NPI_OID = 'urn:oid:2.16.840.1.113883.4.6';
const NUCC = /^[0-9]{3}[0-9A-Z]{6}X$/;
const SNOMED_ID = /^[1-9][0-9]{5,17}$/;
const MAX_TEXT = 200;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function text(b2b: Record<string, unknown>, name: string, required = false): string | undefined {
  const value = b2b[name];
  if (value === undefined) {
    if (required) throw new B2bInputError(`hl7-b2b.${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string' || !value.trim() || value.length > MAX_TEXT || CONTROL.test(value)) {
    throw new B2bInputError(`hl7-b2b.${name} must be a non-empty string of at most ${MAX_TEXT} characters`);
  }
  return value.trim();
}

function uri(b2b: Record<string, unknown>, name: string, required = false): string | undefined {
  const value = text(b2b, name, required);
  if (value !== undefined && !URL.canParse(value))
    throw new B2bInputError(`hl7-b2b.${name} must be an absolute URI (for example urn:oid:2.16.840.1.113883.19)`);
  return value;
}

function uriList(b2b: Record<string, unknown>, name: string): void {
  const value = b2b[name];
  if (value === undefined) return;
  if (!Array.isArray(value) || value.length > 16 || value.some((v) => typeof v !== 'string' || !URL.canParse(v))) {
    throw new B2bInputError(`hl7-b2b.${name} must be an array of absolute URIs`);
  }
}

/** `subject_role`: a NUCC taxonomy code (UDAP's recommendation), a SNOMED CT id, or `<system>#<code>`. */
function roleOf(value: string): Coding {
  if (NUCC.test(value)) return { system: SYSTEMS.nucc, code: value };
  if (SNOMED_ID.test(value)) return roleCoding({ system: SYSTEMS.snomed, code: value });
  const at = value.lastIndexOf('#');
  if (at > 0) {
    const system = value.slice(0, at);
    const code = value.slice(at + 1);
    const oid = system.startsWith('urn:oid:') ? SYSTEM_OIDS[system.slice('urn:oid:'.length)] : undefined;
    if (code && URL.canParse(system)) return roleCoding({ system: oid ?? system, code });
  }
  throw new B2bInputError(
    'hl7-b2b.subject_role must be a NUCC taxonomy code (e.g. 207Q00000X), a SNOMED CT code, or <code system URI>#<code>',
  );
}

/** `subject_id`: UDAP prefers the NPI as `urn:oid:2.16.840.1.113883.4.6#<npi>`. */
function npiOf(subjectId: string | undefined): string | undefined {
  if (!subjectId?.startsWith(`${NPI_OID}#`)) return undefined;
  const npi = subjectId.slice(NPI_OID.length + 1);
  if (!isValidNpi(npi)) throw new B2bInputError('hl7-b2b.subject_id names an NPI that is not 10 digits with a valid check digit');
  return npi;
}

/** The `hl7-b2b` object of an assertion's `extensions`, if any, checked. */
export function b2bAssertionOf(claims: Record<string, unknown>): B2bAssertion | undefined {
  const extensions = claims.extensions;
  if (extensions === undefined) return undefined;
  if (typeof extensions !== 'object' || extensions === null || Array.isArray(extensions))
    throw new B2bInputError('the assertion claim extensions must be a JSON object');
  const raw = (extensions as Record<string, unknown>)['hl7-b2b'];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new B2bInputError('extensions.hl7-b2b must be a JSON object');
  const b2b = raw as Record<string, unknown>;
  if (b2b.version !== '1') throw new B2bInputError('hl7-b2b.version must be "1"');
  const organizationId = uri(b2b, 'organization_id', true)!;
  const list = b2b.purpose_of_use;
  if (!Array.isArray(list) || !list.length)
    throw new B2bInputError('hl7-b2b.purpose_of_use is required: an array such as ["urn:oid:2.16.840.1.113883.5.8#TREAT"]');
  let purposes: string[];
  try {
    purposes = purposeCodes(list);
  } catch (err) {
    if (err instanceof PurposeInputError) throw new B2bInputError(`hl7-b2b.purpose_of_use: ${err.message}`);
    throw err;
  }
  const subjectName = text(b2b, 'subject_name');
  const subjectId = text(b2b, 'subject_id');
  const role = text(b2b, 'subject_role');
  uriList(b2b, 'consent_policy');
  uriList(b2b, 'consent_reference');
  const npi = npiOf(subjectId);
  const organization = text(b2b, 'organization_name');
  const subject: HcsSubject = {
    ...(subjectName ? { name: subjectName } : {}),
    ...(organization ? { organization } : {}),
    organizationId,
    roles: role ? [roleOf(role)] : [],
    ...(npi ? { npi } : {}),
  };
  return { purposes, subject };
}
