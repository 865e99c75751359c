import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import { parseSize } from '../../platform/http/body-limit.js';
import type { GroupStore } from '../../records/directory/group-store.js';
import type { ScimGroup, ScimUser } from '../../records/directory/model.js';
import type { UserStore } from '../../records/directory/user-store.js';
import { requireScimToken, type ScimTokens } from './auth.js';
import { allResourceTypes, allSchemas, resourceTypeResource, schemaResource, serviceProviderConfig } from './discovery.js';
import { ScimError, invalidSyntax, invalidValue, notFound } from '../../domain/scim/errors.js';
import { readScimJson, scimErrorBoundary, sendScim } from '../../platform/http/scim.js';
import { applyPatch } from './patch.js';
import { parseAttributeList, project, type Projection } from './projection.js';
import type { QueryPage, ResourceQuery } from '../../records/directory/scim/query.js';
import { isPlainObject } from '../../records/directory/scim/resource-input.js';
import { ALL_SCHEMAS, GROUP_RESOURCE, RESOURCE_TYPES, USER_RESOURCE } from '../../records/directory/scim/schema-definitions.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import { scimChangeEvents } from './scim-audit.js';
import { factorRemovals, refuseFactorWrites, removeFactors } from './second-factors.js';
import type { SecondFactors } from '../../records/directory/factors/second-factors.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * SCIM 2.0 (RFC 7644) at /scim/v2: Users, Groups, searches, and the discovery endpoints, for an
 * administrator's provisioning system. Handlers are thin: the stores hold the rules, PATCH is in
 * patch.ts, filters in filter.ts. Every answer is application/scim+json and never cached.
 */

export const SCIM_PREFIX = '/scim/v2';
export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const SEARCH_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

export interface ScimDeps {
  store: UserStore;
  groups: GroupStore;
  /** Tokens for SCIM's own audience, `<issuer>/scim/v2` (oauth/provider/admin-apis.ts). */
  lookup: ScimTokens;
  config: Config;
  logger: Logger;
  /** Every change is recorded before it is answered. */
  audit: AuditRecorder;
  /** An administrator resets a user's second factors with PATCH remove `secondFactors`. */
  factors: Pick<SecondFactors, 'reset' | 'remove'>;
}

interface ListRequest extends ResourceQuery, Projection {}

function integerParam(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = String(value);
  if (!/^-?\d{1,9}$/.test(text)) throw invalidValue(`${name} must be an integer`);
  return Number(text);
}

function stringParam(name: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) throw invalidValue(`${name} must be given once`);
  if (typeof value !== 'string') throw invalidValue(`${name} must be a string`);
  return value;
}

function listRequest(source: Record<string, unknown>): ListRequest {
  const get = (name: string) => source[Object.keys(source).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name];
  const req: ListRequest = {};
  const filter = stringParam('filter', get('filter'));
  const sortBy = stringParam('sortBy', get('sortBy'));
  const sortOrder = stringParam('sortOrder', get('sortOrder'));
  const startIndex = integerParam('startIndex', get('startIndex'));
  const count = integerParam('count', get('count'));
  const attributes = parseAttributeList(get('attributes'));
  const excludedAttributes = parseAttributeList(get('excludedAttributes'));
  if (filter !== undefined) req.filter = filter;
  if (sortBy !== undefined) req.sortBy = sortBy;
  if (sortOrder !== undefined) req.sortOrder = sortOrder;
  if (startIndex !== undefined) req.startIndex = startIndex;
  if (count !== undefined) req.count = count;
  if (attributes) req.attributes = attributes;
  if (excludedAttributes) req.excludedAttributes = excludedAttributes;
  return req;
}

function projectionOf(ctx: Context): Projection {
  const r = listRequest(ctx.query as Record<string, unknown>);
  return {
    ...(r.attributes ? { attributes: r.attributes } : {}),
    ...(r.excludedAttributes ? { excludedAttributes: r.excludedAttributes } : {}),
  };
}

function searchBody(body: unknown): ListRequest {
  if (!isPlainObject(body)) throw invalidSyntax('the body must be a SearchRequest');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.includes(SEARCH_REQUEST_SCHEMA))
    throw invalidSyntax(`schemas must contain ${SEARCH_REQUEST_SCHEMA}`);
  return listRequest(body);
}

/** Whether a group answer needs its members (they can be many; Entra asks without them). */
function wantsMembers(p: Projection): boolean {
  const mentions = (list: string[] | undefined) => list?.some((a) => /(^|:)members(\.|$)/i.test(a)) ?? false;
  if (p.excludedAttributes && p.excludedAttributes.some((a) => /(^|:)members$/i.test(a))) return false;
  if (p.attributes) return mentions(p.attributes);
  return true;
}

function listResponse(page: QueryPage<Record<string, unknown>>, items: Array<Record<string, unknown>>): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: page.totalResults,
    itemsPerPage: items.length,
    startIndex: page.startIndex,
    Resources: items,
  };
}

function ifMatch(ctx: Context): { ifMatch?: string } {
  const value = ctx.get('If-Match');
  return value ? { ifMatch: value } : {};
}

function sendResource(ctx: Context, status: number, resource: ScimUser | ScimGroup, projected: Record<string, unknown>): void {
  ctx.set('ETag', resource.meta.version);
  if (status === 201 && resource.meta.location) ctx.set('Location', resource.meta.location);
  sendScim(ctx, status, projected);
}

export function scimRoutes(deps: ScimDeps): Router {
  const { store, groups, config, logger } = deps;
  const router = new Router({ prefix: SCIM_PREFIX });
  const base = `${config.issuer}${SCIM_PREFIX}`;
  const bodyLimit = parseSize(config.http.bodyLimit);
  const audit = async (ctx: Context, event: string, id: string, facts: { name?: string; body?: unknown } = {}) => {
    logger.info({ event, id, client: ctx.state.scimClient, requestId: ctx.state.requestId }, 'SCIM change');
    const [, resource, change] = /^scim\.(user|group)\.(created|replaced|patched|deleted)$/.exec(event)!;
    const kinds = { created: 'create', replaced: 'update', patched: 'patch', deleted: 'delete' } as const;
    const actor = { client: { clientId: String(ctx.state.scimClient), ip: ctx.ip } };
    for (const e of scimChangeEvents(config.issuer, actor, {
      resource: resource === 'user' ? 'User' : 'Group',
      change: kinds[change as keyof typeof kinds],
      id,
      ...facts,
    }))
      await deps.audit.record(e);
  };

  router.use(scimErrorBoundary(logger));
  router.use(requireScimToken(deps.lookup));
  router.use(async (ctx, next) => {
    requestState(ctx).routeLabel = 'scim';
    await next();
  });

  router.get('/ServiceProviderConfig', (ctx) => sendScim(ctx, 200, serviceProviderConfig(base, config.scim)));
  router.get('/ResourceTypes', (ctx) => {
    const items = allResourceTypes(base);
    sendScim(ctx, 200, {
      schemas: [LIST_RESPONSE_SCHEMA],
      totalResults: items.length,
      itemsPerPage: items.length,
      startIndex: 1,
      Resources: items,
    });
  });
  router.get('/ResourceTypes/:id', (ctx) => {
    const rt = RESOURCE_TYPES.find((r) => r.name === ctx.params.id);
    if (!rt) throw notFound('ResourceType', ctx.params.id!);
    sendScim(ctx, 200, resourceTypeResource(base, rt));
  });
  router.get('/Schemas', (ctx) => {
    const items = allSchemas(base);
    sendScim(ctx, 200, {
      schemas: [LIST_RESPONSE_SCHEMA],
      totalResults: items.length,
      itemsPerPage: items.length,
      startIndex: 1,
      Resources: items,
    });
  });
  router.get('/Schemas/:id', (ctx) => {
    const schema = ALL_SCHEMAS.find((s) => s.id.toLowerCase() === ctx.params.id!.toLowerCase());
    if (!schema) throw notFound('Schema', ctx.params.id!);
    sendScim(ctx, 200, schemaResource(base, schema));
  });

  // Users
  const listUsers = async (ctx: Context, req: ListRequest) => {
    const page = await store.search(req);
    const items = page.resources.map((u) => project(u as unknown as Record<string, unknown>, USER_RESOURCE, req));
    sendScim(ctx, 200, listResponse(page as unknown as QueryPage<Record<string, unknown>>, items));
  };
  router.get('/Users', (ctx) => listUsers(ctx, listRequest(ctx.query as Record<string, unknown>)));
  router.post('/Users/.search', async (ctx) => listUsers(ctx, searchBody(await readScimJson(ctx, bodyLimit))));
  router.post('/Users', async (ctx) => {
    const body = await readScimJson(ctx, bodyLimit);
    refuseFactorWrites(body, undefined);
    const user = await store.create(body);
    await audit(ctx, 'scim.user.created', user.id, { name: user.userName, body });
    sendResource(ctx, 201, user, project(user as unknown as Record<string, unknown>, USER_RESOURCE, projectionOf(ctx)));
  });
  router.get('/Users/:id', async (ctx) => {
    const user = await store.get(ctx.params.id!);
    if (!user) throw notFound('User', ctx.params.id!);
    if (ctx.get('If-None-Match') && ctx.get('If-None-Match') === user.meta.version) {
      ctx.set('ETag', user.meta.version);
      sendScim(ctx, 304);
      return;
    }
    sendResource(ctx, 200, user, project(user as unknown as Record<string, unknown>, USER_RESOURCE, projectionOf(ctx)));
  });
  router.put('/Users/:id', async (ctx) => {
    const body = await readScimJson(ctx, bodyLimit);
    const user = await store.update(
      ctx.params.id!,
      (current) => {
        refuseFactorWrites(body, current);
        return body;
      },
      ifMatch(ctx),
    );
    await audit(ctx, 'scim.user.replaced', user.id, { name: user.userName, body });
    sendResource(ctx, 200, user, project(user as unknown as Record<string, unknown>, USER_RESOURCE, projectionOf(ctx)));
  });
  router.patch('/Users/:id', async (ctx) => {
    const body = await readScimJson(ctx, bodyLimit);
    // Removing secondFactors resets them (second-factors.ts); the rest of the message is applied
    // first, so a message refused as a whole resets nothing. The record is written either way,
    // so the version (ETag) moves when the factors do.
    const { removals, rest } = factorRemovals(body);
    let user = await store.update(
      ctx.params.id!,
      (current) => (rest === undefined ? current : applyPatch(current as unknown as Record<string, unknown>, rest, USER_RESOURCE)),
      ifMatch(ctx),
    );
    if (removals.length) {
      const actor = { client: { clientId: String(ctx.state.scimClient), ip: ctx.ip } };
      await removeFactors({ factors: deps.factors, audit: deps.audit, issuer: config.issuer }, actor, user, removals);
      logger.info(
        { event: 'scim.user.factors_removed', id: user.id, client: ctx.state.scimClient, requestId: ctx.state.requestId },
        'SCIM change',
      );
      user = (await store.get(user.id)) ?? user;
    }
    await audit(ctx, 'scim.user.patched', user.id, { name: user.userName, body });
    sendResource(ctx, 200, user, project(user as unknown as Record<string, unknown>, USER_RESOURCE, projectionOf(ctx)));
  });
  router.delete('/Users/:id', async (ctx) => {
    if (!(await store.delete(ctx.params.id!, ifMatch(ctx)))) throw notFound('User', ctx.params.id!);
    await audit(ctx, 'scim.user.deleted', ctx.params.id!);
    sendScim(ctx, 204);
  });

  // Groups
  const listGroups = async (ctx: Context, req: ListRequest) => {
    const page = await groups.search(req, { members: wantsMembers(req) });
    const items = page.resources.map((g) => project(g as unknown as Record<string, unknown>, GROUP_RESOURCE, req));
    sendScim(ctx, 200, listResponse(page as unknown as QueryPage<Record<string, unknown>>, items));
  };
  const sendGroup = (ctx: Context, status: number, group: ScimGroup) => {
    const p = projectionOf(ctx);
    const shown = wantsMembers(p) ? group : (({ members: _m, ...rest }) => rest)(group);
    sendResource(ctx, status, group, project(shown as unknown as Record<string, unknown>, GROUP_RESOURCE, p));
  };
  router.get('/Groups', (ctx) => listGroups(ctx, listRequest(ctx.query as Record<string, unknown>)));
  router.post('/Groups/.search', async (ctx) => listGroups(ctx, searchBody(await readScimJson(ctx, bodyLimit))));
  router.post('/Groups', async (ctx) => {
    const group = await groups.create(await readScimJson(ctx, bodyLimit));
    await audit(ctx, 'scim.group.created', group.id, { name: group.displayName });
    sendGroup(ctx, 201, group);
  });
  router.get('/Groups/:id', async (ctx) => {
    const group = await groups.get(ctx.params.id!, { members: wantsMembers(projectionOf(ctx)) });
    if (!group) throw notFound('Group', ctx.params.id!);
    sendGroup(ctx, 200, group);
  });
  router.put('/Groups/:id', async (ctx) => {
    const body = await readScimJson(ctx, bodyLimit);
    const group = await groups.replace(ctx.params.id!, body, ifMatch(ctx));
    await audit(ctx, 'scim.group.replaced', group.id, { name: group.displayName });
    sendGroup(ctx, 200, group);
  });
  router.patch('/Groups/:id', async (ctx) => {
    const body = await readScimJson(ctx, bodyLimit);
    const group = await groups.update(
      ctx.params.id!,
      (current) => applyPatch(current as unknown as Record<string, unknown>, body, GROUP_RESOURCE),
      ifMatch(ctx),
    );
    await audit(ctx, 'scim.group.patched', group.id, { name: group.displayName });
    sendGroup(ctx, 200, group);
  });
  router.delete('/Groups/:id', async (ctx) => {
    if (!(await groups.delete(ctx.params.id!, ifMatch(ctx)))) throw notFound('Group', ctx.params.id!);
    await audit(ctx, 'scim.group.deleted', ctx.params.id!);
    sendScim(ctx, 204);
  });

  // Search across both resource types (RFC 7644 §3.4.3): Users first, then Groups.
  router.post('/.search', async (ctx) => {
    const req = searchBody(await readScimJson(ctx, bodyLimit));
    const startIndex = Math.max(1, req.startIndex ?? 1);
    const count = Math.min(Math.max(0, req.count ?? config.scim.maxPageSize), config.scim.maxPageSize);
    const attempt = async <T>(run: () => Promise<QueryPage<T>>): Promise<QueryPage<T> | ScimError> => {
      try {
        return await run();
      } catch (err) {
        if (err instanceof ScimError && err.scimType === 'invalidFilter') return err;
        throw err;
      }
    };
    const users = await attempt(() => store.search({ ...req, startIndex, count }));
    const usersTotal = users instanceof ScimError ? 0 : users.totalResults;
    const userItems = users instanceof ScimError ? [] : users.resources;
    const left = count - userItems.length;
    const groupsPage = await attempt(() =>
      groups.search({ ...req, startIndex: Math.max(1, startIndex - usersTotal), count: left }, { members: wantsMembers(req) }),
    );
    if (users instanceof ScimError && groupsPage instanceof ScimError) throw users;
    const groupItems = groupsPage instanceof ScimError ? [] : groupsPage.resources;
    const items = [
      ...userItems.map((u) => project(u as unknown as Record<string, unknown>, USER_RESOURCE, req)),
      ...groupItems.map((g) => project(g as unknown as Record<string, unknown>, GROUP_RESOURCE, req)),
    ];
    const total = usersTotal + (groupsPage instanceof ScimError ? 0 : groupsPage.totalResults);
    sendScim(ctx, 200, { schemas: [LIST_RESPONSE_SCHEMA], totalResults: total, itemsPerPage: items.length, startIndex, Resources: items });
  });

  router.all('/Bulk', () => {
    throw new ScimError(501, undefined, 'bulk operations are not supported (see ServiceProviderConfig)');
  });
  router.all('/Me', () => {
    throw new ScimError(501, undefined, '/Me is not supported: SCIM here is for administration clients, not for users');
  });
  for (const path of [
    '/Users',
    '/Groups',
    '/Users/:id',
    '/Groups/:id',
    '/ServiceProviderConfig',
    '/ResourceTypes',
    '/Schemas',
    '/.search',
  ]) {
    router.all(path, (ctx) => {
      ctx.set(
        'Allow',
        path.includes(':id')
          ? 'GET, PUT, PATCH, DELETE'
          : path === '/.search'
            ? 'POST'
            : path === '/Users' || path === '/Groups'
              ? 'GET, POST'
              : 'GET',
      );
      throw new ScimError(405, undefined, `${ctx.method} is not supported on ${path}`);
    });
  }
  router.all('/{*rest}', (ctx) => {
    throw new ScimError(404, undefined, `nothing is served at ${ctx.method} ${ctx.path}`);
  });
  return router;
}
