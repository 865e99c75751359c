import type { TestApp } from '../../support/test-app.js';
import type { AuditEvent } from '../../../src/records/audit/audit-event.js';
import { parseEvent, parseStreamEntry } from '../../../src/records/audit/chain.js';

/** The main chain's events straight from the Redis stream, oldest first. */
export async function readTrail(t: Pick<TestApp, 'redis' | 'keyspace'>): Promise<AuditEvent[]> {
  const rows = (await t.redis.xrange(t.keyspace.auditStream('main'), '-', '+')) as Array<[string, string[]]>;
  return rows.map(([sid, fields]) => parseEvent(parseStreamEntry(sid, fields)));
}
