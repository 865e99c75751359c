import { FhirError } from './errors.js';

/**
 * FHIR R4 search syntax shared by this server's search APIs (Consent, Provenance, AuditEvent):
 * single-valued parameters, `_count`/`_offset` paging with Bundle links, and `date` with the
 * eq/ge/gt/le/lt prefixes. Each API lists the parameters it supports and refuses the rest.
 */

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 100;
const MAX_OFFSET = 1_000_000;

/** YYYY, YYYY-MM, YYYY-MM-DD, or a date-time to minutes, seconds or fractions, with a zone (Z if none). */
const DATE_VALUE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

export function badValue(diagnostics: string): FhirError {
  return new FhirError(400, 'value', diagnostics);
}

/** The one value of a parameter that may be given only once. */
export function single(name: string, value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw badValue(`${name} may be given only once`);
  return value;
}

function integer(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value) || Number(value) > max) throw badValue(`${name} must be a whole number from 0 to ${max}`);
  return Number(value);
}

/**
 * A page size: any whole number, capped at MAX_COUNT (FHIR lets a server return fewer than asked;
 * the Bundle's self link shows the size used), as the AuditEvent search does.
 */
export function pageCount(value: string | undefined): number {
  if (value === undefined) return DEFAULT_COUNT;
  if (!/^\d{1,9}$/.test(value)) throw badValue(`_count must be a whole number (at most ${MAX_COUNT} are returned per page)`);
  return Math.min(Number(value), MAX_COUNT);
}

/** `_offset`: where a page starts. */
export function pageOffset(value: string | undefined): number {
  return integer('_offset', value, MAX_OFFSET) ?? 0;
}

/** The first and last millisecond a date value of its precision stands for. */
export function dateRange(value: string): [number, number] {
  const m = DATE_VALUE.exec(value);
  if (!m) throw badValue(`date ${JSON.stringify(value)} is not a FHIR date or dateTime`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = mo === undefined ? undefined : Number(mo) - 1;
  if (month !== undefined && month > 11) throw badValue(`date ${JSON.stringify(value)} has no such month`);
  if (h === undefined) {
    const day = d === undefined ? undefined : Number(d);
    const start = Date.UTC(year, month ?? 0, day ?? 1);
    const end =
      day !== undefined ? Date.UTC(year, month!, day + 1) : month !== undefined ? Date.UTC(year, month + 1, 1) : Date.UTC(year + 1, 0, 1);
    if (day !== undefined && new Date(start).getUTCDate() !== day) throw badValue(`date ${JSON.stringify(value)} has no such day`);
    return [start, end - 1];
  }
  const text = `${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${frac ? frac.slice(0, 4) : ''}${zone ?? 'Z'}`;
  const start = Date.parse(text);
  if (Number.isNaN(start)) throw badValue(`date ${JSON.stringify(value)} is not a valid date-time`);
  const width = s === undefined ? 60_000 : frac ? 1 : 1000;
  return [start, start + width - 1];
}

/** Narrows `q` by one `date` parameter value (prefixes eq ge gt le lt); shared with the AuditEvent search. */
export function applyDate(q: { dateFrom?: number; dateTo?: number }, raw: string): void {
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$/.exec(raw)!;
  const prefix = m[1] ?? 'eq';
  const [lo, hi] = dateRange(m[2]!);
  const raise = (v: number) => (q.dateFrom = q.dateFrom === undefined ? v : Math.max(q.dateFrom, v));
  const lower = (v: number) => (q.dateTo = q.dateTo === undefined ? v : Math.min(q.dateTo, v));
  switch (prefix) {
    case 'eq':
      raise(lo);
      lower(hi);
      break;
    case 'ge':
      raise(lo);
      break;
    case 'gt':
      raise(hi + 1);
      break;
    case 'le':
      lower(hi);
      break;
    case 'lt':
      lower(lo - 1);
      break;
    default:
      throw new FhirError(400, 'not-supported', `the date prefix ${prefix} is not supported (use eq, ge, gt, le or lt)`);
  }
}

/** The query string of a search page, with the same filters and another offset. */
function pageQuery(query: Record<string, string | string[] | undefined>, count: number, offset: number): string {
  const params = new URLSearchParams();
  for (const name of Object.keys(query).sort()) {
    if (name === '_count' || name === '_offset') continue;
    const value = query[name];
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) params.append(name, v);
  }
  params.set('_count', String(count));
  params.set('_offset', String(offset));
  return params.toString();
}

/** A searchset's `self`, `next` and `previous` links for one page of `total` matches. */
export function pageLinks(
  base: string,
  query: Record<string, string | string[] | undefined>,
  page: { count: number; offset: number; total: number },
): Array<{ relation: string; url: string }> {
  const { count, offset, total } = page;
  const links = [{ relation: 'self', url: `${base}?${pageQuery(query, count, offset)}` }];
  if (count > 0 && offset + count < total) links.push({ relation: 'next', url: `${base}?${pageQuery(query, count, offset + count)}` });
  if (offset > 0) links.push({ relation: 'previous', url: `${base}?${pageQuery(query, count, Math.max(0, offset - count))}` });
  return links;
}
