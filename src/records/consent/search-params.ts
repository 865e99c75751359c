import type { ConsentSearch } from './consent-store.js';
import { FhirError } from '../../domain/fhir/errors.js';
import { patientIdOf } from '../../domain/fhir/references.js';
import { applyDate, badValue, pageCount, pageOffset, single } from '../../domain/fhir/search-params.js';

/**
 * The Consent search parameters the API supports (FHIR R4 search syntax): `patient`, `status`
 * (comma = or), `actor`, `date` (repeatable, prefixes eq ge gt le lt), `_count` (capped at
 * MAX_COUNT), `_offset`, `_revinclude=Provenance:target`. Anything else is refused rather than silently ignored: a search that drops a filter would
 * return more than the caller asked for.
 */

const STATUSES = new Set(['draft', 'proposed', 'active', 'rejected', 'inactive', 'entered-in-error']);
const KNOWN = new Set(['patient', 'status', 'actor', 'date', '_count', '_offset', '_format', '_revinclude']);

export function parseConsentSearch(query: Record<string, string | string[] | undefined>): ConsentSearch {
  for (const name of Object.keys(query)) {
    if (!KNOWN.has(name))
      throw new FhirError(
        400,
        'not-supported',
        `the search parameter ${JSON.stringify(name)} is not supported (patient, status, actor, date, _count, _offset, _revinclude)`,
      );
  }
  const q: ConsentSearch = {
    count: pageCount(single('_count', query._count)),
    offset: pageOffset(single('_offset', query._offset)),
  };
  const patient = single('patient', query.patient);
  if (patient !== undefined) {
    const id = patientIdOf(patient);
    if (!id) throw badValue('patient must be a Patient id or reference (Patient/<id>)');
    q.patient = id;
  }
  const status = single('status', query.status);
  if (status !== undefined) {
    const codes = status.split(',').map((s) => s.trim());
    const unknown = codes.find((c) => !STATUSES.has(c));
    if (unknown !== undefined) throw badValue(`status ${JSON.stringify(unknown)} is not a Consent status`);
    q.status = codes;
  }
  const actor = single('actor', query.actor);
  if (actor !== undefined) {
    if (!actor.trim()) throw badValue('actor must name a client id or a Device reference');
    q.actor = actor.trim();
  }
  const dates = query.date === undefined ? [] : Array.isArray(query.date) ? query.date : [query.date];
  for (const d of dates) applyDate(q, d);
  return q;
}

/** Whether a Consent search asks for `_revinclude=Provenance:target`, the only one supported. */
export function wantsProvenance(query: Record<string, string | string[] | undefined>): boolean {
  const raw = query._revinclude;
  if (raw === undefined) return false;
  for (const value of Array.isArray(raw) ? raw : [raw]) {
    if (value !== 'Provenance:target')
      throw new FhirError(400, 'not-supported', `_revinclude=${value} is not supported (only Provenance:target)`);
  }
  return true;
}
