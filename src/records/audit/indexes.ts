import type { AuditEvent, Coding } from './audit-event.js';

/**
 * What an event is found by: the search parameters of GET /fhir/AuditEvent, as (param, value)
 * pairs. Each pair is one posting list per chain (postings.ts). Values are normalised here once,
 * so search only has to normalise the query the same way (a search without parameters needs no
 * list: it is a seq range of the chain):
 *  - patient: `Patient/<id>` from agent.who and entity.what references (absolute URLs reduced to
 *    their last two segments, as FHIR reference search matches them);
 *  - agent: the agent's who.reference (`Type/id`) and who.identifier value (a client id, an
 *    account id), and altId (the parameter `altid`);
 *  - entity: each entity.what reference (`Type/id`: the patient, a Consent, a resource read). This server's own agent (BALP
 *    AuthzOauthService) is on every event, so it is not indexed: that list would be the whole
 *    trail again, for a query that is the same as no filter;
 *  - type, subtype: `system|code` and bare `code`;
 *  - outcome, action: the code.
 */

export type IndexParam = 'disclosure' | 'patient' | 'agent' | 'altid' | 'entity' | 'type' | 'subtype' | 'outcome' | 'action';

/** BALP agent type of this authorization server itself. */
const AUTH_SERVER_AGENT = 'AuthzOauthService';

const PATIENT_REF = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;
const TYPED_REF = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

/** `Patient/<id>` of a reference to a Patient, else undefined. */
export function patientOfReference(reference: string | undefined): string | undefined {
  if (!reference) return undefined;
  const m = PATIENT_REF.exec(reference);
  return m ? `Patient/${m[1]}` : undefined;
}

/** `Type/id` of a relative or absolute literal reference (the form search values take). */
export function relativeOf(reference: string): string {
  const m = TYPED_REF.exec(reference);
  return m ? `${m[1]}/${m[2]}` : reference;
}

/**
 * Code systems of the event types and subtypes this server writes. Their codes are indexed as
 * `system|code` only, and a bare-code search looks in each of them (`codeSearchValues`): one
 * posting per coding instead of two. Codes of any other system (an event another tool wrote) are
 * indexed both ways. Listed here rather than read from events/vocabulary.ts, which imports this
 * module through disclosure.ts.
 */
export const EVENT_CODE_SYSTEMS: readonly string[] = [
  'http://dicom.nema.org/resources/ontology/DCM',
  'http://terminology.hl7.org/CodeSystem/audit-event-type',
  'http://hl7.org/fhir/restful-interaction',
  'urn:ihe:event-type-code',
  'https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType',
  'https://smart-authz.dev/fhir/CodeSystem/audit-event-subtype',
];
const KNOWN_CODE_SYSTEMS = new Set(EVENT_CODE_SYSTEMS);

function tokenValues(codings: Array<Coding | undefined>): string[] {
  const out: string[] = [];
  for (const c of codings) {
    if (!c?.code) continue;
    if (!c.system || !KNOWN_CODE_SYSTEMS.has(c.system)) out.push(c.code);
    if (c.system) out.push(`${c.system}|${c.code}`);
  }
  return out;
}

/** The index values a `type` or `subtype` search value matches (a bare code: in every known system too). */
export function codeSearchValues(value: string): string[] {
  return value.includes('|') ? [value] : [value, ...EVENT_CODE_SYSTEMS.map((system) => `${system}|${value}`)];
}

/** Every patient the event is about, as `Patient/<id>`. */
export function patientsOf(event: AuditEvent): string[] {
  const found = new Set<string>();
  for (const a of event.agent) {
    const p = patientOfReference(a.who?.reference);
    if (p) found.add(p);
  }
  for (const e of event.entity ?? []) {
    const p = patientOfReference(e.what?.reference);
    if (p) found.add(p);
  }
  return [...found];
}

export function indexEntries(event: AuditEvent): Array<[IndexParam, string]> {
  const pairs = new Map<string, [IndexParam, string]>();
  const add = (param: IndexParam, value: string | undefined) => {
    // Values become part of a key name: bounded, and never empty.
    if (!value || value.length > 512) return;
    pairs.set(`${param}\u0000${value}`, [param, value]);
  };
  for (const p of patientsOf(event)) add('patient', p);
  for (const a of event.agent) {
    if (a.type?.coding?.some((c) => c.code === AUTH_SERVER_AGENT)) continue;
    if (a.who?.reference) add('agent', relativeOf(a.who.reference));
    add('agent', a.who?.identifier?.value);
    add('altid', a.altId);
  }
  for (const e of event.entity ?? []) if (e.what?.reference) add('entity', relativeOf(e.what.reference));
  for (const v of tokenValues([event.type])) add('type', v);
  for (const v of tokenValues(event.subtype ?? [])) add('subtype', v);
  add('outcome', event.outcome);
  add('action', event.action);
  return [...pairs.values()];
}

/**
 * A short list of index entries that keeps each (param, value) once and drops what cannot be a key
 * part (empty, or over 512 characters): for the compact forms, which read their entries straight
 * off a record. At most a dozen entries, so a scan is cheaper than a Map's key per entry.
 */
export function entryList(): { out: Array<[IndexParam, string]>; add(param: IndexParam, value: string | undefined): void } {
  const out: Array<[IndexParam, string]> = [];
  return {
    out,
    add(param, value) {
      if (!value || value.length > 512) return;
      for (const [p, v] of out) if (p === param && v === value) return;
      out.push([param, value]);
    },
  };
}

/** Index pairs of an event including `disclosure` (the patients whose data it disclosed). */
export function allIndexEntries(event: AuditEvent, disclosed: string[]): Array<[IndexParam, string]> {
  return [...indexEntries(event), ...disclosed.map((p): [IndexParam, string] => ['disclosure', p])];
}
