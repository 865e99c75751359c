/*
 * The three properties every fuzzed request must keep, and the runner that counts what was tried.
 *  1. no 5xx (the app's Redis is up throughout, so not even 503);
 *  2. no stack trace or internal detail in the body;
 *  3. a refused request (4xx, or a redirect carrying an OAuth `error`) leaves every stored key
 *     outside `VOLATILE` (world.ts) exactly as it was.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FuzzWorld, Response, Snapshot } from './world.js';

/** Inputs per property: small in `npm test`, large in `npm run fuzz` (FUZZ_RUNS). */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 20);

/** Per-test timeout that grows with the run count (a request is a few ms; logins hash a password). */
export function timeoutFor(runs = RUNS, msPerRun = 150): number {
  return Math.max(30_000, runs * msPerRun);
}

/** What a body must never contain; each names what leaked. */
const LEAKS: Array<[string, RegExp]> = [
  ['a stack frame', /\bat (?:async )?[\w$.<>[\]]+ \(|\n\s+at [^\n]*:\d+:\d+/],
  ['a source path', /(?:\/src\/|\/node_modules\/|\/test\/|file:\/\/\/|\.ts:\d+|\.js:\d+)/],
  [
    'a JavaScript error',
    /\b(?:TypeError|ReferenceError|RangeError|InternalError|AggregateError)\b|Cannot read propert|is not a function|is not iterable|of undefined|of null\b/,
  ],
  ['a Redis error', /\b(?:WRONGTYPE|NOSCRIPT|ReplyError|ioredis|ERR (?:Error|wrong|value|syntax))/],
  ['oidc-provider internals', /oops! something went wrong|\bnode:internal\b/i],
];

/**
 * The first leak in `body`. A match that is only the request's own input echoed back (an error
 * naming the bad value) is not a leak: `input` is that input as text.
 */
export function leakIn(body: string, input = ''): string | undefined {
  const echoed = input.toLowerCase();
  for (const [what, re] of LEAKS) {
    for (const m of body.matchAll(new RegExp(re.source, `${re.flags}g`))) {
      if (!echoed.includes(m[0].toLowerCase())) return `${what} (${JSON.stringify(m[0])})`;
    }
  }
  return undefined;
}

export function isRefusal(res: Response): boolean {
  if (res.status >= 400 && res.status < 500) return true;
  const location = res.headers.location;
  return res.status >= 300 && res.status < 400 && typeof location === 'string' && /[?#&]error=/.test(location);
}

function bodyText(res: Response): string {
  if (res.text) return res.text;
  return res.body && typeof res.body === 'object' ? JSON.stringify(res.body) : '';
}

/** The input as the texts a response could echo: JSON and its percent-decoded form. */
function echoable(input: unknown): string {
  const json = JSON.stringify(input) ?? '';
  let decoded = json;
  try {
    decoded = decodeURIComponent(json);
  } catch {
    // not percent-encoded text
  }
  return `${json}\n${decoded}`;
}

/**
 * The keys created, changed or deleted between two snapshots. A key whose time to live ran out
 * between them (a launch, a token seeded earlier) expired; the request did not delete it.
 */
export function changedKeys(before: Snapshot, after: Snapshot): string[] {
  const changed: string[] = [];
  const expiredBy = (pttl: number) => pttl >= 0 && pttl <= after.at - before.at + 1_000;
  for (const [k, v] of before.keys) {
    const now = after.keys.get(k);
    if (!now) {
      if (!expiredBy(v.pttl)) changed.push(`deleted ${k}`);
    } else if (now.digest !== v.digest) changed.push(`changed ${k}`);
  }
  for (const k of after.keys.keys()) if (!before.keys.has(k)) changed.push(`created ${k}`);
  return changed;
}

export interface Figure {
  endpoint: string;
  inputs: number;
  ms: number;
  failed: boolean;
  statuses: Record<string, number>;
}

const figures: Figure[] = [];

export interface FuzzOptions<T> {
  runs?: number;
  /** Regression inputs run before the random ones. */
  examples?: T[];
  /** Skip the state property (for endpoints whose success is indistinguishable from refusal, none so far). */
  stateless?: boolean;
  /** A 5xx the protocol itself prescribes (SCIM's 501 for Bulk and /Me), recognised by its body. */
  prescribed5xx?: (res: Response) => boolean;
}

/**
 * Runs one property: each generated input is sent by `send`, and the response must keep the three
 * properties. On failure fast-check shrinks the input and reports it with its seed (re-run with
 * FUZZ_SEED=<seed> FUZZ_PATH=<path> to reproduce).
 */
export async function fuzz<T>(
  world: FuzzWorld,
  endpoint: string,
  arb: fc.Arbitrary<T>,
  send: (input: T) => Promise<Response>,
  opts: FuzzOptions<T> = {},
): Promise<void> {
  const figure: Figure = { endpoint, inputs: 0, ms: 0, failed: false, statuses: {} };
  figures.push(figure);
  const started = Date.now();
  const property = fc.asyncProperty(arb, async (input) => {
    figure.inputs += 1;
    const errorsBefore = world.errors.length;
    const before = opts.stateless ? undefined : await world.snapshot();
    const res = await send(input);
    figure.statuses[res.status] = (figure.statuses[res.status] ?? 0) + 1;
    const body = bodyText(res);
    if (res.status >= 500 && !opts.prescribed5xx?.(res)) {
      throw new Error(
        `${endpoint} answered ${res.status}: ${body.slice(0, 300)}\nserver log: ${world.errors.slice(errorsBefore).join('\n').slice(0, 1500)}`,
      );
    }
    const leak = leakIn(body, echoable(input));
    if (leak) throw new Error(`${endpoint} (${res.status}) shows ${leak}: ${body.slice(0, 400)}`);
    if (before && isRefusal(res)) {
      const changed = changedKeys(before, await world.snapshot());
      if (changed.length) throw new Error(`${endpoint} refused (${res.status}) but changed state: ${changed.slice(0, 5).join(', ')}`);
    }
  });
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
  try {
    await fc.assert(property, {
      numRuns: opts.runs ?? RUNS,
      ...(seed !== undefined ? { seed } : {}),
      ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
      ...(opts.examples ? { examples: opts.examples.map((e) => [e] as [T]) } : {}),
    });
  } catch (err) {
    figure.failed = true;
    throw err;
  } finally {
    figure.ms = Date.now() - started;
  }
}

/** Writes this file's figures where `npm run fuzz` collects them (nothing in a plain jest run). */
export function reportFigures(file: string): void {
  const dir = process.env.FUZZ_REPORT_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${file}.json`), JSON.stringify(figures, null, 2));
}
