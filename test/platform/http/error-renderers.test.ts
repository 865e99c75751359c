import Koa, { type Context } from 'koa';
import { pino } from 'pino';
import { FhirError } from '../../../src/domain/fhir/errors.js';
import { ScimError, invalidFilter } from '../../../src/domain/scim/errors.js';
import { errorBoundary, requireRedis } from '../../../src/platform/http/errors.js';
import { PageError } from '../../../src/platform/http/error-page.js';
import { fhirErrorBoundary } from '../../../src/platform/http/fhir.js';
import { OAuthError, challenge, oauthErrors } from '../../../src/platform/http/oauth-error.js';
import { scimErrorBoundary } from '../../../src/platform/http/scim.js';
import { serve, type Served } from '../../support/koa-server.js';

/**
 * One renderer per wire format, over real HTTP: OAuth JSON (with its challenge), SCIM errors,
 * OperationOutcomes and the HTML error page, and the generic boundary that picks between them.
 */

const logger = pino({ level: 'silent' });

class TranslatedError extends Error {}

/** Throws what `GET /<kind>` names, behind the boundary of each format. */
function thrower(ctx: Context): never {
  const kind = ctx.path.split('/').pop();
  if (kind === 'oauth')
    throw new OAuthError(401, 'invalid_token', 'the token has expired', challenge('Bearer', { realm: 'api', error: 'invalid_token' }));
  if (kind === 'http') throw new PageError(403, 'access_denied', 'You may not see <this> page.');
  if (kind === 'scim') throw new ScimError(401, undefined, 'a token is required', { 'WWW-Authenticate': 'Bearer realm="scim"' });
  if (kind === 'scim-filter') throw invalidFilter('the filter is not valid');
  if (kind === 'fhir') throw new FhirError(412, 'conflict', 'If-Match does not match');
  if (kind === 'translated') throw new TranslatedError('a domain error');
  if (kind === 'koa') ctx.throw(405, 'use GET');
  if (kind === 'outage') throw new Error('Connection is closed.');
  throw new Error('a bug with a secret in it');
}

let redisUp = true;

function app(): Koa {
  const koa = new Koa();
  koa.use(async (ctx, next) => {
    ctx.state.requestId = 'req-1234';
    await next();
  });
  koa.use(errorBoundary(logger, () => redisUp));
  koa.use(requireRedis(() => redisUp, /^\/healthz$/));
  koa.use(async (ctx, next) => {
    if (ctx.path.startsWith('/oauth/'))
      return oauthErrors((err) => (err instanceof TranslatedError ? new OAuthError(400, 'invalid_request', err.message) : undefined))(
        ctx,
        next,
      );
    if (ctx.path.startsWith('/scim/')) return scimErrorBoundary(logger)(ctx, next);
    if (ctx.path.startsWith('/fhir/'))
      return fhirErrorBoundary(logger, 'test API', (err) =>
        err instanceof TranslatedError ? new FhirError(422, 'business-rule', err.message) : undefined,
      )(ctx, next);
    return next();
  });
  koa.use(async (ctx) => {
    if (ctx.path === '/found') {
      ctx.body = { ok: true };
      return;
    }
    if (ctx.path !== '/missing') thrower(ctx);
  });
  return koa;
}

let s: Served;
beforeAll(async () => {
  s = await serve(app());
});
afterAll(() => s.close());
afterEach(() => {
  redisUp = true;
});

const get = (path: string, accept = 'application/json') => fetch(`${s.url}${path}`, { headers: { accept } });

describe('OAuth JSON (oauth-error.ts)', () => {
  test('an OAuthError: its status, {error, error_description}, its challenge, never cached', async () => {
    const res = await get('/oauth/oauth');
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the token has expired' });
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  test("an endpoint's own error, translated in its one place", async () => {
    const res = await get('/oauth/translated');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'a domain error' });
    expect(res.headers.get('www-authenticate')).toBeNull();
  });

  test('anything else goes on to the generic boundary: a 500 that reveals nothing', async () => {
    const res = await get('/oauth/bug');
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'server_error', error_description: 'An unexpected error occurred.' });
  });

  test('an OAuthError is JSON even for a browser: its callers are programs', async () => {
    const res = await get('/elsewhere/oauth', 'text/html');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  });

  test('challenge() quotes each parameter, in order', () => {
    expect(challenge('Basic', { realm: 'introspection', error: 'invalid_client' })).toBe(
      'Basic realm="introspection", error="invalid_client"',
    );
    expect(challenge('Bearer', { error_description: 'say "hi" \\ bye' })).toBe('Bearer error_description="say \\"hi\\" \\\\ bye"');
    expect(challenge('Bearer')).toBe('Bearer');
  });
});

describe('SCIM (scim.ts)', () => {
  const scimError = async (res: Response) => {
    expect(res.headers.get('content-type')).toBe('application/scim+json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    return (await res.json()) as { detail: string };
  };

  test('a ScimError with its headers; scimType only when it has one', async () => {
    const res = await get('/scim/scim');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="scim"');
    expect(await scimError(res)).toEqual({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '401',
      detail: 'a token is required',
    });
    const filter = await get('/scim/scim-filter');
    expect(await scimError(filter)).toEqual({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '400',
      scimType: 'invalidFilter',
      detail: 'the filter is not valid',
    });
  });

  test("Koa's client errors keep their status; a failing store is 503 + Retry-After; a bug is a bare 500", async () => {
    const koa = await get('/scim/koa');
    expect(koa.status).toBe(405);
    expect((await scimError(koa)).detail).toBe('use GET');
    const outage = await get('/scim/outage');
    expect(outage.status).toBe(503);
    expect(outage.headers.get('retry-after')).toBe('5');
    expect((await scimError(outage)).detail).toBe('the service cannot reach its data store; try again shortly');
    const bug = await get('/scim/bug');
    expect(bug.status).toBe(500);
    expect((await scimError(bug)).detail).toBe('an unexpected error occurred');
  });
});

describe('FHIR OperationOutcome (fhir.ts)', () => {
  const outcome = async (res: Response) => {
    expect(res.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    return (await res.json()) as { issue: Record<string, string>[] };
  };

  test('a FhirError, and an API error through its translation', async () => {
    const res = await get('/fhir/fhir');
    expect(res.status).toBe(412);
    expect(await outcome(res)).toEqual({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'conflict', diagnostics: 'If-Match does not match' }],
    });
    const translated = await get('/fhir/translated');
    expect(translated.status).toBe(422);
    expect((await outcome(translated)).issue[0]).toMatchObject({ code: 'business-rule', diagnostics: 'a domain error' });
  });

  test('a failing store is transient 503 + Retry-After; a bug is an exception 500', async () => {
    const outage = await get('/fhir/outage');
    expect(outage.status).toBe(503);
    expect(outage.headers.get('retry-after')).toBe('5');
    expect((await outcome(outage)).issue[0]).toMatchObject({ code: 'transient' });
    const bug = await get('/fhir/bug');
    expect(bug.status).toBe(500);
    expect((await outcome(bug)).issue[0]).toEqual({ severity: 'error', code: 'exception', diagnostics: 'an unexpected error occurred' });
  });
});

describe('the generic boundary (errors.ts) and the error page (error-page.ts)', () => {
  test('an PageError is a page for a person: title, escaped message, code, request id', async () => {
    const res = await get('/page/http', 'text/html');
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    expect(html).toContain('Not allowed');
    expect(html).toContain('You may not see &lt;this&gt; page.');
    expect(html).toContain('access_denied');
    expect(html).toContain('req-1234');
  });

  test('the same PageError is OAuth JSON for a program', async () => {
    const res = await get('/page/http');
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'access_denied', error_description: 'You may not see <this> page.' });
  });

  test('nothing served: 404 as a page or as JSON', async () => {
    expect(await (await get('/missing')).json()).toEqual({ error: 'not_found', error_description: 'Nothing is served at GET /missing.' });
    const page = await get('/missing', 'text/html');
    expect(page.status).toBe(404);
    expect(await page.text()).toContain('Page not found');
  });

  test("Koa's client errors and bugs", async () => {
    expect(await (await get('/page/koa')).json()).toEqual({ error: 'invalid_request', error_description: 'use GET' });
    const bug = await get('/page/bug');
    expect(bug.status).toBe(500);
    expect(await bug.text()).not.toContain('secret');
  });

  test('store down: 503 + Retry-After in the format of the path', async () => {
    redisUp = false;
    const scim = await get('/scim/v2/Users');
    expect(scim.status).toBe(503);
    expect(scim.headers.get('retry-after')).toBe('5');
    expect(scim.headers.get('content-type')).toBe('application/scim+json; charset=utf-8');
    expect(await scim.json()).toEqual({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '503',
      detail: 'The service cannot reach its data store. Try again shortly.',
    });
    const fhir = await get('/fhir/Consent');
    expect(fhir.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
    expect(((await fhir.json()) as { issue: unknown[] }).issue[0]).toEqual({
      severity: 'error',
      code: 'transient',
      diagnostics: 'The service cannot reach its data store. Try again shortly.',
    });
    expect(await (await get('/token')).json()).toEqual({
      error: 'temporarily_unavailable',
      error_description: 'The service cannot reach its data store. Try again shortly.',
    });
    const page = await get('/manage', 'text/html');
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('Service temporarily unavailable');
  });
});
