import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditEvent } from '../audit-event.js';
import { patientReference, tokenSha256, type TokenName } from '../events/agents.js';
import { EVENT_TYPES, STANDARD_SUBTYPES } from '../events/vocabulary.js';
import { tokenIssued, type IssuedToken, type TokenIssuedInput } from '../events/token-events.js';
import { entryList, patientOfReference, relativeOf, type IndexParam } from '../indexes.js';
import { LOCAL_SUBTYPE_SYSTEM } from '../disclosure.js';

/**
 * A token response is, with introspection, what a busy deployment records thousands of times a
 * second, so it too is stored as the facts its AuditEvent is made of (~500 bytes) instead of the
 * rendered event (~2–3 kB): Redis spends most of an append on the entry's bytes, and the trail's
 * memory and the PostgreSQL home grow with every one. The chain hashes this record's canonical
 * JSON; reading it back renders the AuditEvent with `tokenIssued`, the builder that shapes it
 * everywhere else (test/records/audit/compact-form.test.ts holds the two together, index entries
 * included). Token values are never in the record: opaque ones are kept as their SHA-256.
 *
 * Versioned by `form`: a later change to what a token response records gets a new form, and
 * records of this one keep rendering as they did.
 */

export const TOKEN_ISSUED_FORM = 'token-issued/1';

const nonEmpty = z.string().min(1);
const coding = z.object({ system: z.string(), code: z.string(), display: z.string().optional() }).strict();

const storedTokenSchema = z
  .object({
    name: z.union([z.object({ jti: nonEmpty }).strict(), z.object({ sha256: nonEmpty }).strict()]),
    kind: nonEmpty,
    format: z.enum(['opaque', 'jwt']).optional(),
    scope: z.string().optional(),
    expiresIn: z.number().optional(),
    audience: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

export const tokenIssuedRecordSchema = z
  .object({
    form: z.literal(TOKEN_ISSUED_FORM),
    id: nonEmpty,
    recorded: z.iso.datetime(),
    issuer: nonEmpty,
    client: z.object({ clientId: nonEmpty, name: z.string().optional(), ip: z.string().optional() }).strict(),
    grantType: nonEmpty,
    user: z
      .object({
        accountId: nonEmpty,
        fhirUser: z.string().optional(),
        name: z.string().optional(),
        roles: z.array(coding).optional(),
        purposeOfUse: z.array(coding).optional(),
        organization: z
          .object({
            name: z.string().optional(),
            identifier: z.object({ system: z.string().optional(), value: z.string() }).strict().optional(),
          })
          .strict()
          .optional(),
        ip: z.string().optional(),
        tokenJti: z.string().optional(),
      })
      .strict()
      .optional(),
    patient: z.string().optional(),
    encounter: z.string().optional(),
    consentId: z.string().optional(),
    grantId: z.string().optional(),
    accessToken: storedTokenSchema.optional(),
    refreshToken: storedTokenSchema.optional(),
    idTokenIssued: z.boolean().optional(),
  })
  .strict();

export type TokenIssuedRecord = z.infer<typeof tokenIssuedRecordSchema>;
type StoredToken = z.infer<typeof storedTokenSchema>;

/** An opaque value becomes its hash here, before anything is kept. */
function storedName(name: TokenName): StoredToken['name'] {
  if ('jti' in name) return { jti: name.jti };
  return { sha256: 'sha256' in name ? name.sha256 : tokenSha256(name.opaqueValue) };
}

function storedToken(t: IssuedToken): StoredToken {
  const out: StoredToken = { name: storedName(t.name), kind: t.kind };
  if (t.format !== undefined) out.format = t.format;
  if (t.scope !== undefined) out.scope = t.scope;
  if (t.expiresIn !== undefined) out.expiresIn = t.expiresIn;
  if (t.audience !== undefined) out.audience = t.audience;
  return out;
}

/** The record of one token response, from what `tokenIssued` would be given. */
export function tokenIssuedRecord(issuer: string, input: TokenIssuedInput, now = new Date()): TokenIssuedRecord {
  const { accessToken, refreshToken, ...rest } = input;
  const record: TokenIssuedRecord = { form: TOKEN_ISSUED_FORM, id: randomUUID(), recorded: now.toISOString(), issuer, ...rest };
  if (accessToken) record.accessToken = storedToken(accessToken);
  if (refreshToken) record.refreshToken = storedToken(refreshToken);
  return record;
}

export function isTokenIssuedRecord(value: unknown): value is TokenIssuedRecord {
  return typeof value === 'object' && value !== null && (value as { form?: unknown }).form === TOKEN_ISSUED_FORM;
}

/** The AuditEvent a record stands for. */
export function renderTokenIssued(record: TokenIssuedRecord): AuditEvent {
  const { form: _form, id, recorded, issuer, ...input } = record;
  const event = tokenIssued({ issuer, now: new Date(recorded) }, input as TokenIssuedInput);
  // `recorded` keeps the stored spelling.
  return { ...event, id, recorded };
}

const TYPE = `${EVENT_TYPES.userAuthentication.system}|${EVENT_TYPES.userAuthentication.code}`;
const GET_ACCESS_TOKEN = `${STANDARD_SUBTYPES.getAccessToken.system}|${STANDARD_SUBTYPES.getAccessToken.code}`;

/**
 * The index entries of the rendered event (indexes.ts), read straight off the record, in the order
 * `allIndexEntries` finds them: rendering the event to find a dozen strings would cost more than
 * the rest of the append. test/records/audit/compact-token-form.test.ts holds the two together.
 */
export function tokenIssuedIndexEntries(record: TokenIssuedRecord): Array<[IndexParam, string]> {
  const { out, add } = entryList();
  const user = record.user;
  const patient = record.patient ? patientReference(record.patient) : undefined;
  const consent = record.consentId
    ? record.consentId.startsWith('Consent/')
      ? record.consentId
      : `Consent/${record.consentId}`
    : undefined;
  // Patients: the agents' references first, then the entities'.
  add('patient', patientOfReference(user?.fhirUser));
  add('patient', patientOfReference(patient));
  // Agents: the client (by id), this server (never indexed), the user, the user's organization.
  add('agent', record.client.clientId);
  if (user) {
    if (user.fhirUser) add('agent', relativeOf(user.fhirUser));
    add('agent', user.accountId);
    add('agent', user.organization?.identifier?.value);
  }
  // Entities with a reference: the patient and the Consent (tokens and the grant have identifiers).
  if (patient) add('entity', relativeOf(patient));
  if (consent) add('entity', relativeOf(consent));
  add('type', TYPE);
  add('subtype', GET_ACCESS_TOKEN);
  add('subtype', `${LOCAL_SUBTYPE_SYSTEM}|${record.grantType === 'refresh_token' ? 'token-refreshed' : 'token-issued'}`);
  add('outcome', '0');
  add('action', 'E');
  // A token response with a patient in context discloses that patient's data to the client.
  const disclosed = patientOfReference(patient);
  if (disclosed) out.push(['disclosure', disclosed]);
  return out;
}
