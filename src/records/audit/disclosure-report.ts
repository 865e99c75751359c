import type { AuditEvent, AuditEventAgent, CodeableConcept } from './audit-event.js';
import { disclosedPatients } from './disclosure.js';
import { relativeOf } from './indexes.js';
import { resourceTypesOf } from '../../domain/scopes/scopes.js';
import { search } from './search.js';
import type { AuditStore } from './store.js';

/**
 * The patient's accounting of disclosures ("Who accessed my record"), built from disclosure
 * events (see disclosure.ts): who (the app, and the person or, by policy, only their role and
 * organisation), when, what (resource types and scopes), why (purpose of use) and from where
 * (network address). Rows are de-duplicated: the same app, person and purpose on the same (UTC)
 * day collapse into one row with a count and the first and last time, since an app that
 * refreshes its token every few minutes would otherwise bury everything else.
 *
 * `disclosureView` is the redacted form of one event that a patient may see through the API and
 * in the Bundle download: staff names and account ids only when the policy shows them, no token
 * hashes or ids, no internal grant ids.
 */

export interface DisclosurePolicy {
  showStaffNames: boolean;
}

export interface DisclosureRow {
  day: string;
  first: string;
  last: string;
  count: number;
  app: string;
  /** Staff name (policy permitting), "You", or empty. */
  person: string;
  role: string;
  organization: string;
  resourceTypes: string[];
  scopes: string[];
  purpose: string;
  addresses: string[];
}

const APPLICATION = '110150';
const PERSON_TYPES = new Set(['IRCP', 'humanuser']);
const ORG = 'PROV';
const STAFF_TYPES = /^(Practitioner|PractitionerRole)\//;

function codes(c: CodeableConcept | undefined): string[] {
  return (c?.coding ?? []).map((x) => x.code ?? '').filter(Boolean);
}

function label(c: CodeableConcept): string {
  return c.text ?? c.coding?.map((x) => x.display ?? x.code).find(Boolean) ?? '';
}

function isApp(a: AuditEventAgent): boolean {
  return codes(a.type).includes(APPLICATION);
}

function isPerson(a: AuditEventAgent): boolean {
  return codes(a.type).some((c) => PERSON_TYPES.has(c));
}

function isOrg(a: AuditEventAgent): boolean {
  return codes(a.type).includes(ORG);
}

function appName(a: AuditEventAgent): string {
  return a.who?.display ?? a.who?.identifier?.value ?? a.name ?? 'an unnamed app';
}

/**
 * The app the data went to. When a resource server introspected the token, the event names two
 * applications: the resource server (requestor) and the token's client (not requestor): the
 * client is the recipient, the resource server the way through.
 */
function appOf(event: AuditEvent): string {
  const apps = event.agent.filter(isApp);
  if (!apps.length) return 'an unnamed app';
  if (apps.length === 1) return appName(apps[0]!);
  const recipient = apps.find((a) => !a.requestor) ?? apps[apps.length - 1]!;
  const via = apps.find((a) => a !== recipient && a.requestor);
  return via ? `${appName(recipient)} (through ${appName(via)})` : appName(recipient);
}

function personOf(event: AuditEvent, patient: string, policy: DisclosurePolicy): { person: string; role: string; organization: string } {
  const person = event.agent.find(isPerson);
  const org = event.agent.find(isOrg);
  const organization = org?.who?.display ?? org?.name ?? '';
  if (!person) return { person: '', role: '', organization };
  const reference = person.who?.reference ? relativeOf(person.who.reference) : '';
  const role = (person.role ?? []).map(label).filter(Boolean).join(', ');
  if (reference === patient) return { person: 'You', role, organization };
  const name = person.who?.display ?? person.name ?? '';
  // Staff are named only when the policy says so; anyone else acting on the record (a caregiver
  // with a RelatedPerson record) is the patient's own business and is always named.
  const staff = !reference || STAFF_TYPES.test(reference);
  if (staff && !policy.showStaffNames) return { person: '', role: role || 'A staff member', organization };
  return { person: name || (staff ? 'A staff member' : 'Someone acting for you'), role, organization };
}

function scopesOf(event: AuditEvent): string[] {
  const found = new Set<string>();
  for (const e of event.entity ?? []) {
    for (const d of e.detail ?? []) if (d.type === 'scope' && d.valueString) for (const s of d.valueString.split(' ')) if (s) found.add(s);
  }
  return [...found];
}

function purposeOf(event: AuditEvent): string {
  const purposes = [...(event.purposeOfEvent ?? []), ...event.agent.flatMap((a) => a.purposeOfUse ?? [])].map(label).filter(Boolean);
  return [...new Set(purposes)].join(', ') || 'Not stated';
}

function addressesOf(event: AuditEvent): string[] {
  return [...new Set(event.agent.filter((a) => a.requestor && a.network?.address).map((a) => a.network!.address!))];
}

export function disclosureRows(events: AuditEvent[], patient: string, policy: DisclosurePolicy): DisclosureRow[] {
  const rows = new Map<string, DisclosureRow>();
  for (const event of events) {
    if (!disclosedPatients(event).includes(patient)) continue;
    const day = event.recorded.slice(0, 10);
    const app = appOf(event);
    const who = personOf(event, patient, policy);
    const purpose = purposeOf(event);
    const scopes = scopesOf(event);
    const key = JSON.stringify([day, app, who.person, who.role, who.organization, purpose]);
    const row = rows.get(key);
    if (!row) {
      rows.set(key, {
        day,
        first: event.recorded,
        last: event.recorded,
        count: 1,
        app,
        ...who,
        resourceTypes: resourceTypesOf(scopes),
        scopes,
        purpose,
        addresses: addressesOf(event),
      });
      continue;
    }
    row.count++;
    if (event.recorded < row.first) row.first = event.recorded;
    if (event.recorded > row.last) row.last = event.recorded;
    row.scopes = [...new Set([...row.scopes, ...scopes])];
    row.resourceTypes = resourceTypesOf(row.scopes);
    row.addresses = [...new Set([...row.addresses, ...addressesOf(event)])];
  }
  return [...rows.values()].sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0));
}

/** One event as a patient may see it (see the file comment). */
export function disclosureView(event: AuditEvent, patient: string, policy: DisclosurePolicy): AuditEvent {
  const agent = event.agent.map((a): AuditEventAgent => {
    if (!isPerson(a))
      return {
        ...a,
        ...(a.who
          ? {
              who: {
                ...(a.who.display ? { display: a.who.display } : {}),
                ...(isApp(a) && a.who.identifier ? { identifier: a.who.identifier } : {}),
              },
            }
          : {}),
      };
    const who = personOf(event, patient, policy);
    const { who: _who, name: _name, altId: _alt, policy: _policy, ...rest } = a;
    const display = who.person === 'You' ? undefined : who.person || undefined;
    return { ...rest, ...(who.person === 'You' ? { who: { reference: patient } } : display ? { who: { display } } : {}) };
  });
  const entity = (event.entity ?? [])
    .filter((e) => e.role?.code === '1' || e.detail?.some((d) => d.type === 'scope'))
    .map((e) =>
      e.role?.code === '1'
        ? e
        : {
            ...(e.type ? { type: e.type } : {}),
            ...(e.role ? { role: e.role } : {}),
            detail: (e.detail ?? []).filter((d) => d.type === 'scope'),
          },
    );
  return { ...event, agent, ...(entity.length ? { entity } : {}) };
}

/** A spreadsheet cell: quoted, quotes doubled, and never a formula (CSV injection). */
export function csvCell(value: string | number): string {
  let text = String(value);
  if (/^[=+\-@\t\r|%]/.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

export const CSV_HEADER = [
  'Day',
  'First access',
  'Last access',
  'Times',
  'App',
  'Person',
  'Role',
  'Organisation',
  'Resource types',
  'Scopes',
  'Purpose',
  'Network addresses',
];

export function disclosureCsv(rows: DisclosureRow[]): string {
  const lines = [CSV_HEADER.map(csvCell).join(',')];
  for (const r of rows) {
    lines.push(
      [
        r.day,
        r.first,
        r.last,
        r.count,
        r.app,
        r.person,
        r.role,
        r.organization,
        r.resourceTypes.join(' '),
        r.scopes.join(' '),
        r.purpose,
        r.addresses.join(' '),
      ]
        .map(csvCell)
        .join(','),
    );
  }
  // CRLF per RFC 4180; the BOM makes spreadsheet programs read it as UTF-8.
  return `\uFEFF${lines.join('\r\n')}\r\n`;
}

/** The patient's disclosures as a FHIR collection Bundle of redacted AuditEvents. */
export function disclosureBundle(events: AuditEvent[], patient: string, policy: DisclosurePolicy, base: string): Record<string, unknown> {
  const views = events.filter((e) => disclosedPatients(e).includes(patient)).map((e) => disclosureView(e, patient, policy));
  return {
    resourceType: 'Bundle',
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry: views.map((resource) => ({ fullUrl: `${base}/fhir/AuditEvent/${resource.id}`, resource })),
  };
}

/** Most disclosure events one report reads (newest first); the page says when there were more. */
export const REPORT_LIMIT = 5000;

/** A patient's disclosure events, newest first, from both chains (the archive keeps old ones). */
export async function disclosureEvents(
  store: AuditStore,
  patient: string,
  limit = REPORT_LIMIT,
): Promise<{ events: AuditEvent[]; total: number }> {
  const { total, events } = await search(store, { clauses: [{ param: 'disclosure', values: [patient] }], count: limit, sort: '-date' });
  return { events, total };
}
