import { hash } from 'node:crypto';
import type { AuditEvent } from './audit-event.js';
import { decodeStored } from './stored-event.js';
import type { AuditChainName } from '../../platform/redis/keyspace.js';

/**
 * The hash chain. Entry n stores `prev` (the hash of entry n-1) and
 * `hash = sha256(seq "\n" prev "\n" canonical-event)`, hex. Binding `seq` into the hash makes a
 * reordering or a removal visible as a broken link even where two events happen to be identical;
 * RFC 8785 (JCS) canonical JSON makes the hash independent of property order and number spelling,
 * so an event can be re-serialised by any tool and still verify.
 */

/**
 * The trail is one or more chains of events (`main`, then `main-1` … `main-63`: the shards), plus
 * `archive`, where retention keeps disclosures past the general retention (retention.ts). Each
 * chain has its own seq, hashes, head and checkpoints, and lives under its own Redis hash tag, so
 * in a Cluster the shards spread the trail's writes over several masters and an append can move
 * to another shard when one master is down (trail.ts). One shard (the default) is the trail as it
 * always was.
 */
export type ChainName = AuditChainName;

/** Most shards a trail may have (audit.chains). */
export const MAX_SHARDS = 64;

const CHAIN_NAME = /^(?:main|archive|main-(?:[1-9]|[1-5][0-9]|6[0-3]))$/;

export function isChainName(value: unknown): value is ChainName {
  return typeof value === 'string' && CHAIN_NAME.test(value);
}

/** The name of shard `i` (0 is `main`, the chain every trail has). */
export function shardChain(i: number): ChainName {
  return i === 0 ? 'main' : `main-${i}`;
}

/** The first `n` shards. */
export function shardChains(n: number): ChainName[] {
  return Array.from({ length: n }, (_, i) => shardChain(i));
}

/** Shards in their natural order (main, main-1, main-2, … main-10), for stable output and tie-breaks. */
export function byShardOrder(a: ChainName, b: ChainName): number {
  const rank = (c: ChainName) => (c === 'archive' ? MAX_SHARDS : c === 'main' ? 0 : Number(c.slice(5)));
  return rank(a) - rank(b);
}

export const GENESIS_HASH = '0'.repeat(64);

/**
 * RFC 8785 (JCS) for the JSON values events are made of (objects, arrays, strings, finite
 * numbers, booleans, null): members sorted by key, no white space, strings and numbers as
 * ECMAScript's JSON.stringify writes them (which is what JCS specifies). Written out rather than
 * through a generic library because it runs once per audited request on the introspection hot
 * path; test/records/audit/canonical.test.ts holds it to the `canonicalize` package's output.
 */
export function canonicalJson(value: unknown): string {
  const text = serialise(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

/**
 * Canonical text of frozen subtrees. The event builders share frozen objects for what never
 * changes (codings, this server's agent and source), so most of an event is serialised once per
 * process instead of once per request.
 */
const frozenText = new WeakMap<object, string>();

function serialise(value: unknown): string | undefined {
  if (value === null) return 'null';
  if (typeof value === 'object' && Object.isFrozen(value)) {
    let text = frozenText.get(value);
    if (text === undefined) {
      text = serialiseObject(value);
      if (text !== undefined) frozenText.set(value, text);
    }
    return text;
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('JSON has no form for NaN or Infinity');
      return JSON.stringify(value);
    case 'object':
      return serialiseObject(value);
    default:
      return undefined;
  }
}

function serialiseObject(value: object): string | undefined {
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i) out += ',';
      out += serialise(value[i]) ?? 'null';
    }
    return `${out}]`;
  }
  const source =
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
      ? ((value as { toJSON(): unknown }).toJSON() as Record<string, unknown>)
      : (value as Record<string, unknown>);
  if (source !== value) return serialise(source);
  const keys = Object.keys(source).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = serialise(source[key]);
    if (member === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${member}`;
    first = false;
  }
  return `${out}}`;
}

export function entryHash(seq: number, prev: string, canonicalEvent: string): string {
  // One-shot hash: no Hash object per entry (this runs once per audited request).
  return hash('sha256', `${seq}\n${prev}\n${canonicalEvent}`, 'hex');
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
  /** Canonical JSON of the event, or of its compact record (stored-event.ts). */
  event: string;
  /** Trail time (ms): `recorded`, or the entry before's `t` when that is later (postings.ts). */
  t: number;
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
    t: Number(map.get('t') ?? NaN),
  };
}

/** The AuditEvent of an entry (compact records rendered: stored-event.ts). */
export function parseEvent(entry: ChainEntry): AuditEvent {
  return decodeStored(entry.event);
}
