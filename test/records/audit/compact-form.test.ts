import { describe, expect, test } from '@jest/globals';
import { auditEventProblems } from '../../../src/records/audit/audit-event.js';
import { canonicalJson } from '../../../src/records/audit/chain.js';
import { disclosedPatients, LOCAL_SUBTYPE_SYSTEM } from '../../../src/records/audit/disclosure.js';
import { EVENT_TYPES, STANDARD_SUBTYPES } from '../../../src/records/audit/events/vocabulary.js';
import { tokenIntrospected, type IntrospectedToken } from '../../../src/records/audit/events/token-events.js';
import {
  introspectionIndexEntries,
  introspectionRecord,
  introspectionRecordJson,
  renderIntrospection,
  type IntrospectionFacts,
} from '../../../src/records/audit/forms/introspection.js';
import { allIndexEntries, codeSearchValues, EVENT_CODE_SYSTEMS } from '../../../src/records/audit/indexes.js';
import { decodeStored, UnreadableAuditEntryError } from '../../../src/records/audit/stored-event.js';

/**
 * Introspection is stored as a compact record and rendered on read. These hold the record to the
 * event builder: what is read back is exactly the AuditEvent `tokenIntrospected` makes from the same
 * facts, and the index entries written from the record are exactly the rendered event's.
 */

const ISSUER = 'https://as.example.org';
const OPAQUE = 'Opaque-token-value_0123456789abcdefghijklmnop';

type FoundPart = NonNullable<IntrospectionFacts['token']>;
type TokenSpec = Partial<Omit<FoundPart, 'extra'>> & { fhirUser?: string | undefined; patient?: string | undefined };

/** A token as the lookup finds it: the launch context (fhirUser, patient) sits in `extra`. */
const token = (spec: TokenSpec = {}): FoundPart => {
  const { fhirUser, patient, ...rest } = { fhirUser: 'Practitioner/dr-1', patient: 'pat-1', ...spec };
  return {
    format: 'opaque',
    id: OPAQUE,
    kind: 'AccessToken',
    clientId: 'app',
    accountId: 'acc-1',
    scope: 'openid fhirUser patient/*.rs',
    grantId: 'grant-1',
    ...rest,
    extra: { fhirUser, patient },
  };
};

const cases: Array<[string, IntrospectionFacts]> = [
  ['active opaque token with user and patient', { callerId: 'rs', ip: '10.0.0.9', active: true, value: OPAQUE, token: token() }],
  ['active JWT', { callerId: 'rs', ip: '::1', active: true, value: 'a.b.c', token: token({ format: 'jwt', id: 'jti-77' }) }],
  [
    'patient user with an absolute fhirUser',
    {
      callerId: 'rs',
      ip: '127.0.0.1',
      active: true,
      value: OPAQUE,
      token: token({ fhirUser: 'https://ehr.example.org/fhir/Patient/pat-1', accountId: 'pat-acct' }),
    },
  ],
  [
    'backend token (no user, no patient)',
    {
      callerId: 'rs',
      ip: '127.0.0.1',
      active: true,
      value: OPAQUE,
      token: token({ accountId: undefined, fhirUser: undefined, patient: undefined, kind: 'ClientCredentials', grantId: undefined }),
    },
  ],
  ['token of the caller itself', { callerId: 'app', ip: '127.0.0.1', active: true, value: OPAQUE, token: token() }],
  ['found but refused (inactive for this caller)', { callerId: 'other-rs', ip: '127.0.0.1', active: false, value: OPAQUE, token: token() }],
  ['unknown token', { callerId: 'rs', ip: 'rs.internal', active: false, value: 'no-such-token' }],
];

/** The event as the builder makes it from the raw facts (the token value hashed by the builder). */
function built(facts: IntrospectionFacts, recorded: string) {
  const t = facts.token;
  const found = t && {
    kind: t.kind,
    clientId: t.clientId,
    accountId: t.accountId,
    scope: t.scope,
    grantId: t.grantId,
    fhirUser: t.extra.fhirUser,
    patient: t.extra.patient,
  };
  const tokenFacts =
    found && (Object.fromEntries(Object.entries(found).filter(([, v]) => v !== undefined)) as Omit<IntrospectedToken, 'name'>);
  const name = t ? (t.format === 'jwt' ? { jti: t.id } : { opaqueValue: t.id }) : undefined;
  return tokenIntrospected(
    { issuer: ISSUER, now: new Date(recorded) },
    {
      caller: { clientId: facts.callerId, ip: facts.ip },
      active: facts.active,
      ...(t ? { token: { ...tokenFacts!, name: name! } } : { presented: { opaqueValue: facts.value } }),
    },
  );
}

const sorted = (pairs: Array<[string, string]>) => pairs.map(([p, v]) => `${p}=${v}`).sort();

describe.each(cases)('%s', (_name, facts) => {
  const record = introspectionRecord(ISSUER, facts, new Date('2026-11-23T10:00:00.123Z'));
  const stored = canonicalJson(record);

  test('its hand-written canonical JSON is RFC 8785 (the generic serializer agrees)', () => {
    expect(introspectionRecordJson(record)).toBe(stored);
    const odd = { ...record, caller: 'r\u00e9s "quoted" \u2028', ip: '::ffff:10.0.0.1' };
    expect(introspectionRecordJson(odd)).toBe(canonicalJson(odd));
  });

  test('reads back as exactly the event the builder makes, and it is a valid AuditEvent', () => {
    const event = decodeStored(stored);
    expect(event).toEqual({ ...built(facts, record.recorded), id: record.id });
    expect(auditEventProblems(event)).toEqual([]);
  });

  test('is indexed exactly as the rendered event would be', () => {
    const event = renderIntrospection(record);
    expect(sorted(introspectionIndexEntries(record))).toEqual(sorted(allIndexEntries(event, disclosedPatients(event))));
  });

  test('holds no token value and is a fraction of the event size', () => {
    expect(stored).not.toContain(facts.value);
    expect(stored.length).toBeLessThan(600);
    expect(stored.length * 3).toBeLessThan(canonicalJson(renderIntrospection(record)).length);
  });
});

test('an active introspection with a patient is a disclosure of that patient', () => {
  const record = introspectionRecord(ISSUER, cases[0]![1]);
  expect(introspectionIndexEntries(record)).toContainEqual(['disclosure', 'Patient/pat-1']);
  expect(introspectionIndexEntries(introspectionRecord(ISSUER, cases[5]![1]))).not.toContainEqual(['disclosure', 'Patient/pat-1']);
});

test('a record that lost its shape is reported, not rendered half-way', () => {
  const record = introspectionRecord(ISSUER, cases[0]![1]);
  expect(() => decodeStored(canonicalJson({ ...record, active: 'yes' }))).toThrow(UnreadableAuditEntryError);
  expect(() => decodeStored(canonicalJson({ ...record, recorded: 'yesterday' }))).toThrow(UnreadableAuditEntryError);
  expect(() => decodeStored(canonicalJson({ ...record, extra: 1 }))).toThrow(UnreadableAuditEntryError);
  expect(() => decodeStored('{"form":')).toThrow(UnreadableAuditEntryError);
});

test('every code system of the event types and subtypes this server writes is indexed as system|code only', () => {
  for (const coding of [...Object.values(EVENT_TYPES), ...Object.values(STANDARD_SUBTYPES), { system: LOCAL_SUBTYPE_SYSTEM, code: 'x' }]) {
    expect(EVENT_CODE_SYSTEMS).toContain(coding.system);
  }
  // A bare code is looked for in each of them, and as indexed from other systems.
  expect(codeSearchValues('110114')).toEqual(expect.arrayContaining(['110114', `${EVENT_TYPES.userAuthentication.system}|110114`]));
  expect(codeSearchValues('urn:other|x')).toEqual(['urn:other|x']);
});
