import Koa from 'koa';
import Router from '@koa/router';
import supertest from 'supertest';
import { gatedRoutes } from '../../../src/platform/http/router-gate.js';

/** A router behind the gate, then a fallback that says the request passed it by. */
function appWith(router: Router) {
  const app = new Koa();
  app.use(gatedRoutes(router));
  app.use((ctx) => {
    ctx.body = 'passed by';
  });
  return supertest(app.callback());
}

describe('a feature router behind its start-of-path gate', () => {
  test('answers its routes (in any letter case, as @koa/router matches) and passes every other path on untouched', async () => {
    let middlewareRuns = 0;
    const router = new Router({ prefix: '/api' });
    router.use(async (_ctx, next) => {
      middlewareRuns++;
      await next();
    });
    router.get('/things/:id', (ctx) => {
      ctx.body = `thing ${ctx.params.id}`;
    });
    const request = appWith(router);
    expect((await request.get('/api/things/7')).text).toBe('thing 7');
    expect(middlewareRuns).toBe(1);
    expect((await request.get('/API/Things/8')).text).toBe('thing 8');
    const runs = middlewareRuns;
    expect((await request.get('/token')).text).toBe('passed by');
    expect((await request.post('/api')).text).toBe('passed by');
    expect(middlewareRuns).toBe(runs);
  });

  test('a router whose route starts with a parameter is not gated', async () => {
    const router = new Router();
    router.get('/:tenant/metadata', (ctx) => {
      ctx.body = `tenant ${ctx.params.tenant}`;
    });
    const request = appWith(router);
    expect((await request.get('/t1/metadata')).text).toBe('tenant t1');
    expect((await request.get('/t1/other')).text).toBe('passed by');
  });
});
