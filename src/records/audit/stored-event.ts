import type { AuditEvent } from './audit-event.js';
import {
  introspectionIndexEntries,
  introspectionRecordSchema,
  isIntrospectionRecord,
  renderIntrospection,
  type IntrospectionRecord,
} from './forms/introspection.js';
import { allIndexEntries, type IndexParam } from './indexes.js';
import { disclosedPatients } from './disclosure.js';

/**
 * What the trail stores for an event: the AuditEvent itself, or for introspection its compact
 * record (forms/introspection.ts). Everything that reads the trail goes through `decodeStored`,
 * so search, export, the disclosure report and retention all see AuditEvents either way.
 */
export type Recordable = AuditEvent | IntrospectionRecord;

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
    if (!parsed.success)
      throw new UnreadableAuditEntryError(
        `an introspection record does not have its form: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      );
    return renderIntrospection(parsed.data);
  }
  return value as AuditEvent;
}

/** The event a recordable stands for (renders a compact record). */
export function eventOf(item: Recordable): AuditEvent {
  return isIntrospectionRecord(item) ? renderIntrospection(item) : item;
}

/** Index entries, disclosures included, without rendering a compact record. */
export function indexEntriesOf(item: Recordable): Array<[IndexParam, string]> {
  return isIntrospectionRecord(item) ? introspectionIndexEntries(item) : allIndexEntries(item, disclosedPatients(item));
}
