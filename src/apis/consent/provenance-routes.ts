import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import { authenticateConsentCaller, confineToOwnPatient, requirePatient, type ConsentAction, type ConsentCaller } from './api-auth.js';
import type { ApiTokens } from '../../oauth/introspection/token-lookup.js';
import type { ConsentService } from '../../records/consent/consent-service.js';
import { ConsentSearchTooBroadError } from '../../records/consent/consent-store.js';
import { FhirError } from '../../domain/fhir/errors.js';
import { fhirErrorBoundary, sendFhir } from '../../platform/http/fhir.js';
import { insufficientScope } from '../fhir-api.js';
import { pageLinks } from '../../domain/fhir/search-params.js';
import { parseProvenanceSearch } from '../../records/consent/provenance-search.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * The Provenance of Consents, FHIR REST style at /fhir/Provenance: read and search. Each Consent
 * creation and withdrawal writes one (consent-store.ts); they are read-only here. Callers follow
 * the Consent API's rules with Provenance scopes: `system/Provenance.r|s` for every one,
 * `patient/Provenance.r|s` for those of the token's patient's Consents only.
 */

export const PROVENANCE_PATH = '/fhir/Provenance';

export interface ProvenanceRoutesDeps {
  consents: ConsentService;
  lookup: ApiTokens;
  config: Config;
  logger: Logger;
}

type Query = Record<string, string | string[] | undefined>;

function requireProvenanceAction(caller: ConsentCaller, action: Extract<ConsentAction, 'read' | 'search'>): void {
  if (!caller.may.has(action)) {
    throw insufficientScope('consent', `the token's Provenance scope does not permit ${action} (needs ${action === 'read' ? 'r' : 's'})`);
  }
}

/** The caller's right to see Provenances as included resources (`_revinclude`): r or s on Provenance. */
export async function provenanceIncludeCaller(authorization: string, lookup: ApiTokens, issuer: string): Promise<ConsentCaller> {
  const caller = await authenticateConsentCaller(authorization, lookup, issuer, 'Provenance');
  if (!caller.may.has('read') && !caller.may.has('search')) {
    throw insufficientScope('consent', '_revinclude=Provenance:target needs a Provenance scope with r or s');
  }
  return caller;
}

export function provenanceRoutes(deps: ProvenanceRoutesDeps): Router {
  const { consents, config } = deps;
  const store = consents.store;
  const base = `${config.issuer}${PROVENANCE_PATH}`;
  const router = new Router();
  const caller = (ctx: Context): ConsentCaller => ctx.state.provenanceCaller as ConsentCaller;

  router.use(
    fhirErrorBoundary(deps.logger, 'Provenance API', (err) =>
      err instanceof ConsentSearchTooBroadError ? new FhirError(400, 'too-costly', err.message) : undefined,
    ),
  );
  router.use(async (ctx, next) => {
    requestState(ctx).routeLabel = 'provenance';
    ctx.state.provenanceCaller = await authenticateConsentCaller(ctx.get('Authorization'), deps.lookup, config.issuer, 'Provenance');
    await next();
  });

  router.get(PROVENANCE_PATH, async (ctx) => {
    const who = caller(ctx);
    requireProvenanceAction(who, 'search');
    const query = ctx.query as Query;
    const search = parseProvenanceSearch(query);
    confineToOwnPatient(who, search);
    const page = search.matchesNothing ? { total: 0, provenances: [] } : await store.searchProvenance(search);
    const links = pageLinks(base, query, { count: search.count, offset: search.offset, total: page.total });
    sendFhir(ctx, 200, {
      resourceType: 'Bundle',
      type: 'searchset',
      total: page.total,
      link: links,
      entry: page.provenances.map((p) => ({ fullUrl: `${base}/${p.resource.id}`, resource: p.resource, search: { mode: 'match' } })),
    });
  });

  router.get(`${PROVENANCE_PATH}/:id`, async (ctx) => {
    requireProvenanceAction(caller(ctx), 'read');
    const id = String(ctx.params.id);
    const found = await store.provenanceById(id);
    if (!found) throw new FhirError(404, 'not-found', `Provenance/${id} is not known`);
    requirePatient(caller(ctx), found.patientId);
    sendFhir(ctx, 200, found.resource);
  });

  const readOnly = () => {
    throw new FhirError(405, 'not-supported', 'Provenance is recorded with each Consent change; the API can read and search it');
  };
  router.post(PROVENANCE_PATH, readOnly);
  router.put(`${PROVENANCE_PATH}/:id`, readOnly);
  router.patch(`${PROVENANCE_PATH}/:id`, readOnly);
  router.delete(`${PROVENANCE_PATH}/:id`, readOnly);

  return router;
}
