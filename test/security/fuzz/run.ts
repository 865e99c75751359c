/*
 * `npm run fuzz`: the fuzz suite with many inputs per property (FUZZ_RUNS, default 4,600, so the
 * 22 properties try over 100,000 inputs), then a table of what was tried: inputs, time and the
 * status codes seen per endpoint. Exits with jest's status.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Figure } from './properties.js';

const runs = process.env.FUZZ_RUNS ?? '4600';
const dir = mkdtempSync(join(tmpdir(), 'smart-authz-fuzz-'));
const started = Date.now();
const jest = spawnSync('npx', ['jest', 'test/security/fuzz', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_RUNS: runs, FUZZ_REPORT_DIR: dir, NODE_OPTIONS: '--experimental-vm-modules --no-warnings' },
});
const figures: Figure[] = readdirSync(dir).flatMap((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Figure[]);
rmSync(dir, { recursive: true, force: true });

const rows = figures.map((f) => [
  f.endpoint,
  String(f.inputs),
  (f.ms / 1000).toFixed(1),
  f.failed ? 'FAILED' : 'ok',
  Object.entries(f.statuses)
    .map(([s, n]) => `${s}:${n}`)
    .join(' '),
]);
const head = ['endpoint', 'inputs', 'seconds', 'result', 'statuses'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
console.log(`\n${line(head)}\n${rows.map(line).join('\n')}`);
const total = figures.reduce((n, f) => n + f.inputs, 0);
const failed = figures.filter((f) => f.failed).length;
console.log(
  `\n${total} inputs over ${figures.length} properties in ${((Date.now() - started) / 1000).toFixed(0)} s; ${failed} propert${failed === 1 ? 'y' : 'ies'} failed.`,
);
process.exit(jest.status ?? 1);
