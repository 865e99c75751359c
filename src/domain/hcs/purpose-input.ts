import { LEGACY_ACT_REASON, SYSTEMS, isPurpose } from './vocabulary.js';

/**
 * A purpose of use as clients send it, in any of the spellings the standards use:
 *
 * - a bare code (`TREAT`), as SMART apps send `purpose_of_use`;
 * - `urn:oid:2.16.840.1.113883.5.8#TREAT`, UDAP's preferred form in `hl7-b2b`;
 * - `<system>#TREAT` or `<system>|TREAT` with the THO URL (or its legacy FHIR URL);
 * - `{ "system": "...", "code": "TREAT" }`, a FHIR Coding, as IUA sends it.
 *
 * Anything else, a code outside v3-PurposeOfUse or another code system, is refused with a sentence
 * saying which: a purpose is a policy input, so it is never silently dropped.
 */

export class PurposeInputError extends Error {}

const ACT_REASON_SYSTEMS = new Set<string>([SYSTEMS.actReason, ...LEGACY_ACT_REASON]);
const CODE = /^[A-Z][A-Z0-9]{1,19}$/;
/** Most purposes one request may assert; a handful is already unusual. */
export const MAX_PURPOSES = 8;
const MAX_ECHO = 80;

function shown(value: string): string {
  return JSON.stringify(value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value);
}

function checkedCode(code: string, original: string): string {
  if (!CODE.test(code) || !isPurpose(code))
    throw new PurposeInputError(
      `purpose of use ${shown(original)} is not a v3-PurposeOfUse code (for example TREAT, HPAYMT, HOPERAT, HRESCH, PUBHLTH, ETREAT)`,
    );
  return code;
}

function fromQualified(value: string): string {
  const at = Math.max(value.lastIndexOf('#'), value.lastIndexOf('|'));
  if (at <= 0) return checkedCode(value, value);
  const system = value.slice(0, at);
  if (!ACT_REASON_SYSTEMS.has(system)) {
    throw new PurposeInputError(
      `purpose of use ${shown(value)} names the code system ${shown(system)}; use v3-ActReason (${SYSTEMS.actReason} or urn:oid:2.16.840.1.113883.5.8)`,
    );
  }
  return checkedCode(value.slice(at + 1), value);
}

/** One purpose in any accepted spelling → its v3-ActReason code. */
export function purposeCode(value: unknown): string {
  if (typeof value === 'string') return fromQualified(value.trim());
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { system, code } = value as { system?: unknown; code?: unknown };
    if (typeof code !== 'string') throw new PurposeInputError('a purpose of use Coding needs a code');
    if (system !== undefined && (typeof system !== 'string' || !ACT_REASON_SYSTEMS.has(system))) {
      throw new PurposeInputError(`purpose of use ${shown(code)} names the code system ${shown(String(system))}; use ${SYSTEMS.actReason}`);
    }
    return checkedCode(code, code);
  }
  throw new PurposeInputError('a purpose of use is a code, a system#code string or a Coding');
}

/** A list of purposes → distinct codes in order; one to MAX_PURPOSES of them. */
export function purposeCodes(values: readonly unknown[]): string[] {
  if (values.length > MAX_PURPOSES) throw new PurposeInputError(`at most ${MAX_PURPOSES} purposes of use may be asserted at once`);
  return [...new Set(values.map(purposeCode))];
}

/** The `purpose_of_use` authorization parameter: space-separated purposes in any string spelling. */
export function purposeParameter(value: string): string[] {
  const parts = value.split(' ').filter(Boolean);
  if (!parts.length) throw new PurposeInputError('purpose_of_use is empty');
  return purposeCodes(parts);
}
