import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../../support/server-process.js';

/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser). A missing Chromium
 * fails the suite: `.ci/run` installs it, and a browser suite that skips itself proves nothing.
 */

export const SCREENSHOT_DIR = join(ROOT, 'test-results', 'e2e-screenshots');

export function chromiumPath(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH=${fromEnv} does not exist`);
    return fromEnv;
  }
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const found = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (found) return found;
    } catch {
      /* not this name */
    }
  }
  throw new Error('Chromium is not installed: the browser suite needs it (apt-get install -y chromium, or set CHROMIUM_PATH)');
}

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', ...extraArgs],
  });
}

/** Problems the browser reported on a page: CSP violations, uncaught errors. */
export interface PageWatch {
  csp: string[];
  errors: string[];
}

const CSP_TEXT = /Content Security Policy|Refused to/i;

/** A page whose console and errors are recorded for the whole test. */
export async function watchedPage(context: BrowserContext, watch: PageWatch): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (msg) => {
    const text = msg.text();
    if (CSP_TEXT.test(text)) watch.csp.push(`${page.url()}: ${text}`);
  });
  page.on('pageerror', (err) => {
    if (CSP_TEXT.test(err.message)) watch.csp.push(`${page.url()}: ${err.message}`);
    else watch.errors.push(`${page.url()}: ${err.message}`);
  });
  return page;
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeProblem {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core in the page. It is evaluated over the DevTools protocol, which the page's CSP
 * (no scripts at all on the server's pages) does not govern, so the check sees the real page.
 * Returns the serious and critical violations.
 */
export async function axeProblems(page: Page): Promise<AxeProblem[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: { run(): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }[] }> };
      }
    ).axe;
    const result = await axe.run();
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? 'unknown',
      help: v.help,
      targets: v.nodes.map((n) => JSON.stringify(n.target)),
    }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}
