import { EVENT_CODE_SYSTEMS } from '../indexes.js';
import { indexEntriesOf, type Recordable } from '../stored-event.js';

/**
 * A search value as entry_values stores it: `param=value`, with the code systems this server
 * writes (EVENT_CODE_SYSTEMS, 40–60 characters each) shortened to `#<n>`: the term is in the
 * table and in its index once per event and value, and the system URLs were most of its bytes.
 * A system URI never starts with `#`, so no other value can take that form.
 */

const SHORT = new Map(EVENT_CODE_SYSTEMS.map((system, i) => [`${system}|`, `#${i}|`]));

export function encodeTerm(param: string, value: string): string {
  const bar = value.indexOf('|');
  if (bar > 0) {
    const short = SHORT.get(value.slice(0, bar + 1));
    if (short) return `${param}=${short}${value.slice(bar + 1)}`;
  }
  return `${param}=${value}`;
}

/** Search values of a stored entry's text (the same pairs the Redis trail indexes), as terms. */
export function termsOf(eventText: string): string[] {
  return indexEntriesOf(JSON.parse(eventText) as Recordable).map(([param, value]) => encodeTerm(param, value));
}
