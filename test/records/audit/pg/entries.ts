import { GENESIS_HASH, entryHash } from '../../../../src/records/audit/chain.js';
import { prepareEvent } from '../../../../src/records/audit/trail.js';
import type { Recordable } from '../../../../src/records/audit/stored-event.js';
import type { PgEntry } from '../../../../src/records/audit/pg/store.js';

/**
 * Chain entries as the Redis append script writes them (append.ts): canonical JSON, hash over
 * (seq, prev, event), trail time the later of `recorded` and the entry before's.
 */
export function chainOf(
  chain: string,
  items: Recordable[],
  from: { seq: number; hash: string; t: number } = { seq: 0, hash: GENESIS_HASH, t: 0 },
): PgEntry[] {
  let { seq, hash: prev, t } = from;
  return items.map((item) => {
    const p = prepareEvent(item, false, { mayRepeat: true });
    seq += 1;
    t = Math.max(t, p.score);
    const hash = entryHash(seq, prev, p.json);
    const entry: PgEntry = { chain, seq, prev, hash, id: p.id, event: p.json, t };
    prev = hash;
    return entry;
  });
}

/** The entry that continues a chain after `last`. */
export function after(last: PgEntry): { seq: number; hash: string; t: number } {
  return { seq: last.seq, hash: last.hash, t: last.t };
}
