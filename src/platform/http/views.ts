import ejs from 'ejs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const VIEWS_DIR = fileURLToPath(new URL('../../../views/', import.meta.url));
export const SERVICE_NAME = 'SMART Authorization Server';

/** Renders a view; `<%= %>` escapes, and views never use unescaped output for request data. */
export async function renderView(name: string, data: Record<string, unknown>): Promise<string> {
  return ejs.renderFile(join(VIEWS_DIR, `${name}.ejs`), { serviceName: SERVICE_NAME, ...data }, { async: true, cache: true });
}

export const STATIC_CSS = readFileSync(join(VIEWS_DIR, 'static', 'app.css'));
