import { FhirError } from '../../domain/fhir/errors.js';
import type { ProvenanceSearch } from './consent-store.js';
import { patientIdOf, relativeReference } from '../../domain/fhir/references.js';
import { applyDate, pageCount, pageOffset, single } from '../../domain/fhir/search-params.js';

/**
 * The Provenance search parameters the API supports (FHIR R4 search syntax): `target` (a Consent
 * reference, optionally version-specific), `patient` (the patient of the target Consent),
 * `recorded` (repeatable, prefixes eq ge gt le lt), `_count` (capped), `_offset`. Anything else is
 * refused rather than silently ignored.
 */

const KNOWN = new Set(['target', 'patient', 'recorded', '_count', '_offset', '_format']);
const VERSION = /\/_history\/(\d{1,9})$/;

function badValue(diagnostics: string): FhirError {
  return new FhirError(400, 'value', diagnostics);
}

/** A parsed search; `matchesNothing` when it targets something that has no Provenance here. */
export type ParsedProvenanceSearch = ProvenanceSearch & { matchesNothing?: boolean };

export function parseProvenanceSearch(query: Record<string, string | string[] | undefined>): ParsedProvenanceSearch {
  for (const name of Object.keys(query)) {
    if (!KNOWN.has(name))
      throw new FhirError(
        400,
        'not-supported',
        `the search parameter ${JSON.stringify(name)} is not supported (target, patient, recorded, _count, _offset)`,
      );
  }
  const q: ParsedProvenanceSearch = {
    count: pageCount(single('_count', query._count)),
    offset: pageOffset(single('_offset', query._offset)),
  };
  const target = single('target', query.target);
  if (target !== undefined) {
    const ref = relativeReference(target);
    if (!ref) throw badValue('target must be a reference such as Consent/<id> or Consent/<id>/_history/<version>');
    // This server records the Provenance of Consents only: any other target has none.
    if (ref.type !== 'Consent') q.matchesNothing = true;
    const version = VERSION.exec(target.trim())?.[1];
    q.target = { consentId: ref.id, ...(version ? { version } : {}) };
  }
  const patient = single('patient', query.patient);
  if (patient !== undefined) {
    const id = patientIdOf(patient);
    if (!id) throw badValue('patient must be a Patient id or reference (Patient/<id>)');
    q.patient = id;
  }
  const dates = query.recorded === undefined ? [] : Array.isArray(query.recorded) ? query.recorded : [query.recorded];
  const range: { dateFrom?: number; dateTo?: number } = {};
  for (const d of dates) applyDate(range, d);
  if (range.dateFrom !== undefined) q.recordedFrom = range.dateFrom;
  if (range.dateTo !== undefined) q.recordedTo = range.dateTo;
  return q;
}
