import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import { parseSize } from '../../platform/http/body-limit.js';
import { authenticateConsentCaller, confineToOwnPatient, requireAction, requirePatient, type ConsentCaller } from './api-auth.js';
import type { ApiTokens } from '../../oauth/introspection/token-lookup.js';
import type { ConsentService } from '../../records/consent/consent-service.js';
import { ConsentSearchTooBroadError, type StoredConsent, type StoredResource } from '../../records/consent/consent-store.js';
import { ConsentNotFoundError, ConsentStateError } from '../../records/consent/errors.js';
import { FHIR_JSON, FhirError, JSON_PATCH } from '../../domain/fhir/errors.js';
import { fhirErrorBoundary, readJsonBody, sendFhir } from '../../platform/http/fhir.js';
import { pageLinks } from '../../domain/fhir/search-params.js';
import { parseConsentSearch, wantsProvenance } from '../../records/consent/search-params.js';
import { PROVENANCE_PATH, provenanceIncludeCaller } from './provenance-routes.js';
import { checkPatch, checkPutBody } from '../../records/consent/withdrawal-input.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * The Consent API, FHIR REST style at /fhir/Consent: read, search, and withdrawal (PUT or PATCH
 * to status `inactive`, or DELETE). Consents are created by the authorization flow only.
 * Every answer is application/fhir+json (errors are OperationOutcomes) and never cached.
 */

export const CONSENT_PATH = '/fhir/Consent';

export interface ConsentRoutesDeps {
  consents: ConsentService;
  /** Access tokens for this server's own API audience, their sessions still open. */
  lookup: ApiTokens;
  config: Config;
  logger: Logger;
}

type Query = Record<string, string | string[] | undefined>;

function etag(version: number): string {
  return `W/"${version}"`;
}

/** The Consent store's own errors, as FHIR issue types. */
function consentProblem(err: unknown): FhirError | undefined {
  if (err instanceof ConsentNotFoundError) return new FhirError(404, 'not-found', err.message);
  if (err instanceof ConsentStateError) return new FhirError(422, 'business-rule', err.message);
  if (err instanceof ConsentSearchTooBroadError) return new FhirError(400, 'too-costly', err.message);
  return undefined;
}

function fhirErrors(logger: Logger) {
  return fhirErrorBoundary(logger, 'Consent API', consentProblem);
}

export function consentRoutes(deps: ConsentRoutesDeps): Router {
  const { consents, config } = deps;
  const store = consents.store;
  const base = `${config.issuer}${CONSENT_PATH}`;
  const bodyLimit = parseSize(config.http.bodyLimit);
  const router = new Router();

  const caller = (ctx: Context): ConsentCaller => ctx.state.consentCaller as ConsentCaller;

  const found = async (ctx: Context): Promise<StoredConsent> => {
    const stored = await store.get(String(ctx.params.id));
    if (!stored) throw new ConsentNotFoundError(String(ctx.params.id));
    requirePatient(caller(ctx), stored.patientId);
    return stored;
  };

  const checkIfMatch = (ctx: Context, stored: StoredConsent) => {
    const expected = ctx.get('If-Match');
    if (expected && expected !== etag(stored.version) && expected !== `"${stored.version}"`) {
      throw new FhirError(412, 'conflict', `If-Match does not match the current version (${etag(stored.version)})`);
    }
  };

  const sendResource = (ctx: Context, status: number, resource: StoredResource) => {
    ctx.set('ETag', etag(Number(resource.meta.versionId)));
    ctx.set('Last-Modified', new Date(resource.meta.lastUpdated).toUTCString());
    sendFhir(ctx, status, resource);
  };

  const withdraw = async (ctx: Context, stored: StoredConsent) => consents.withdraw(stored.resource.id, caller(ctx).who);

  router.use(fhirErrors(deps.logger));
  router.use(async (ctx, next) => {
    requestState(ctx).routeLabel = 'consent';
    ctx.state.consentCaller = await authenticateConsentCaller(ctx.get('Authorization'), deps.lookup, config.issuer);
    await next();
  });

  router.get(CONSENT_PATH, async (ctx) => {
    const who = caller(ctx);
    requireAction(who, 'search');
    const query = ctx.query as Query;
    const search = parseConsentSearch(query);
    const revinclude = wantsProvenance(query);
    confineToOwnPatient(who, search);
    // Included Provenances need the token's Provenance scope too; they concern the same Consents.
    if (revinclude) await provenanceIncludeCaller(ctx.get('Authorization'), deps.lookup, config.issuer);
    const page = await store.search(search);
    const provenances = revinclude ? await store.provenanceOf(page.consents.map((c) => c.resource.id)) : undefined;
    const links = pageLinks(base, query, { count: search.count, offset: search.offset, total: page.total });
    sendFhir(ctx, 200, {
      resourceType: 'Bundle',
      type: 'searchset',
      total: page.total,
      link: links,
      entry: [
        ...page.consents.map((c) => ({ fullUrl: `${base}/${c.resource.id}`, resource: c.resource, search: { mode: 'match' } })),
        ...[...(provenances?.values() ?? [])]
          .flat()
          .map((p) => ({ fullUrl: `${config.issuer}${PROVENANCE_PATH}/${p.id}`, resource: p, search: { mode: 'include' } })),
      ],
    });
  });

  router.get(`${CONSENT_PATH}/:id`, async (ctx) => {
    requireAction(caller(ctx), 'read');
    sendResource(ctx, 200, (await found(ctx)).resource);
  });

  router.put(`${CONSENT_PATH}/:id`, async (ctx) => {
    requireAction(caller(ctx), 'withdraw');
    const stored = await found(ctx);
    checkIfMatch(ctx, stored);
    checkPutBody(await readJsonBody(ctx, [FHIR_JSON, 'application/json'], bodyLimit), stored.resource.id, stored.resource);
    sendResource(ctx, 200, await withdraw(ctx, stored));
  });

  router.patch(`${CONSENT_PATH}/:id`, async (ctx) => {
    requireAction(caller(ctx), 'withdraw');
    const stored = await found(ctx);
    checkIfMatch(ctx, stored);
    checkPatch(await readJsonBody(ctx, [JSON_PATCH], bodyLimit), stored.resource);
    sendResource(ctx, 200, await withdraw(ctx, stored));
  });

  router.delete(`${CONSENT_PATH}/:id`, async (ctx) => {
    requireAction(caller(ctx), 'withdraw');
    const stored = await found(ctx);
    checkIfMatch(ctx, stored);
    await withdraw(ctx, stored);
    sendFhir(ctx, 204);
  });

  router.post(CONSENT_PATH, () => {
    throw new FhirError(
      405,
      'not-supported',
      'Consents are recorded by the authorization flow; the API can read, search and withdraw them',
    );
  });

  return router;
}
