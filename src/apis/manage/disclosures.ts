import { PageError } from '../../platform/http/error-page.js';
import { renderView } from '../../platform/http/views.js';
import { longDate } from '../../smart/interaction/pages/client-display.js';
import { MANAGE_CLIENT_ID } from '../../oauth/clients/manage-client.js';
import { disclosureBundle, disclosureCsv, disclosureEvents, disclosureRows } from '../../records/audit/disclosure-report.js';
import { trailAccessed } from '../../records/audit/trail-events.js';
import type { AuditStore } from '../../records/audit/store.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import { patientName } from './access.js';
import type { Manage, Step } from './context.js';

/*
 * "Who accessed my record": the accounting of disclosures of the records the signed-in person
 * looks after (their own, and those of the patients they act for), as a page, a CSV and a FHIR
 * Bundle. The `patient` query picks one of those records; any other id is refused like a record
 * that does not exist. Each view or download of a record is itself recorded in the trail (IHE
 * BALP Query) before the trail is read; when it cannot be, nothing is shown (503).
 */

type Audit = { store: AuditStore; trail: Pick<AuditTrail, 'record'> };
type Format = 'page' | 'csv' | 'json';

/** The record asked for (`?patient=`), or the first one the person looks after. */
export function pickRecord(): Step {
  return async function pickRecord(ctx, next) {
    const manager = ctx.state.manager!;
    const asked = typeof ctx.query.patient === 'string' ? ctx.query.patient : undefined;
    if (asked !== undefined && !manager.patients.includes(asked))
      throw new PageError(404, 'not_found', 'There is no such record among those you look after.');
    ctx.state.patientId = asked ?? manager.patients[0];
    await next();
  };
}

/** A download needs a record. */
export function requireRecord(): Step {
  return async function requireRecord(ctx, next) {
    if (!ctx.state.patientId) throw new PageError(404, 'not_found', 'No patient record is linked to your account.');
    await next();
  };
}

/** Records this view or download, or refuses it: the trail is never read unrecorded. */
export function recordView(m: Manage, audit: Audit, format: Format): Step {
  return async function recordView(ctx, next) {
    const { session, user, patientId } = ctx.state;
    if (patientId) {
      const reader = {
        accountId: session!.sub,
        ...(user!.fhirUser ? { fhirUser: user!.fhirUser } : {}),
        ...(user!.displayName ? { name: user!.displayName } : {}),
        ...(ctx.ip ? { ip: ctx.ip } : {}),
      };
      try {
        await audit.trail.record(
          trailAccessed(m.config.issuer, {
            reader: { client: { clientId: MANAGE_CLIENT_ID }, user: reader },
            access: { kind: 'disclosures', patient: patientId, format },
          }),
        );
      } catch (err) {
        m.deps.logger?.error(
          { err: { message: (err as Error).message }, requestId: ctx.state.requestId },
          'a view of the accounting of disclosures could not be audited: refused',
        );
        ctx.set('Retry-After', '5');
        throw new PageError(
          503,
          'temporarily_unavailable',
          'Who accessed your record cannot be shown right now, because showing it could not be recorded. Nothing was shown. Try again in a few minutes.',
        );
      }
    }
    await next();
  };
}

export function showDisclosures(m: Manage, audit: Audit): Step {
  const policy = { showStaffNames: m.config.audit.disclosureShowStaffNames };
  return async function showDisclosures(ctx) {
    const { user, manager, patientId } = ctx.state;
    const { events, total } = patientId ? await disclosureEvents(audit.store, `Patient/${patientId}`) : { events: [], total: 0 };
    const rows = patientId
      ? disclosureRows(events, `Patient/${patientId}`, policy).map((r) => ({ ...r, when: longDate(Date.parse(r.last)) }))
      : [];
    const records = manager!.patients.map((id) => ({ id, name: patientName(user!, id).name, current: id === patientId }));
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = await renderView('disclosures', {
      title: 'Who accessed my record',
      userName: user!.displayName ?? '',
      patientId: patientId ?? '',
      recordName: patientId ? patientName(user!, patientId).name : 'your record',
      records,
      rows,
      total,
      shown: events.length,
      truncated: total > events.length,
    });
  };
}

export function downloadCsv(m: Manage, audit: Audit): Step {
  const policy = { showStaffNames: m.config.audit.disclosureShowStaffNames };
  return async function downloadCsv(ctx) {
    const patientId = ctx.state.patientId!;
    const { events } = await disclosureEvents(audit.store, `Patient/${patientId}`);
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Content-Disposition', `attachment; filename="disclosures-${patientId}.csv"`);
    ctx.body = disclosureCsv(disclosureRows(events, `Patient/${patientId}`, policy));
  };
}

export function downloadBundle(m: Manage, audit: Audit): Step {
  const policy = { showStaffNames: m.config.audit.disclosureShowStaffNames };
  return async function downloadBundle(ctx) {
    const patientId = ctx.state.patientId!;
    const { events } = await disclosureEvents(audit.store, `Patient/${patientId}`);
    ctx.type = 'application/fhir+json; charset=utf-8';
    ctx.set('Content-Disposition', `attachment; filename="disclosures-${patientId}.json"`);
    ctx.body = JSON.stringify(disclosureBundle(events, `Patient/${patientId}`, policy, m.config.issuer));
  };
}
