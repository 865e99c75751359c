import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';

/**
 * The layer rule (`npm run lint:layers`, .dependency-cruiser.cjs) really refuses what it is for:
 * run on a small tree of its own, an upward import, a sibling imported out of order and an import
 * cycle each fail it, and a tree that only imports downward passes.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function cruise(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'));
  dirs.push(dir);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
  );
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), 'src', '--config', join(ROOT, '.dependency-cruiser.cjs')],
    {
      cwd: dir,
      encoding: 'utf8',
    },
  );
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const DOWNWARD = {
  'src/domain/fhir/types.ts': 'export const A = 1;\n',
  'src/platform/http/page.ts': "import { A } from '../../domain/fhir/types.js';\nexport const B = A;\n",
  'src/oauth/clients/client.ts': "import { B } from '../../platform/http/page.js';\nexport const C = B;\n",
};

describe('the layer rule', () => {
  it('passes a tree that imports only downward', () => {
    const { status, output } = cruise(DOWNWARD);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('no dependency violations') });
  });

  it('refuses an import from a higher layer', () => {
    const { status, output } = cruise({
      ...DOWNWARD,
      'src/domain/fhir/types.ts': "import { C } from '../../oauth/clients/client.js';\nexport const A = C;\n",
    });
    expect(status).not.toBe(0);
    expect(output).toContain('layer-domain');
  });

  it('refuses a sibling folder imported out of order', () => {
    const { status, output } = cruise({
      ...DOWNWARD,
      'src/records/consent/store.ts': 'export const S = 1;\n',
      'src/records/directory/users.ts': "import { S } from '../consent/store.js';\nexport const U = S;\n",
    });
    expect(status).not.toBe(0);
    expect(output).toContain('order-records-directory');
  });

  it('refuses an import cycle, even inside one folder', () => {
    const { status, output } = cruise({
      ...DOWNWARD,
      'src/records/audit/a.ts': "import { Y } from './b.js';\nexport const X = 1;\nexport const Z = Y;\n",
      'src/records/audit/b.ts': "import { X } from './a.js';\nexport const Y = X;\n",
    });
    expect(status).not.toBe(0);
    expect(output).toContain('no-cycle');
  });
});
