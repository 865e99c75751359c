import type { AuditEvent, AuditEventEntity as Entity } from './audit-event.js';
import { LOCAL_SUBTYPE_SYSTEM } from './disclosure.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  details,
  operatorAgent,
  patientEntity,
  patientReference,
  securityObject,
  userAgents,
  type Details,
  type OperatorInfo,
  type UserInfo,
} from './events/agents.js';
import { ENTITY_TYPES, EVENT_TYPES, OBJECT_ROLES, STANDARD_SUBTYPES, SYSTEMS } from './events/vocabulary.js';

/**
 * Events about the audit trail itself: reading it out (search export, NDJSON export) and purging
 * it. A trail that can be exported or thinned without a trace would not be tamper-evident in the
 * sense that matters to a security officer, so these go into the same chain as everything else.
 */

export const TRAIL_SUBTYPES = {
  exported: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-exported', display: 'Audit trail exported' },
  purged: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-purged', display: 'Audit trail purged (retention)' },
  searched: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-searched', display: 'Audit trail searched' },
  read: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-read', display: 'Audit event read' },
  exportStarted: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-export-started', display: 'Audit trail export started' },
  disclosuresViewed: { system: LOCAL_SUBTYPE_SYSTEM, code: 'audit-disclosures-viewed', display: 'Accounting of disclosures viewed' },
} as const;

const EXPORT_TYPE = { system: SYSTEMS.dcm, code: '110106', display: 'Export' };
const APPLICATION_ACTIVITY = { system: SYSTEMS.dcm, code: '110100', display: 'Application Activity' };

function trailObject(issuer: string, values: Details) {
  return securityObject(
    { system: `${issuer.replace(/\/$/, '')}/audit`, value: 'AuditEvent' },
    OBJECT_ROLES.securityResource,
    values,
    'audit trail',
  );
}

export type TrailActor = { client: { clientId: string; ip?: string } } | { operator: OperatorInfo };

function actorAgents(issuer: string, actor: TrailActor) {
  return 'client' in actor
    ? [clientAgent({ issuer }, actor.client, true), authServerAgent({ issuer })]
    : [operatorAgent(actor.operator), authServerAgent({ issuer })];
}

/** An NDJSON export of the trail (GET /fhir/AuditEvent/$export or the CLI), with the query and how many events left. */
export function trailExported(
  issuer: string,
  input: { actor: TrailActor; query: string; count: number; outcome?: '0' | '4' | '8' },
): AuditEvent {
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
        {
          type: { system: SYSTEMS.auditEntityType, code: '2', display: 'System Object' },
          role: OBJECT_ROLES.query,
          query: Buffer.from(input.query || '(all)').toString('base64'),
          detail: details({ events: input.count }),
        },
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

/**
 * A retention purge: how many events left the trail, how many disclosures moved to the archive, and where the cut is.
 * In PostgreSQL (`postgres`), "archived" are the disclosures kept in audit.kept, and the months dropped are named.
 */
export function trailPurged(
  issuer: string,
  input: { actor: TrailActor; facts: PurgeFacts; postgres?: { months: string[]; keptMonths: string[] } },
): AuditEvent {
  const f = input.facts;
  const pg = input.postgres
    ? { store: 'postgres', months_dropped: input.postgres.months.join(' '), kept_months_dropped: input.postgres.keptMonths.join(' ') }
    : {};
  return auditEvent(
    { issuer },
    {
      type: APPLICATION_ACTIVITY,
      subtype: [TRAIL_SUBTYPES.purged],
      action: 'D',
      outcome: '0',
      agents: actorAgents(issuer, input.actor),
      entities: [
        trailObject(issuer, {
          removed: f.removed,
          archived: f.archived,
          archive_removed: f.archiveRemoved,
          cut_seq: f.cutSeq,
          cutoff: f.cutoff,
          disclosure_cutoff: f.disclosureCutoff,
          ...pg,
        }),
      ],
    },
  );
}

/**
 * Who reads the trail: through the API, the client of the bearer token and, for a patient's
 * token, the account behind it (the patient is not named as a Patient reference there: a search
 * is not about one patient); on the management page, the signed-in person and the page's client.
 */
export interface TrailReader {
  client: { clientId: string; ip?: string };
  user?: UserInfo;
}

export type TrailAccess =
  /** GET /fhir/AuditEvent?… (BALP Query: search-type) with the query as the server ran it. */
  | { kind: 'search'; query: string; restrictedTo?: string }
  /** GET /fhir/AuditEvent/$export?… (BALP Query: the $export operation). */
  | { kind: 'export'; query: string }
  /** GET /fhir/AuditEvent/<id> (BALP Read). */
  | { kind: 'read'; id: string }
  /**
   * GET /manage/disclosures[.csv|.json]: a person's accounting of disclosures of one patient they
   * look after (BALP Query on the trail, that patient as an entity). Its subtype is no disclosure
   * subtype (disclosure.ts), so it is found under `patient=` but never listed in the report itself.
   */
  | { kind: 'disclosures'; patient: string; format: 'page' | 'csv' | 'json' };

const ACCESS_SUBTYPES = {
  search: [STANDARD_SUBTYPES.searchType, TRAIL_SUBTYPES.searched],
  export: [STANDARD_SUBTYPES.operation, TRAIL_SUBTYPES.exportStarted],
  read: [STANDARD_SUBTYPES.read, TRAIL_SUBTYPES.read],
  disclosures: [STANDARD_SUBTYPES.searchType, TRAIL_SUBTYPES.disclosuresViewed],
} as const;

function accessEntities(access: TrailAccess): Entity[] {
  switch (access.kind) {
    case 'read':
      return [{ what: { reference: `AuditEvent/${access.id}` }, type: ENTITY_TYPES.auditEvent, role: OBJECT_ROLES.securityResource }];
    case 'disclosures': {
      const patient = patientReference(access.patient);
      return [
        {
          type: ENTITY_TYPES.systemObject,
          role: OBJECT_ROLES.query,
          query: Buffer.from(`disclosure=${patient}`).toString('base64'),
          detail: details({ resource: 'AuditEvent', report: 'disclosures', format: access.format }),
        },
        patientEntity(patient),
      ];
    }
    default:
      return [
        {
          type: ENTITY_TYPES.systemObject,
          role: OBJECT_ROLES.query,
          query: Buffer.from(access.query || '(all)').toString('base64'),
          detail: details({
            resource: 'AuditEvent',
            operation: access.kind === 'export' ? '$export' : undefined,
            restricted_to: access.kind === 'search' ? access.restrictedTo : undefined,
          }),
        },
      ];
  }
}

/**
 * A read of the trail through its API, recorded before any of it leaves (IHE BALP Query and Read
 * patterns): type `rest`, the restful-interaction subtype, and the query (base64, object role 24
 * Query) or the AuditEvent read. Searching the trail then finds these events too, as it should.
 */
export function trailAccessed(issuer: string, input: { reader: TrailReader; access: TrailAccess }): AuditEvent {
  const { reader, access } = input;
  return auditEvent(
    { issuer },
    {
      type: EVENT_TYPES.rest,
      subtype: [...ACCESS_SUBTYPES[access.kind]],
      action: access.kind === 'read' ? 'R' : 'E',
      outcome: '0',
      agents: [
        ...userAgents({ issuer }, reader.user, true),
        clientAgent({ issuer }, reader.client, !reader.user),
        authServerAgent({ issuer }),
      ],
      entities: accessEntities(access),
    },
  );
}
