import { readFileSync } from 'node:fs';
import { ENV_VARS } from '../../../src/platform/config/load.js';
import { CONFIGURATION_PAGE, TABLE_END, TABLE_START, configurationTable, withConfigurationTable } from '../../../scripts/config-docs.js';

/**
 * docs/configuration.md's variable table is generated from the schema (scripts/config-docs.ts);
 * these fail when the page was not regenerated after a change to a setting or a variable.
 */
describe('docs/configuration.md', () => {
  const page = readFileSync(CONFIGURATION_PAGE, 'utf8');

  test('is current with the configuration schema (regenerate with npm run docs:config)', () => {
    expect(page).toContain(TABLE_START);
    expect(page).toContain(TABLE_END);
    expect(withConfigurationTable(page) === page ? 'current' : 'out of date: run npm run docs:config').toBe('current');
  });

  test('names every environment variable, each on a row with a type, a default and a description', () => {
    const table = configurationTable();
    const rows = table.split('\n').slice(2);
    const missing = ENV_VARS.map(([name]) => name).filter(
      (name) => !rows.some((row) => row.startsWith('| ') && row.includes(`\`${name}\``)),
    );
    expect(missing).toEqual([]);
    for (const row of rows) {
      const cells = row
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim());
      expect(cells).toHaveLength(5);
      expect(cells.every(Boolean)).toBe(true);
    }
  });
});
