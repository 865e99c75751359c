import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { AuditEvent } from './audit-event.js';

/**
 * The hash chain. Entry n stores `prev` (the hash of entry n-1) and
 * `hash = sha256(seq "\n" prev "\n" canonical-event)`, hex. Binding `seq` into the hash makes a
 * reordering or a removal visible as a broken link even where two events happen to be identical;
 * RFC 8785 (JCS) canonical JSON makes the hash independent of property order and number spelling,
 * so an event can be re-serialised by any tool and still verify.
 */

export type ChainName = 'main' | 'archive';

export const GENESIS_HASH = '0'.repeat(64);

// The package is CommonJS with an ESM-style declaration; under NodeNext its default import is the
// module object or the function depending on the loader, so take whichever is callable.
type Canonicalize = (input: unknown) => string | undefined;
const loaded = canonicalizeModule as unknown as Canonicalize | { default: Canonicalize };
const canonicalizeFn: Canonicalize = typeof loaded === 'function' ? loaded : loaded.default;

export function canonicalJson(value: unknown): string {
  const text = canonicalizeFn(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

export function entryHash(seq: number, prev: string, canonicalEvent: string): string {
  return createHash('sha256').update(`${seq}\n${prev}\n${canonicalEvent}`).digest('hex');
}

/** One entry as stored in the chain's stream. */
export interface ChainEntry {
  /** Redis stream id. */
  sid: string;
  seq: number;
  prev: string;
  hash: string;
  /** AuditEvent.id */
  id: string;
  /** Canonical JSON of the event. */
  event: string;
}

/** Reads a stream entry's field list (XRANGE reply) into a ChainEntry; undefined fields become ''. */
export function parseStreamEntry(sid: string, fields: string[]): ChainEntry {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  return {
    sid,
    seq: Number(map.get('seq') ?? NaN),
    prev: map.get('prev') ?? '',
    hash: map.get('hash') ?? '',
    id: map.get('id') ?? '',
    event: map.get('event') ?? '',
  };
}

export function parseEvent(entry: ChainEntry): AuditEvent {
  return JSON.parse(entry.event) as AuditEvent;
}
