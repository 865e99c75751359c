import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditEvent } from '../audit-event.js';
import { patientReference, tokenSha256 } from '../events/agents.js';
import { tokenIntrospected } from '../events/token-events.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../disclosure.js';
import { entryList, patientOfReference, relativeOf, type IndexParam } from '../indexes.js';
import { EVENT_TYPES } from '../events/vocabulary.js';

/**
 * Introspection is the one event a busy deployment writes thousands of times a second, so it is
 * stored as the facts its AuditEvent is made of (~400 bytes) instead of the rendered event
 * (~3 KB). The chain hashes this record's canonical JSON; reading it back renders the AuditEvent
 * with the same builder that shapes it everywhere else, so a stored record always reads as exactly
 * the event `tokenIntrospected` makes from those facts (test/records/audit/compact-form.test.ts holds the
 * two together, index entries included). Why it matters: Redis spends most of an append on the
 * bytes of the entry and the index members, and the trail's memory grows with every byte.
 *
 * The record is versioned by `form`: a later change to how introspection is recorded gets a new
 * form, and records of this one keep rendering as they did.
 */

export const INTROSPECTION_FORM = 'introspection/1';

const nonEmpty = z.string().min(1);

const tokenNameSchema = z.union([z.object({ jti: nonEmpty }).strict(), z.object({ sha256: nonEmpty }).strict()]);

export const introspectionRecordSchema = z
  .object({
    form: z.literal(INTROSPECTION_FORM),
    id: nonEmpty,
    recorded: z.iso.datetime(),
    issuer: nonEmpty,
    caller: nonEmpty,
    ip: z.string(),
    active: z.boolean(),
    token: z
      .object({
        name: tokenNameSchema,
        kind: nonEmpty,
        clientId: nonEmpty,
        accountId: nonEmpty.optional(),
        fhirUser: nonEmpty.optional(),
        patient: nonEmpty.optional(),
        scope: nonEmpty.optional(),
        grantId: nonEmpty.optional(),
      })
      .strict()
      .optional(),
    /** Hash of a presented value that matched no token (so an investigator holding it can find it). */
    presented: nonEmpty.optional(),
  })
  .strict();

export type IntrospectionRecord = z.infer<typeof introspectionRecordSchema>;
type StoredTokenName = z.infer<typeof tokenNameSchema>;

/** The parts of a found token the record keeps (oauth/introspection's FoundToken has them all). */
export interface IntrospectedToken {
  kind: 'AccessToken' | 'ClientCredentials' | 'RefreshToken';
  format: 'opaque' | 'jwt';
  id: string;
  clientId: string;
  accountId?: string | undefined;
  scope?: string | undefined;
  grantId?: string | undefined;
  extra: Record<string, unknown>;
}

/** What the introspection handler knows when it answers (it passes these as it holds them). */
export interface IntrospectionFacts {
  callerId: string;
  ip: string;
  active: boolean;
  /** The token as found (absent: unknown, expired or malformed). */
  token?: IntrospectedToken | undefined;
  /** The presented value, hashed only when no token was found. */
  value: string;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

function storedName(format: 'opaque' | 'jwt', id: string): StoredTokenName {
  return format === 'jwt' ? { jti: id } : { sha256: tokenSha256(id) };
}

/**
 * The record of one introspection: no token value, only its jti or hash. Built by assignment, not
 * by spreading optional parts: this runs once per introspection and every spread is a garbage object.
 */
export function introspectionRecord(issuer: string, facts: IntrospectionFacts, now = new Date()): IntrospectionRecord {
  const record: IntrospectionRecord = {
    form: INTROSPECTION_FORM,
    id: randomUUID(),
    recorded: now.toISOString(),
    issuer,
    caller: facts.callerId,
    ip: facts.ip,
    active: facts.active,
  };
  const t = facts.token;
  if (t) {
    const token: NonNullable<IntrospectionRecord['token']> = { name: storedName(t.format, t.id), kind: t.kind, clientId: t.clientId };
    if (t.accountId) token.accountId = t.accountId;
    const fhirUser = text(t.extra.fhirUser);
    if (fhirUser) token.fhirUser = fhirUser;
    const patient = text(t.extra.patient);
    if (patient) token.patient = patient;
    if (t.scope) token.scope = t.scope;
    if (t.grantId) token.grantId = t.grantId;
    record.token = token;
  } else if (facts.value) {
    record.presented = tokenSha256(facts.value);
  }
  return record;
}

const q = JSON.stringify;

/**
 * The record's RFC 8785 canonical JSON, written out member by member in sorted order: the generic
 * serializer sorts keys and walks the object on every introspection, this only concatenates.
 * test/records/audit/compact-form.test.ts holds it to `canonicalJson`.
 */
export function introspectionRecordJson(r: IntrospectionRecord): string {
  let out = `{"active":${r.active},"caller":${q(r.caller)},"form":${q(r.form)},"id":${q(r.id)},"ip":${q(r.ip)},"issuer":${q(r.issuer)}`;
  if (r.presented !== undefined) out += `,"presented":${q(r.presented)}`;
  out += `,"recorded":${q(r.recorded)}`;
  const t = r.token;
  if (t) {
    out += ',"token":{';
    if (t.accountId !== undefined) out += `"accountId":${q(t.accountId)},`;
    out += `"clientId":${q(t.clientId)}`;
    if (t.fhirUser !== undefined) out += `,"fhirUser":${q(t.fhirUser)}`;
    if (t.grantId !== undefined) out += `,"grantId":${q(t.grantId)}`;
    out += `,"kind":${q(t.kind)},"name":${'jti' in t.name ? `{"jti":${q(t.name.jti)}}` : `{"sha256":${q(t.name.sha256)}}`}`;
    if (t.patient !== undefined) out += `,"patient":${q(t.patient)}`;
    if (t.scope !== undefined) out += `,"scope":${q(t.scope)}`;
    out += '}';
  }
  return `${out}}`;
}

export function isIntrospectionRecord(value: unknown): value is IntrospectionRecord {
  return typeof value === 'object' && value !== null && (value as { form?: unknown }).form === INTROSPECTION_FORM;
}

/** The AuditEvent a record stands for (its token part is already what the builder takes). */
export function renderIntrospection(record: IntrospectionRecord): AuditEvent {
  const event = tokenIntrospected(
    { issuer: record.issuer, now: new Date(record.recorded) },
    {
      caller: { clientId: record.caller, ip: record.ip },
      active: record.active,
      ...(record.token ? { token: record.token } : {}),
      ...(record.presented ? { presented: { sha256: record.presented } } : {}),
    },
  );
  // `recorded` keeps the stored spelling (a Date round trip would too, but only for ISO input).
  return { ...event, id: record.id, recorded: record.recorded };
}

const INTROSPECTED_SUBTYPE = `${LOCAL_SUBTYPE_SYSTEM}|token-introspected`;
const USER_AUTHENTICATION = `${EVENT_TYPES.userAuthentication.system}|${EVENT_TYPES.userAuthentication.code}`;

/**
 * The index entries of the rendered event (indexes.ts), read straight off the record: rendering a
 * whole event to find a dozen strings would cost more than the rest of the append.
 */
export function introspectionIndexEntries(record: IntrospectionRecord): Array<[IndexParam, string]> {
  const { out, add } = entryList();
  const t = record.active ? record.token : undefined;
  const entityPatient = t?.patient ? patientOfReference(patientReference(t.patient)) : undefined;
  add('patient', t?.accountId ? patientOfReference(t.fhirUser) : undefined);
  add('patient', entityPatient);
  add('agent', record.caller);
  if (t && t.clientId !== record.caller) add('agent', t.clientId);
  if (t?.accountId) {
    if (t.fhirUser) add('agent', relativeOf(t.fhirUser));
    add('agent', t.accountId);
  }
  add('entity', entityPatient);
  out.push(['type', USER_AUTHENTICATION], ['subtype', INTROSPECTED_SUBTYPE], ['outcome', '0'], ['action', 'E']);
  add('disclosure', entityPatient);
  return out;
}
