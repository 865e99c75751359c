import ejs from 'ejs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

export const VIEWS_DIR = fileURLToPath(new URL('../../../views/', import.meta.url));
export const SERVICE_NAME = 'SMART Authorization Server';

/** Renders a view; `<%= %>` escapes, and views never use unescaped output for request data. */
export async function renderView(name: string, data: Record<string, unknown>): Promise<string> {
  return ejs.renderFile(join(VIEWS_DIR, `${name}.ejs`), { serviceName: SERVICE_NAME, ...data }, { async: true, cache: true });
}

export const STATIC_CSS = readFileSync(join(VIEWS_DIR, 'static', 'app.css'));

/**
 * The only scripts this server serves: its WebAuthn glue (views/static/webauthn.js) and the
 * @simplewebauthn/browser bundle it calls, read from the installed package so the version that
 * answers the server's options is the one the server was built with.
 */
const browserPackageDir = dirname(dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')));
export const STATIC_SCRIPTS: ReadonlyMap<string, Buffer> = new Map([
  ['/static/webauthn.js', readFileSync(join(VIEWS_DIR, 'static', 'webauthn.js'))],
  ['/static/simplewebauthn-browser.js', readFileSync(join(browserPackageDir, 'dist', 'bundle', 'index.umd.min.js'))],
]);
