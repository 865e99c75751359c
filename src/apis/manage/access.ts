import type Provider from 'oidc-provider';
import type { StoredConsent } from '../../records/consent/consent-store.js';
import { FHIR_ID } from '../../domain/fhir/references.js';
import { PageError } from '../../platform/http/error-page.js';
import { longDate } from '../../smart/interaction/pages/client-display.js';
import { choicesOf } from '../../smart/interaction/consent/consent-gate.js';
import { describeScope } from '../../smart/interaction/consent/scope-descriptions.js';
import type { UserContext } from '../../smart/interaction/facts/fhir-user.js';
import { MANAGE_PATHS } from '../../oauth/clients/manage-client.js';
import { consentsToManage, mayManage, type Manager } from './consent-list.js';
import type { Manage, ManageRouteDeps, Step } from './context.js';

/**
 * "Apps with access": every app with access to the signed-in person's record, to the records of
 * the patients they act for, or that they allowed themselves; and withdrawing one. Withdrawing
 * ends the Consent and every grant tied to it at once: the app's access and refresh tokens
 * introspect as inactive and refreshes fail.
 */

interface Row {
  id: string;
  app: string;
  patient: string;
  decidedBy: string;
  scopes: string[];
  since: { iso: string; text: string };
  until: { iso: string; text: string };
  lastUsed: { iso: string; text: string } | undefined;
}

function when(epochMs: number): { iso: string; text: string } {
  return { iso: new Date(epochMs).toISOString(), text: longDate(epochMs) };
}

async function appName(provider: Provider, clientId: string): Promise<string> {
  const client = await provider.Client.find(clientId).catch(() => undefined);
  return client?.clientName ?? `An app registered as ${clientId}`;
}

/** How the page names a patient record to the person looking after it. */
export function patientName(user: UserContext, patientId: string): { name: string; self: boolean } {
  if (patientId === user.ownPatient) return { name: 'your own record', self: true };
  const proxy = user.proxies.find((p) => p.id === patientId);
  return { name: proxy ? proxy.display : `Patient ${patientId}`, self: false };
}

async function rowOf(deps: ManageRouteDeps, user: UserContext, manager: Manager, c: StoredConsent): Promise<Row> {
  const patient = patientName(user, c.patientId);
  const reader = { self: patient.self, ...(patient.self ? {} : { patientName: patient.name }) };
  // What the person chose; identity and launch scopes only when there is nothing else to show.
  const choices = choicesOf(c.scopes);
  const shown = choices.length ? choices : c.scopes;
  const grants = await deps.consents.store.grantsOf(c.resource.id);
  const lastUsed = grants.length ? await deps.usage.lastUsed(grants) : undefined;
  const start = Date.parse(c.resource.provision?.period?.start ?? c.resource.dateTime);
  const decider = c.resource.performer[0];
  return {
    id: c.resource.id,
    app: await appName(deps.provider, c.clientId),
    patient: patient.name,
    decidedBy: c.performer === manager.performer ? 'you' : (decider?.display ?? c.performer),
    scopes: shown.map((s) => describeScope(s, reader)),
    since: when(start),
    until: when(c.end ?? start),
    lastUsed: lastUsed === undefined ? undefined : when(lastUsed),
  };
}

/** GET /manage: the list, with a notice after a withdrawal (`?withdrawn=<id>`). */
export function listAccess(m: Manage): Step {
  return async function listAccess(ctx) {
    const { session, user, manager } = ctx.state;
    const consents = await consentsToManage(m.deps.consents.store, manager!, Date.now());
    const rows = await Promise.all(consents.map((c) => rowOf(m.deps, user!, manager!, c)));
    let notice = '';
    const withdrawn = ctx.query.withdrawn;
    if (typeof withdrawn === 'string' && FHIR_ID.test(withdrawn)) {
      const gone = await m.deps.consents.store.get(withdrawn);
      if (gone && gone.status === 'inactive' && mayManage(manager!, gone)) {
        notice = `Access withdrawn: ${await appName(m.provider, gone.clientId)} can no longer use ${patientName(user!, gone.patientId).name}.`;
      }
    }
    await m.page(ctx, 200, { rows, notice, csrf: m.sessions.csrfToken(session!), userName: user!.displayName ?? '' });
  };
}

/** POST /manage/consents/:id/withdraw: ends one Consent the person may manage. */
export function withdrawAccess(m: Manage): Step {
  return async function withdrawAccess(ctx) {
    const { user, manager } = ctx.state;
    const id = ctx.params.id ?? '';
    const consent = FHIR_ID.test(id) ? await m.deps.consents.store.get(id) : undefined;
    // Someone else's Consent looks exactly like one that does not exist.
    if (!consent || !mayManage(manager!, consent) || consent.status === 'rejected' || !manager!.performer) {
      throw new PageError(404, 'not_found', 'There is no such app access to withdraw. Go back to the list and reload it.');
    }
    await m.deps.consents.withdraw(id, { reference: manager!.performer, ...(user!.displayName ? { display: user!.displayName } : {}) });
    ctx.status = 303;
    ctx.redirect(`${MANAGE_PATHS.page}?withdrawn=${encodeURIComponent(id)}`);
  };
}
