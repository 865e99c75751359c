import type { Logger } from 'pino';
import type { FhirServer } from '../../../platform/config/schema.js';
import { FHIR_ID } from '../facts/fhir-user.js';
import type { ServiceCredential } from './service-credential.js';

/**
 * The FHIR searches behind the patient and encounter pickers, made with this server's own
 * service credential. Every failure (unreachable, slow, refused, not FHIR) becomes a
 * FhirLookupError with a sentence fit for the page; responses are size-capped, and paging only
 * ever follows links on the FHIR base being searched (the server must not be steered elsewhere
 * with our token).
 */

export class FhirLookupError extends Error {
  constructor(
    readonly userMessage: string,
    detail: string,
  ) {
    super(detail);
  }
}

export interface PatientSummary {
  id: string;
  name: string;
  birthDate?: string;
  gender?: string;
  /** Identifiers as "value (system)" strings, at most three. */
  identifiers: string[];
}

export interface EncounterSummary {
  id: string;
  description: string;
  /** Start date (YYYY-MM-DD) when known. */
  date?: string;
  status?: string;
  /** The patient id of Encounter.subject, when it references a Patient. */
  patient?: string;
}

export interface Page<T> {
  items: T[];
  /** The Bundle's `next` link, only when it is on the same FHIR base. */
  next?: string;
}

export interface PatientCriteria {
  name?: string;
  birthdate?: string;
  identifier?: string;
}

export interface FhirDirectoryDeps {
  credential: Pick<ServiceCredential, 'bearer' | 'invalidate'>;
  logger?: Logger;
  timeoutMs?: number;
  maxBytes?: number;
  fetch?: typeof fetch;
}

export const PAGE_SIZE = 10;
const UNAVAILABLE = 'The patient directory is not answering right now. Try again in a moment.';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() ? v.trim() : undefined;
}

function humanName(names: unknown): string | undefined {
  if (!Array.isArray(names)) return undefined;
  const list = names.filter(isObject);
  const pick = list.find((n) => n.use === 'official') ?? list.find((n) => n.use === 'usual') ?? list[0];
  if (!pick) return undefined;
  const text = str(pick.text);
  if (text) return text;
  const parts = [...(Array.isArray(pick.prefix) ? pick.prefix : []), ...(Array.isArray(pick.given) ? pick.given : []), pick.family]
    .map(str)
    .filter(Boolean);
  return parts.length ? parts.join(' ') : undefined;
}

function conceptText(concept: unknown): string | undefined {
  if (!isObject(concept)) return undefined;
  if (str(concept.text)) return str(concept.text);
  const codings = Array.isArray(concept.coding) ? concept.coding.filter(isObject) : [];
  return codings.map((c) => str(c.display) ?? str(c.code)).find(Boolean);
}

export function patientSummary(resource: Json): PatientSummary | undefined {
  const id = str(resource.id);
  if (resource.resourceType !== 'Patient' || !id || !FHIR_ID.test(id)) return undefined;
  const identifiers = (Array.isArray(resource.identifier) ? resource.identifier.filter(isObject) : [])
    .map((i) => {
      const value = str(i.value);
      if (!value) return undefined;
      const label = conceptText(i.type) ?? str(i.system);
      return label ? `${value} (${label})` : value;
    })
    .filter((v): v is string => Boolean(v))
    .slice(0, 3);
  const summary: PatientSummary = { id, name: humanName(resource.name) ?? `Patient ${id}`, identifiers };
  const birthDate = str(resource.birthDate);
  const gender = str(resource.gender);
  if (birthDate) summary.birthDate = birthDate;
  if (gender) summary.gender = gender;
  return summary;
}

export function encounterSummary(resource: Json): EncounterSummary | undefined {
  const id = str(resource.id);
  if (resource.resourceType !== 'Encounter' || !id || !FHIR_ID.test(id)) return undefined;
  const type = Array.isArray(resource.type) ? resource.type.map(conceptText).find(Boolean) : undefined;
  const klass = isObject(resource.class) ? (str(resource.class.display) ?? str(resource.class.code)) : undefined;
  const reason = Array.isArray(resource.reasonCode) ? resource.reasonCode.map(conceptText).find(Boolean) : undefined;
  const summary: EncounterSummary = { id, description: [type ?? klass ?? 'Encounter', reason].filter(Boolean).join(': ') };
  const start = isObject(resource.period) ? str(resource.period.start) : undefined;
  if (start) summary.date = start.slice(0, 10);
  const status = str(resource.status);
  if (status) summary.status = status;
  const subject = isObject(resource.subject) ? str(resource.subject.reference) : undefined;
  const patient = subject ? /(?:^|\/)Patient\/([A-Za-z0-9.-]{1,64})$/.exec(subject)?.[1] : undefined;
  if (patient) summary.patient = patient;
  return summary;
}

/** True when `url` lies on `base` (same origin, path under the base path), with no credentials. */
export function onBase(url: string, base: string): boolean {
  const u = URL.parse(url);
  const b = URL.parse(base);
  if (!u || !b || u.username || u.password || u.origin !== b.origin) return false;
  const prefix = b.pathname.replace(/\/+$/, '');
  return u.pathname === prefix || u.pathname.startsWith(`${prefix}/`);
}

const BIRTH_DATE = /^\d{4}(-\d{2}(-\d{2})?)?$/;

/** Checks and trims search criteria; returns a problem sentence for the form when they are unusable. */
export function normaliseCriteria(input: PatientCriteria): PatientCriteria | { problem: string } {
  const out: PatientCriteria = {};
  const name = input.name?.trim();
  const birthdate = input.birthdate?.trim();
  const identifier = input.identifier?.trim();
  if (name) {
    if (name.length > 100) return { problem: 'The name may be at most 100 characters.' };
    out.name = name;
  }
  if (birthdate) {
    if (!BIRTH_DATE.test(birthdate)) return { problem: 'Enter the birth date as YYYY-MM-DD (or YYYY-MM, or YYYY).' };
    out.birthdate = birthdate;
  }
  if (identifier) {
    if (identifier.length > 100) return { problem: 'The identifier may be at most 100 characters.' };
    out.identifier = identifier;
  }
  if (!out.name && !out.birthdate && !out.identifier) return { problem: 'Enter a name, a birth date or an identifier to search for.' };
  return out;
}

export class FhirDirectory {
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly fetch: typeof fetch;

  constructor(private readonly deps: FhirDirectoryDeps) {
    this.timeoutMs = deps.timeoutMs ?? 5000;
    this.maxBytes = deps.maxBytes ?? 2 * 1024 * 1024;
    this.fetch = deps.fetch ?? globalThis.fetch;
  }

  async searchPatients(server: FhirServer, criteria: PatientCriteria): Promise<Page<PatientSummary>> {
    const query = new URLSearchParams();
    if (criteria.name) query.set('name', criteria.name);
    if (criteria.birthdate) query.set('birthdate', criteria.birthdate);
    if (criteria.identifier) query.set('identifier', criteria.identifier);
    query.set('_count', String(PAGE_SIZE));
    return this.searchPage(server, `${server.base}/Patient?${query}`, patientSummary);
  }

  /** The page a previous search's `next` link names; refused unless it is on the same base. */
  async patientsAt(server: FhirServer, url: string): Promise<Page<PatientSummary>> {
    if (!onBase(url, server.base))
      throw new FhirLookupError(
        'That page of results is not available. Search again.',
        `next link off the FHIR base: ${url.slice(0, 200)}`,
      );
    return this.searchPage(server, url, patientSummary);
  }

  async readPatient(server: FhirServer, id: string): Promise<PatientSummary | undefined> {
    if (!FHIR_ID.test(id)) return undefined;
    const resource = await this.get(server, `${server.base}/Patient/${id}`, true);
    return resource ? patientSummary(resource) : undefined;
  }

  async encountersOf(server: FhirServer, patient: string): Promise<Page<EncounterSummary>> {
    const query = new URLSearchParams({ patient, _count: String(PAGE_SIZE), _sort: '-date' });
    return this.searchPage(server, `${server.base}/Encounter?${query}`, encounterSummary);
  }

  async readEncounter(server: FhirServer, id: string): Promise<EncounterSummary | undefined> {
    if (!FHIR_ID.test(id)) return undefined;
    const resource = await this.get(server, `${server.base}/Encounter/${id}`, true);
    return resource ? encounterSummary(resource) : undefined;
  }

  private async searchPage<T>(server: FhirServer, url: string, summarise: (r: Json) => T | undefined): Promise<Page<T>> {
    const bundle = await this.get(server, url, false);
    if (!bundle || bundle.resourceType !== 'Bundle') throw new FhirLookupError(UNAVAILABLE, `search did not return a Bundle: ${url}`);
    const entries = Array.isArray(bundle.entry) ? bundle.entry.filter(isObject) : [];
    const items = entries
      .filter((e) => !isObject(e.search) || e.search.mode === undefined || e.search.mode === 'match')
      .map((e) => (isObject(e.resource) ? summarise(e.resource) : undefined))
      .filter((v): v is T => v !== undefined);
    const links = Array.isArray(bundle.link) ? bundle.link.filter(isObject) : [];
    const next = str(links.find((l) => l.relation === 'next')?.url);
    return next && onBase(next, server.base) ? { items, next } : { items };
  }

  /** GET with the service token; one retry with a fresh token when the server says 401. */
  private async get(server: FhirServer, url: string, notFoundIsEmpty: boolean): Promise<Json | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(url, {
          headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${await this.deps.credential.bearer(server)}` },
          redirect: 'error',
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        this.deps.logger?.warn({ url, err: { message: (err as Error).message } }, 'FHIR lookup failed');
        throw new FhirLookupError(UNAVAILABLE, `FHIR request failed: ${(err as Error).message}`);
      }
      if (res.status === 401) {
        // A revoked or expired service token: the next lookup must not reuse it either.
        await res.body?.cancel();
        this.deps.credential.invalidate(server);
        if (attempt === 0) continue;
        break;
      }
      if (notFoundIsEmpty && (res.status === 404 || res.status === 410)) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) {
        await res.body?.cancel();
        this.deps.logger?.warn({ url, status: res.status }, 'FHIR lookup refused');
        throw new FhirLookupError(UNAVAILABLE, `FHIR server answered ${res.status}`);
      }
      const parsed = await this.readJson(res);
      if (!isObject(parsed)) throw new FhirLookupError(UNAVAILABLE, 'FHIR server answered with something other than a JSON object');
      return parsed;
    }
    throw new FhirLookupError(UNAVAILABLE, 'FHIR server refused the service token');
  }

  private async readJson(res: Response): Promise<unknown> {
    const reader = res.body?.getReader();
    if (!reader) throw new FhirLookupError(UNAVAILABLE, 'FHIR response had no body');
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > this.maxBytes) {
          await reader.cancel();
          throw new FhirLookupError(UNAVAILABLE, `FHIR response larger than ${this.maxBytes} bytes`);
        }
        chunks.push(value);
      }
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      if (err instanceof FhirLookupError) throw err;
      throw new FhirLookupError(UNAVAILABLE, `FHIR response unreadable: ${(err as Error).message}`);
    }
  }
}
