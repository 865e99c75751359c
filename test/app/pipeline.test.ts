import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type Provider from 'oidc-provider';
import { createServices } from '../../src/app/services.js';
import { createProvider } from '../../src/app/provider.js';
import { httpPipeline, type Step } from '../../src/app/pipeline.js';
import { ROUTES } from '../../src/oauth/paths.js';
import { resolveCookieKeys } from '../../src/platform/keys/cookie-keys.js';
import { createLogger } from '../../src/platform/ops/logger.js';
import { createTestApp, type TestApp } from '../support/test-app.js';

/**
 * docs/architecture.md quotes the HTTP pipeline (middleware order) and every route from the code:
 * the blocks between the `generated` markers are rebuilt here from app/pipeline.ts and the routers
 * it mounts, and must equal the page. `UPDATE_DOCS=1 npm run jest -- test/app/pipeline.test.ts`
 * (npm run docs:architecture) rewrites them.
 */

const PAGE = fileURLToPath(new URL('../../docs/architecture.md', import.meta.url));

let t: TestApp;
let steps: Step[];

beforeAll(async () => {
  t = await createTestApp();
  const deps = {
    config: t.config,
    logger: createLogger('silent'),
    redis: t.redis,
    keyspace: t.keyspace,
    metrics: t.metrics,
    jwks: await t.keystore.providerJwks(),
    cookieKeys: await resolveCookieKeys(t.config, t.redis, t.keyspace),
  };
  const services = createServices(deps, () => provider);
  const provider: Provider = createProvider(services);
  steps = httpPipeline(services, provider);
});

afterAll(async () => {
  await t.close();
});

function middlewareBlock(): string {
  const lines = steps.map((s, i) => `${i + 1}. \`${s.name}\`: ${s.purpose}${s.router ? ' (routes below)' : ''}`);
  return [
    ...lines,
    `${steps.length + 1}. oidc-provider's own router: ${Object.values(ROUTES)
      .map((p) => `\`${p}\``)
      .join(', ')}, \`/interaction/:uid\` (its endpoints, configured in \`src/app/provider-configuration.ts\`)`,
  ].join('\n');
}

function routesBlock(): string {
  const rows = ['| step | method | path |', '|---|---|---|'];
  for (const step of steps) {
    for (const layer of step.router?.stack ?? []) {
      // Layers without methods are the router's own middleware (router.use), not routes.
      if (!layer.methods.length) continue;
      const methods = layer.methods.filter((m) => m !== 'HEAD');
      rows.push(
        `| \`${step.name}\` | ${methods.length > 10 ? 'any (answers 405 or redirects)' : methods.join(', ')} | \`${layer.path}\` |`,
      );
    }
  }
  for (const [name, path] of Object.entries(ROUTES)) rows.push(`| oidc-provider (\`${name}\`) | see RFCs | \`${path}\` |`);
  return rows.join('\n');
}

/** The page with the block after `<!-- generated: name -->` (up to `<!-- /generated -->`) replaced. */
function withBlock(page: string, name: string, block: string): string {
  const start = `<!-- generated: ${name} (test/app/pipeline.test.ts; do not edit by hand) -->`;
  const re = new RegExp(`<!-- generated: ${name}[^>]*-->\\n[\\s\\S]*?(?:<!-- /generated -->|(?=\\n## ))`);
  if (!re.test(page)) throw new Error(`docs/architecture.md has no "<!-- generated: ${name} -->" marker`);
  return page.replace(re, `${start}\n${block}\n<!-- /generated -->`);
}

describe('docs/architecture.md', () => {
  it('lists every step of the HTTP pipeline, in order, and every route the pipeline mounts', () => {
    // The list is real: the steps are the ones buildApp mounts, each named once.
    expect(new Set(steps.map((s) => s.name)).size).toBe(steps.length);
    expect(steps[0]!.name).toBe('request-context');
    expect(steps.filter((s) => s.router).length).toBeGreaterThan(5);
    const current = readFileSync(PAGE, 'utf8');
    const expected = withBlock(withBlock(current, 'middleware', middlewareBlock()), 'routes', routesBlock());
    if (process.env.UPDATE_DOCS === '1') writeFileSync(PAGE, expected);
    else expect(current).toBe(expected);
  });
});
