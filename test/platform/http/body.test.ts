import Koa from 'koa';
import { readForm, readJson, type FormProblem, type JsonProblem } from '../../../src/platform/http/body.js';
import { postChunked, serve, type Served } from '../../support/koa-server.js';

/**
 * The one body reader, over real HTTP: each problem reaches the API's `refuse` (here: a 4xx whose
 * body names the problem), and every refusal reaches the client, even of a body still streaming.
 */

class Refused extends Error {
  constructor(readonly problem: JsonProblem | FormProblem) {
    super(problem.kind);
  }
}

const LIMIT = 64;

function app(): Koa {
  const koa = new Koa();
  koa.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      ctx.status = err.problem.kind === 'too-large' ? 413 : err.problem.kind === 'media-type' ? 415 : 400;
      ctx.body = err.problem;
    }
  });
  koa.use(async (ctx) => {
    const refuse = (problem: JsonProblem | FormProblem) => new Refused(problem);
    if (ctx.path === '/json')
      ctx.body = { read: await readJson(ctx, { types: ['application/json', 'application/scim+json'], limit: LIMIT, refuse }) };
    else if (ctx.path === '/json-required')
      ctx.body = { read: await readJson(ctx, { types: ['application/json'], limit: LIMIT, required: true, refuse }) };
    else if (ctx.path === '/form')
      ctx.body = { read: Object.fromEntries(await readForm(ctx, { types: ['application/x-www-form-urlencoded'], limit: LIMIT, refuse })) };
  });
  return koa;
}

let s: Served;
beforeAll(async () => {
  s = await serve(app());
});
afterAll(() => s.close());

const post = (path: string, body: string | undefined, type?: string) =>
  fetch(`${s.url}${path}`, {
    method: 'POST',
    ...(type ? { headers: { 'content-type': type } } : {}),
    ...(body !== undefined ? { body } : {}),
  });

describe('readJson', () => {
  test('parses a body of any of the accepted media types', async () => {
    for (const type of ['application/json', 'application/scim+json; charset=utf-8']) {
      const res = await post('/json', '{"a":[1,"é"]}', type);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ read: { a: [1, 'é'] } });
    }
  });

  test('any JSON value is read; the caller checks its shape', async () => {
    expect(await (await post('/json', '[1,2]', 'application/json')).json()).toEqual({ read: [1, 2] });
  });

  test('another media type is a media-type problem naming the accepted ones', async () => {
    const res = await post('/json', '{}', 'text/plain');
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({ kind: 'media-type', types: ['application/json', 'application/scim+json'] });
  });

  test('no body: a media-type problem, or "missing" when the API requires a body', async () => {
    expect(await (await post('/json', undefined)).json()).toMatchObject({ kind: 'media-type' });
    const res = await post('/json-required', undefined);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ kind: 'missing' });
  });

  test('an empty or broken body is not-json', async () => {
    expect(await (await post('/json', '', 'application/json')).json()).toEqual({ kind: 'not-json' });
    expect(await (await post('/json', '{"a":', 'application/json')).json()).toEqual({ kind: 'not-json' });
  });

  test('a body over the limit is too-large, with Content-Length', async () => {
    const res = await post('/json', JSON.stringify({ pad: 'x'.repeat(LIMIT) }), 'application/json');
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ kind: 'too-large', limit: LIMIT });
  });

  test('a body of exactly the limit is read', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(LIMIT - 10) });
    expect(Buffer.byteLength(body)).toBe(LIMIT);
    expect((await post('/json', body, 'application/json')).status).toBe(200);
  });

  test('a chunked body is assembled from its chunks', async () => {
    const res = await postChunked(`${s.url}/json`, 'application/json', ['{"a":', '"b', 'c"}']);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ read: { a: 'bc' } });
  });

  test('a chunked body that grows past the limit is refused, and the refusal reaches the client', async () => {
    const res = await postChunked(`${s.url}/json`, 'application/json', ['{"pad":"', 'x'.repeat(LIMIT), 'x'.repeat(LIMIT), '"}']);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text)).toEqual({ kind: 'too-large', limit: LIMIT });
    // The connection still serves the next request.
    expect((await post('/json', '{}', 'application/json')).status).toBe(200);
  });
});

describe('readForm', () => {
  test('parses an urlencoded form', async () => {
    const res = await post('/form', 'token=abc&token_type_hint=access_token&x=%C3%A9', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ read: { token: 'abc', token_type_hint: 'access_token', x: 'é' } });
  });

  test('a repeated parameter is refused, by name (RFC 6749 §3.1)', async () => {
    const res = await post('/form', 'a=1&token=x&token=y', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ kind: 'repeated', name: 'token' });
  });

  test('JSON is not a form; an oversized form is too-large', async () => {
    expect(await (await post('/form', '{"token":"x"}', 'application/json')).json()).toEqual({
      kind: 'media-type',
      types: ['application/x-www-form-urlencoded'],
    });
    const big = await post('/form', `token=${'x'.repeat(LIMIT)}`, 'application/x-www-form-urlencoded');
    expect(big.status).toBe(413);
  });
});
