import { FhirError } from '../../domain/fhir/errors.js';
import { applyDate } from '../../domain/fhir/search-params.js';
import { patientIdOf, relativeReference } from '../../domain/fhir/references.js';
import { codeSearchValues, type IndexParam } from './indexes.js';
import type { AuditSearch } from './search.js';
import type { Clause, Key } from './lane.js';
import { isChainName } from './chain.js';

/**
 * GET /fhir/AuditEvent search parameters, with FHIR search semantics: a comma inside one value is
 * OR, a repeated parameter is AND. Supported: `patient` (reference), `agent` (reference
 * `Type/id`, or an identifier value such as a client id; `system|value` matches on the value),
 * `altid`, `type`,
 * `subtype` (token: `code`, `system|code`), `outcome`, `action`, `date` (prefixes eq ge gt le lt,
 * repeatable), `_count` (0–200), `_sort` (`-date`, the default, or `date`), and `_cursor` (the
 * opaque paging token of `next`/`previous` links). Unknown parameters are refused (400) unless
 * the request says `Prefer: handling=lenient`, as the FHIR search page allows: a silently dropped
 * filter would hand a security officer more than they asked for, and they would not know.
 */

export const DEFAULT_COUNT = 50;
export const MAX_COUNT = 200;

const TOKEN_PARAMS: Record<string, IndexParam> = { altid: 'altid', type: 'type', subtype: 'subtype', outcome: 'outcome', action: 'action' };
const CONTROL = new Set(['_count', '_sort', '_cursor', '_format']);
const KNOWN = new Set(['patient', 'agent', 'entity', 'date', ...Object.keys(TOKEN_PARAMS), ...CONTROL]);
const OUTCOMES = new Set(['0', '4', '8', '12']);
const ACTIONS = new Set(['C', 'R', 'U', 'D', 'E']);
const MAX_VALUES = 20;

export type Query = Record<string, string | string[] | undefined>;

export interface ParsedAuditSearch extends AuditSearch {
  /** Parameters that were ignored under `handling=lenient`. */
  ignored: string[];
}

function bad(diagnostics: string): FhirError {
  return new FhirError(400, 'value', diagnostics);
}

function all(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function alternatives(name: string, raw: string): string[] {
  const values = raw.split(',').map((v) => v.trim());
  if (values.some((v) => !v)) throw bad(`${name} has an empty value`);
  if (values.length > MAX_VALUES) throw bad(`${name} has more than ${MAX_VALUES} alternatives`);
  return values;
}

function token(name: string, value: string): string {
  const bar = value.indexOf('|');
  if (bar < 0) return value;
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (!code)
    throw new FhirError(400, 'not-supported', `${name}=${value}: a system without a code is not supported (use system|code or code)`);
  return system ? `${system}|${code}` : code;
}

export interface Cursor {
  /** How many matches come before the page (for the links). */
  offset: number;
  asOf: number;
  /** The page starts after this match (next links) ... */
  after?: Key | undefined;
  /** ... or ends before it (previous links). */
  before?: Key | undefined;
}

const MAX_OFFSET = 10_000_000;

/** `[offset, asOf]`, or with a key: `[offset, asOf, [t, chain, seq], "a" | "b"]`. */
export function encodeCursor(c: Cursor): string {
  const key = c.before ?? c.after;
  const parts: unknown[] = [c.offset, c.asOf];
  if (key) parts.push([key.t, key.chain, key.seq], c.before ? 'b' : 'a');
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

class BadCursor extends Error {}

function decodeKey(raw: unknown): Key {
  if (!Array.isArray(raw) || raw.length !== 3) throw new BadCursor();
  const [t, chain, seq] = raw as unknown[];
  if (!Number.isSafeInteger(t) || !isChainName(chain) || !Number.isSafeInteger(seq) || (seq as number) < 1) throw new BadCursor();
  return { t: t as number, chain, seq: seq as number };
}

function decodeCursor(raw: string): Cursor {
  try {
    const [offset, asOf, key, side, ...extra] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown[];
    if (Number.isInteger(offset) && (offset as number) >= 0 && (offset as number) <= MAX_OFFSET && Number.isFinite(asOf) && !extra.length) {
      const cursor: Cursor = { offset: offset as number, asOf: asOf as number };
      if (key === undefined && side === undefined) return cursor;
      if (side === 'a') return { ...cursor, after: decodeKey(key) };
      if (side === 'b') return { ...cursor, before: decodeKey(key) };
    }
  } catch {
    /* not JSON, or not a cursor: the same answer */
  }
  throw bad('_cursor is not a paging token of this server (follow the Bundle links)');
}

function single(name: string, query: Query): string | undefined {
  const values = all(query[name]);
  if (values.length > 1) throw bad(`${name} may be given only once`);
  return values[0];
}

export function parseAuditSearch(query: Query, opts: { lenient?: boolean } = {}): ParsedAuditSearch {
  const ignored: string[] = [];
  for (const name of Object.keys(query)) {
    if (KNOWN.has(name)) continue;
    if (opts.lenient) ignored.push(name);
    else
      throw new FhirError(
        400,
        'not-supported',
        `the search parameter ${JSON.stringify(name)} is not supported (patient, agent, entity, altid, type, subtype, outcome, action, date, _count, _sort)`,
      );
  }
  const clauses: Clause[] = [];
  for (const raw of all(query.patient)) {
    clauses.push({
      param: 'patient',
      values: alternatives('patient', raw).map((v) => {
        const id = patientIdOf(v);
        if (!id) throw bad('patient must be a Patient id or reference (Patient/<id>)');
        return `Patient/${id}`;
      }),
    });
  }
  for (const raw of all(query.agent)) {
    clauses.push({
      param: 'agent',
      values: alternatives('agent', raw).map((v) =>
        v.includes('|') ? token('agent', v).split('|').pop()! : (relativeReference(v)?.reference ?? v),
      ),
    });
  }
  for (const raw of all(query.entity)) {
    clauses.push({
      param: 'entity',
      values: alternatives('entity', raw).map((v) => {
        const ref = relativeReference(v)?.reference;
        if (!ref) throw bad('entity must be a reference (Type/id, or an absolute URL of one)');
        return ref;
      }),
    });
  }
  for (const [name, param] of Object.entries(TOKEN_PARAMS)) {
    for (const raw of all(query[name])) {
      let values = alternatives(name, raw).map((v) => token(name, v));
      if (param === 'type' || param === 'subtype') values = [...new Set(values.flatMap(codeSearchValues))];
      if (name === 'outcome' && values.some((v) => !OUTCOMES.has(v))) throw bad('outcome must be 0, 4, 8 or 12');
      if (name === 'action' && values.some((v) => !ACTIONS.has(v))) throw bad('action must be C, R, U, D or E');
      clauses.push({ param, values });
    }
  }
  const range: { dateFrom?: number; dateTo?: number } = {};
  for (const d of all(query.date)) applyDate(range, d);

  const countRaw = single('_count', query);
  let count = DEFAULT_COUNT;
  if (countRaw !== undefined) {
    if (!/^\d{1,6}$/.test(countRaw)) throw bad(`_count must be a whole number from 0 to ${MAX_COUNT}`);
    // FHIR lets a server return fewer than asked; the cap keeps one page bounded.
    count = Math.min(Number(countRaw), MAX_COUNT);
  }
  const sortRaw = single('_sort', query) ?? '-date';
  if (sortRaw !== '-date' && sortRaw !== 'date')
    throw new FhirError(400, 'not-supported', '_sort may be -date (newest first, the default) or date');
  const cursorRaw = single('_cursor', query);
  const cursor = cursorRaw === undefined ? undefined : decodeCursor(cursorRaw);
  const format = single('_format', query);
  if (format !== undefined && !['json', 'application/json', 'application/fhir+json'].includes(format)) {
    throw new FhirError(406, 'not-supported', '_format must be json (NDJSON is served by GET /fhir/AuditEvent/$export)');
  }
  return {
    clauses,
    ...range,
    sort: sortRaw,
    count,
    offset: cursor?.offset ?? 0,
    ...(cursor ? { asOf: cursor.asOf } : {}),
    ...(cursor?.after ? { after: cursor.after } : {}),
    ...(cursor?.before ? { before: cursor.before } : {}),
    ignored,
  };
}

/** The query string of another page of the same search. */
export function pageQuery(query: Query, ignored: string[], count: number, cursor: Cursor | undefined): string {
  const params = new URLSearchParams();
  for (const name of Object.keys(query).sort()) {
    if (name === '_count' || name === '_cursor' || ignored.includes(name)) continue;
    for (const v of all(query[name])) params.append(name, v);
  }
  params.set('_count', String(count));
  if (cursor && (cursor.offset > 0 || cursor.after || cursor.before)) params.set('_cursor', encodeCursor(cursor));
  return params.toString();
}
