import { Readable } from 'node:stream';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import { FhirError, operationOutcome } from '../../domain/fhir/errors.js';
import { fhirErrorBoundary, sendFhir } from '../../platform/http/fhir.js';
import { type ApiTokens } from '../../oauth/introspection/token-lookup.js';
import type { AuditEvent } from '../../records/audit/audit-event.js';
import { authenticateAuditCaller, forbidden, requireAuditAction, type AuditCaller } from './api-auth.js';
import { disclosedPatients } from '../../records/audit/disclosure.js';
import { disclosureView, type DisclosurePolicy } from '../../records/audit/disclosure-report.js';
import { fhirIdPattern } from '../../records/audit/audit-event.js';
import { pageQuery, parseAuditSearch, type Query } from '../../records/audit/search-params.js';
import { search, searchAll } from '../../records/audit/search.js';
import type { AuditStore } from '../../records/audit/store.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import { trailAccessed, trailExported, type TrailAccess } from '../../records/audit/trail-events.js';
import { requestState } from '../../platform/http/request-state.js';

/**
 * The audit trail as FHIR, at /fhir/AuditEvent:
 *
 *   GET /fhir/AuditEvent?patient=&agent=&altid=&type=&subtype=&outcome=&action=&date=&_count=&_sort=
 *       searchset Bundle with total and self/next/previous links (see search-params.ts)
 *   GET /fhir/AuditEvent/<id>                  one event
 *   GET /fhir/AuditEvent/$export?<same filters>  every match as NDJSON (application/fhir+ndjson),
 *       oldest first unless _sort=-date, streamed page by page; synchronous (this is not the Bulk
 *       Data async kick-off: a SIEM reads the response as it comes).
 *
 * Every read is itself audited before anything is sent (trailAccessed: IHE BALP Query for search
 * and export, Read for one event); a read whose record cannot be appended is answered 503 and
 * nothing is read. An export also records how many events left once it ends.
 *
 * A security officer (system/AuditEvent scope) sees everything. A patient (patient/AuditEvent
 * scope with a patient in context) sees only the disclosure view of their own record: disclosure
 * events about their patient, redacted per the staff-name policy, filtered by date only.
 */

export const AUDIT_PATH = '/fhir/AuditEvent';
const NDJSON = 'application/fhir+ndjson';
const EXPORT_PAGE = 500;
/** Patients' searches: the disclosure view has no other filters to offer. */
const PATIENT_PARAMS = new Set(['patient', 'date', '_count', '_sort', '_cursor', '_format']);

export interface AuditRoutesDeps {
  config: Config;
  store: AuditStore;
  trail: AuditTrail;
  /** Access tokens for this server's own API audience, their sessions still open. */
  lookup: ApiTokens;
  logger: Logger;
}

function auditErrors(logger: Logger) {
  return fhirErrorBoundary(logger, 'AuditEvent API');
}

function lenient(ctx: Context): boolean {
  return /(^|[\s;,])handling=lenient\b/.test(ctx.get('Prefer'));
}

export function auditRoutes(deps: AuditRoutesDeps): Router {
  const { config, store } = deps;
  const base = `${config.issuer}${AUDIT_PATH}`;
  const policy: DisclosurePolicy = { showStaffNames: config.audit.disclosureShowStaffNames };
  const router = new Router();
  const caller = (ctx: Context) => ctx.state.auditCaller as AuditCaller;

  router.use(AUDIT_PATH, auditErrors(deps.logger));
  router.use(AUDIT_PATH, async (ctx, next) => {
    requestState(ctx).routeLabel = 'audit';
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new FhirError(405, 'not-supported', 'the audit trail is read-only');
    ctx.state.auditCaller = await authenticateAuditCaller(ctx.get('Authorization'), deps.lookup);
    await next();
  });

  /** The patient's own view of one event, or the event itself for an officer. */
  const shown = (who: AuditCaller, event: AuditEvent): AuditEvent =>
    who.kind === 'patient' ? disclosureView(event, who.patient, policy) : event;

  /** Appends the record of this read, or refuses the read: the trail is never read unrecorded. */
  async function recordAccess(ctx: Context, who: AuditCaller, access: TrailAccess): Promise<void> {
    const reader = {
      client: { clientId: who.clientId, ...(ctx.ip ? { ip: ctx.ip } : {}) },
      ...(who.kind === 'patient' && who.accountId ? { user: { accountId: who.accountId } } : {}),
    };
    try {
      await deps.trail.record(trailAccessed(config.issuer, { reader, access }));
    } catch (err) {
      deps.logger.error(
        { err: { message: (err as Error).message }, requestId: ctx.state.requestId },
        'an AuditEvent API read could not be audited: refused',
      );
      throw new FhirError(
        503,
        'transient',
        'this read of the audit trail cannot be recorded right now, so it was not performed; try again later',
        { 'Retry-After': '5' },
      );
    }
  }

  router.get(AUDIT_PATH, async (ctx) => {
    const who = caller(ctx);
    requireAuditAction(who, 'search');
    const query = ctx.query as Query;
    const q = { ...parseAuditSearch(query, { lenient: lenient(ctx) }), limits: { maxCandidates: config.audit.searchMaxCandidates } };
    if (who.kind === 'patient') {
      const other = Object.keys(query).find((name) => !PATIENT_PARAMS.has(name) && !q.ignored.includes(name));
      if (other) throw forbidden(`a patient's token may search its own disclosures by date only (${other} is for security officers)`);
      for (const clause of q.clauses)
        if (clause.values.some((v) => v !== who.patient)) throw forbidden("the token's patient may see only its own record");
      q.clauses = [{ param: 'disclosure', values: [who.patient] }];
    }
    await recordAccess(ctx, who, {
      kind: 'search',
      query: ctx.querystring,
      ...(who.kind === 'patient' ? { restrictedTo: who.patient } : {}),
    });
    const page = await search(store, q);
    const offset = q.offset ?? 0;
    const links = [
      {
        relation: 'self',
        url: `${base}?${pageQuery(query, q.ignored, q.count, { offset, asOf: page.asOf, after: q.after, before: q.before })}`,
      },
    ];
    if (q.count > 0 && page.last && offset + q.count < page.total)
      links.push({
        relation: 'next',
        url: `${base}?${pageQuery(query, q.ignored, q.count, { offset: offset + q.count, asOf: page.asOf, after: page.last })}`,
      });
    if (offset > 0 && page.first)
      links.push({
        relation: 'previous',
        url: `${base}?${pageQuery(query, q.ignored, q.count, { offset: Math.max(0, offset - q.count), asOf: page.asOf, before: page.first })}`,
      });
    const entry: unknown[] = page.events.map((e) => ({ fullUrl: `${base}/${e.id}`, resource: shown(who, e), search: { mode: 'match' } }));
    if (q.ignored.length) {
      entry.push({
        resource: {
          ...operationOutcome('not-supported', `ignored: ${q.ignored.join(', ')}`),
          issue: [
            {
              severity: 'warning',
              code: 'not-supported',
              diagnostics: `search parameters ignored (handling=lenient): ${q.ignored.join(', ')}`,
            },
          ],
        },
        search: { mode: 'outcome' },
      });
    }
    sendFhir(ctx, 200, { resourceType: 'Bundle', type: 'searchset', total: page.total, link: links, entry });
  });

  router.get(`${AUDIT_PATH}/$export`, async (ctx) => {
    const who = caller(ctx);
    if (who.kind !== 'officer') throw forbidden('only a security officer (system/AuditEvent scope) may export the trail');
    requireAuditAction(who, 'search');
    if (/respond-async/.test(ctx.get('Prefer')))
      throw new FhirError(
        400,
        'not-supported',
        'this export is synchronous: drop Prefer: respond-async and read the NDJSON response as it streams',
      );
    const query = ctx.query as Query;
    const q = {
      ...parseAuditSearch({ ...query, _sort: query._sort ?? 'date' }, { lenient: lenient(ctx) }),
      limits: { maxCandidates: config.audit.searchMaxCandidates },
    };
    if (query._count !== undefined || query._cursor !== undefined)
      throw new FhirError(400, 'not-supported', 'an export has no pages: leave out _count and _cursor');
    const description = new URLSearchParams(
      Object.entries(query).flatMap(([k, v]) => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((x): [string, string] => [k, x])),
    ).toString();
    await recordAccess(ctx, who, { kind: 'export', query: description });
    const asOf = Date.now() + 1;
    const actor = { client: { clientId: who.clientId, ...(ctx.ip ? { ip: ctx.ip } : {}) } };
    const trail = deps.trail;
    const logger = deps.logger;
    async function* lines(): AsyncGenerator<string> {
      let count = 0;
      let complete = false;
      try {
        for await (const events of searchAll(store, { ...q, asOf }, EXPORT_PAGE)) {
          if (events.length) yield events.map((e) => `${JSON.stringify(e)}\n`).join('');
          count += events.length;
        }
        // Recorded before the last byte goes out, so a completed export is always in the trail.
        await trail.record(trailExported(config.issuer, { actor, query: description, count }));
        complete = true;
      } finally {
        if (!complete) {
          trail
            .record(trailExported(config.issuer, { actor, query: description, count, outcome: '4' }))
            .catch((err: unknown) => logger.error({ err }, 'could not audit an interrupted export'));
        }
      }
    }
    ctx.status = 200;
    ctx.set('Cache-Control', 'no-store');
    ctx.type = NDJSON;
    ctx.body = Readable.from(lines());
  });

  router.get(`${AUDIT_PATH}/:id`, async (ctx) => {
    const who = caller(ctx);
    requireAuditAction(who, 'read');
    const id = String(ctx.params.id);
    const event = fhirIdPattern.test(id) ? await store.event(id) : undefined;
    // Someone else's event looks exactly like one that does not exist.
    if (!event || (who.kind === 'patient' && !disclosedPatients(event).includes(who.patient))) {
      throw new FhirError(404, 'not-found', `AuditEvent/${id} is not known`);
    }
    await recordAccess(ctx, who, { kind: 'read', id });
    sendFhir(ctx, 200, shown(who, event));
  });

  // Writes are refused by the method check above; these routes make the router match them at all.
  for (const path of [AUDIT_PATH, `${AUDIT_PATH}/:id`]) {
    router.post(path, () => undefined);
    router.put(path, () => undefined);
    router.patch(path, () => undefined);
    router.delete(path, () => undefined);
  }

  return router;
}
