import type { AuditEvent } from './audit-event.js';
import { LOCAL_SUBTYPE_SYSTEM } from './disclosure.js';
import { auditEvent, authServerAgent, clientAgent, details, operatorAgent, securityObject, type Details, type OperatorInfo } from './events/agents.js';
import { OBJECT_ROLES, SYSTEMS } from './events/vocabulary.js';

/**
 * Events about the audit trail itself: reading it out (search export, NDJSON export) and purging
 * it. A trail that can be exported or thinned without a trace would not be tamper-evident in the
 * sense that matters to a security officer, so these go into the same chain as everything else.
 */

export const TRAIL_SUBTYPES = {
  exported: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-exported', display: 'Audit trail exported' },
  purged: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-purged', display: 'Audit trail purged (retention)' },
} as const;

const EXPORT_TYPE = { system: SYSTEMS.dcm, code: '110106', display: 'Export' };
const APPLICATION_ACTIVITY = { system: SYSTEMS.dcm, code: '110100', display: 'Application Activity' };

function trailObject(issuer: string, values: Details) {
  return securityObject({ system: `${issuer.replace(/\/$/, '')}/audit`, value: 'AuditEvent' }, OBJECT_ROLES.securityResource, values, 'audit trail');
}

export type TrailActor = { client: { clientId: string; ip?: string } } | { operator: OperatorInfo };

function actorAgents(issuer: string, actor: TrailActor) {
  return 'client' in actor ? [clientAgent({ issuer }, actor.client, true), authServerAgent({ issuer })] : [operatorAgent(actor.operator), authServerAgent({ issuer })];
}

/** An NDJSON export of the trail (GET /fhir/AuditEvent/$export or the CLI), with the query and how many events left. */
export function trailExported(issuer: string, input: { actor: TrailActor; query: string; count: number; outcome?: '0' | '4' | '8' }): AuditEvent {
  return auditEvent(
    { issuer },
    {
      type: EXPORT_TYPE,
      subtype: [TRAIL_SUBTYPES.exported],
      action: 'R',
      outcome: input.outcome ?? '0',
      agents: actorAgents(issuer, input.actor),
      entities: [
        { ...trailObject(issuer, { events: input.count }) },
        { type: { system: SYSTEMS.auditEntityType, code: '2', display: 'System Object' }, role: OBJECT_ROLES.query, query: Buffer.from(input.query || '(all)').toString('base64'), detail: details({ events: input.count }) },
      ],
    },
  );
}

export interface PurgeFacts {
  removed: number;
  archived: number;
  archiveRemoved: number;
  cutSeq: number;
  cutoff: string;
  disclosureCutoff: string;
}

/** A retention purge: how many events left the trail, how many disclosures moved to the archive, and where the cut is. */
export function trailPurged(issuer: string, input: { actor: TrailActor; facts: PurgeFacts }): AuditEvent {
  const f = input.facts;
  return auditEvent(
    { issuer },
    {
      type: APPLICATION_ACTIVITY,
      subtype: [TRAIL_SUBTYPES.purged],
      action: 'D',
      outcome: '0',
      agents: actorAgents(issuer, input.actor),
      entities: [trailObject(issuer, { removed: f.removed, archived: f.archived, archive_removed: f.archiveRemoved, cut_seq: f.cutSeq, cutoff: f.cutoff, disclosure_cutoff: f.disclosureCutoff })],
    },
  );
}
