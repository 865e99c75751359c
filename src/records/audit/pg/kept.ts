import { createHash, type Hash } from 'node:crypto';
import type { PgEntry } from './store.js';

/**
 * The digest a `retention-cut` checkpoint signs over the disclosures one drop kept (audit.kept,
 * retention.ts): SHA-256 over one line `seq hash t id\n` per kept entry, in seq order (t in ms).
 * The hash covers seq, prev and the event text; t and id are not in it, so they are in the line:
 * the signed digest then pins every column of a kept entry but the chain (the checkpoint's own).
 */
export class KeptDigest {
  private readonly hash: Hash = createHash('sha256');
  count = 0;

  add(e: Pick<PgEntry, 'seq' | 'hash' | 't' | 'id'>): void {
    this.hash.update(`${e.seq} ${e.hash} ${e.t} ${e.id}\n`);
    this.count++;
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}

/** The digest over no kept entries. */
export const EMPTY_KEPT_DIGEST = new KeptDigest().hex();

/** `YYYY-MM` of the UTC month of `t` (ms or Date). */
export function monthKey(t: number | Date): string {
  return new Date(t).toISOString().slice(0, 7);
}

export const MONTH_KEY = /^\d{4}-(0[1-9]|1[0-2])$/;
