import type { AuditEvent } from './audit-event.js';
import {
  introspectionIndexEntries,
  introspectionRecordSchema,
  isIntrospectionRecord,
  renderIntrospection,
  type IntrospectionRecord,
} from './forms/introspection.js';
import {
  isTokenIssuedRecord,
  renderTokenIssued,
  tokenIssuedIndexEntries,
  tokenIssuedRecordSchema,
  type TokenIssuedRecord,
} from './forms/token-issued.js';
import { allIndexEntries, type IndexParam } from './indexes.js';
import { disclosedPatients } from './disclosure.js';

/**
 * What the trail stores for an event: the AuditEvent itself, or for the two events a busy server
 * writes most, introspection and token responses, a compact record (forms/). Everything that reads
 * the trail goes through `decodeStored`, so search, export, the disclosure report and retention
 * all see AuditEvents either way.
 */
export type Recordable = AuditEvent | CompactRecord;
export type CompactRecord = IntrospectionRecord | TokenIssuedRecord;

export function isCompactRecord(item: unknown): item is CompactRecord {
  return isIntrospectionRecord(item) || isTokenIssuedRecord(item);
}

function unreadable(kind: string, error: { issues: Array<{ message: string }> }): never {
  throw new UnreadableAuditEntryError(`${kind} record does not have its form: ${error.issues[0]?.message ?? 'invalid'}`);
}

export class UnreadableAuditEntryError extends Error {
  override name = 'UnreadableAuditEntryError';
}

/** The AuditEvent a stored entry's text stands for. */
export function decodeStored(text: string): AuditEvent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UnreadableAuditEntryError('an audit entry is not JSON');
  }
  if (isIntrospectionRecord(value)) {
    const parsed = introspectionRecordSchema.safeParse(value);
    return parsed.success ? renderIntrospection(parsed.data) : unreadable('an introspection', parsed.error);
  }
  if (isTokenIssuedRecord(value)) {
    const parsed = tokenIssuedRecordSchema.safeParse(value);
    return parsed.success ? renderTokenIssued(parsed.data) : unreadable('a token response', parsed.error);
  }
  return value as AuditEvent;
}

/** The event a recordable stands for (renders a compact record). */
export function eventOf(item: Recordable): AuditEvent {
  if (isIntrospectionRecord(item)) return renderIntrospection(item);
  if (isTokenIssuedRecord(item)) return renderTokenIssued(item);
  return item;
}

/** Index entries, disclosures included, without rendering a compact record. */
export function indexEntriesOf(item: Recordable): Array<[IndexParam, string]> {
  if (isIntrospectionRecord(item)) return introspectionIndexEntries(item);
  if (isTokenIssuedRecord(item)) return tokenIssuedIndexEntries(item);
  return allIndexEntries(item, disclosedPatients(item));
}
