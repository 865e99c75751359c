import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditEvent } from '../audit-event.js';
import { patientReference, tokenSha256, type TokenName } from '../events/agents.js';
import { tokenIntrospected } from '../events/token-events.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../disclosure.js';
import { patientOfReference, relativeOf, type IndexParam } from '../indexes.js';
import { EVENT_TYPES } from '../events/vocabulary.js';

/**
 * Introspection is the one event a busy deployment writes thousands of times a second, so it is
 * stored as the facts its AuditEvent is made of (~400 bytes) instead of the rendered event
 * (~3 KB). The chain hashes this record's canonical JSON; reading it back renders the AuditEvent
 * with the same builder that shapes it everywhere else, so a stored record always reads as exactly
 * the event `tokenIntrospected` makes from those facts (test/audit/compact-form.test.ts holds the
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

/** What the introspection handler knows when it answers. */
export interface IntrospectionFacts {
  callerId: string;
  ip: string;
  active: boolean;
  /** The token as found (absent: unknown, expired or malformed). */
  token?: {
    format: 'opaque' | 'jwt';
    /** jti of a JWT, the value of an opaque token. */
    id: string;
    kind: string;
    clientId: string;
    accountId?: string | undefined;
    fhirUser?: string | undefined;
    patient?: string | undefined;
    scope?: string | undefined;
    grantId?: string | undefined;
  };
  /** The presented value, hashed only when no token was found. */
  value: string;
}

function storedName(format: 'opaque' | 'jwt', id: string): StoredTokenName {
  return format === 'jwt' ? { jti: id } : { sha256: tokenSha256(id) };
}

/** The record of one introspection: no token value, only its jti or hash. */
export function introspectionRecord(issuer: string, facts: IntrospectionFacts, now = new Date()): IntrospectionRecord {
  const t = facts.token;
  return {
    form: INTROSPECTION_FORM,
    id: randomUUID(),
    recorded: now.toISOString(),
    issuer,
    caller: facts.callerId,
    ip: facts.ip,
    active: facts.active,
    ...(t
      ? {
          token: {
            name: storedName(t.format, t.id),
            kind: t.kind,
            clientId: t.clientId,
            ...(t.accountId ? { accountId: t.accountId } : {}),
            ...(t.fhirUser ? { fhirUser: t.fhirUser } : {}),
            ...(t.patient ? { patient: t.patient } : {}),
            ...(t.scope ? { scope: t.scope } : {}),
            ...(t.grantId ? { grantId: t.grantId } : {}),
          },
        }
      : facts.value
        ? { presented: tokenSha256(facts.value) }
        : {}),
  };
}

export function isIntrospectionRecord(value: unknown): value is IntrospectionRecord {
  return typeof value === 'object' && value !== null && (value as { form?: unknown }).form === INTROSPECTION_FORM;
}

/** The AuditEvent a record stands for. */
export function renderIntrospection(record: IntrospectionRecord): AuditEvent {
  const t = record.token;
  const name: TokenName | undefined = t?.name;
  const event = tokenIntrospected(
    { issuer: record.issuer, now: new Date(record.recorded) },
    {
      caller: { clientId: record.caller, ip: record.ip },
      active: record.active,
      ...(t
        ? {
            token: {
              name: name!,
              kind: t.kind,
              clientId: t.clientId,
              ...(t.accountId ? { accountId: t.accountId } : {}),
              ...(t.fhirUser ? { fhirUser: t.fhirUser } : {}),
              ...(t.patient ? { patient: t.patient } : {}),
              ...(t.scope ? { scope: t.scope } : {}),
              ...(t.grantId ? { grantId: t.grantId } : {}),
            },
          }
        : {}),
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
  const pairs = new Map<string, [IndexParam, string]>();
  const add = (param: IndexParam, value: string | undefined) => {
    if (!value || value.length > 512) return;
    pairs.set(`${param}\u0000${value}`, [param, value]);
  };
  add('all', '*');
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
  add('type', EVENT_TYPES.userAuthentication.code);
  add('type', USER_AUTHENTICATION);
  add('subtype', 'token-introspected');
  add('subtype', INTROSPECTED_SUBTYPE);
  add('outcome', '0');
  add('action', 'E');
  add('disclosure', entityPatient);
  return [...pairs.values()];
}
