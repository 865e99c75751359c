import { createHash, randomUUID } from 'node:crypto';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { buildProvenance, fhirInstant, provenanceIdParts } from './consent-resource.js';
import { consentScripts, type ConsentScripts } from './consent-scripts.js';
import { ConsentInputError, ConsentNotFoundError, ConsentStateError } from './errors.js';
import type { Consent, ConsentStatus, Meta, Provenance, Reference } from '../../domain/fhir/types.js';
import { consentNarrative } from './narrative.js';
import { patientIdOf, relativeReference } from '../../domain/fhir/references.js';
import { coversAll, uncoveredScopes } from './scope-coverage.js';

/**
 * Consent records in Redis (key layout: Keyspace, `{consents}`). The stored resource stays plain
 * R4; what token decisions need beside it (the granted scope strings, the client id, the end of
 * the period) are fields of the same hash, written by the same script.
 */

export type StoredResource = Consent & { id: string; meta: Meta };

export interface StoredConsent {
  resource: StoredResource;
  version: number;
  status: ConsentStatus;
  patientId: string;
  clientId: string;
  /** `Type/id` of who decided. */
  performer: string;
  /** The granted scopes of a permit, the requested ones of a refusal. */
  scopes: string[];
  /** End of the permit's period (epoch ms), undefined for a refusal. */
  end?: number;
}

export interface ConsentSearch {
  patient?: string;
  /** Any of these statuses. */
  status?: string[];
  /** A client id or a `Device/<client id>` reference. */
  actor?: string;
  /** Inclusive bounds on Consent.dateTime, epoch ms. */
  dateFrom?: number;
  dateTo?: number;
  count: number;
  offset: number;
}

export interface ProvenanceSearch {
  /** The Consent the Provenance is about; with `version`, that version's only. */
  target?: { consentId: string; version?: string };
  /** The patient of the target Consent. */
  patient?: string;
  /** Inclusive bounds on Provenance.recorded, epoch ms. */
  recordedFrom?: number;
  recordedTo?: number;
  count: number;
  offset: number;
}

/** A Provenance with the patient of the Consent it is about (who may see it). */
export interface StoredProvenance {
  resource: Provenance;
  patientId: string;
}

export interface ConsentPage {
  total: number;
  consents: StoredConsent[];
}

export interface RememberedQuery {
  /** Who decides now (`Patient/1`, an absolute URL is fine). */
  performerRef: string;
  clientId: string;
  patientId: string;
  scopes: string[];
}

export interface WithdrawResult {
  consent: StoredConsent;
  /** Grants tied to the Consent, to be revoked. */
  grantIds: string[];
  /** False when it had already been withdrawn (nothing was written). */
  changed: boolean;
}

export interface ConsentStoreOptions {
  /** Enqueue every created or withdrawn Consent for the FHIR server write-through. */
  outbox?: boolean;
  /** Most ids a filtered search examines before it is refused as too broad. */
  maxScan?: number;
}

/** A search matches more Consents than a filtered search may examine. */
export class ConsentSearchTooBroadError extends Error {
  override name = 'ConsentSearchTooBroadError';
}

const FIELDS = ['json', 'v', 'status', 'patient', 'client', 'performer', 'scopes', 'end'] as const;
const CAS_ATTEMPTS = 5;

function parseStored(values: Array<string | null>): StoredConsent | undefined {
  const [json, v, status, patient, client, performer, scopes, end] = values;
  if (json === null || json === undefined) return undefined;
  return {
    resource: JSON.parse(json) as StoredResource,
    version: Number(v),
    status: status as ConsentStatus,
    patientId: patient ?? '',
    clientId: client ?? '',
    performer: performer ?? '',
    scopes: scopes ? (JSON.parse(scopes) as string[]) : [],
    ...(end ? { end: Number(end) } : {}),
  };
}

/** Normalizes "who decides" so the same person is recognized whichever spelling the caller has. */
function performerKey(ref: string): string {
  return relativeReference(ref)?.reference ?? ref.trim();
}

export class ConsentStore {
  private readonly redis: RedisClient & ConsentScripts;
  private readonly outbox: boolean;
  private readonly maxScan: number;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    options: ConsentStoreOptions = {},
  ) {
    this.redis = consentScripts(redis);
    this.outbox = options.outbox ?? false;
    this.maxScan = options.maxScan ?? 10_000;
  }

  private rememberedKey(performer: string, clientId: string, patientId: string): string {
    const digest = createHash('sha256')
      .update(JSON.stringify([performerKey(performer), clientId, patientId]))
      .digest('base64url');
    return this.keyspace.consentsRemembered(digest);
  }

  /**
   * Stores a new Consent (a fresh random id, version 1) with the Provenance of its creation by its
   * performer, its search indexes and, when the write-through is on, its outbox entry.
   */
  async create(consent: Consent, opts: { scopes: string[]; now?: Date }): Promise<StoredConsent> {
    const now = opts.now ?? new Date();
    const patientId = patientIdOf(consent.patient.reference ?? '');
    const performer = consent.performer[0]?.reference;
    const clientId = consent.provision?.actor?.[0]?.reference.identifier?.value;
    if (!patientId || !performer || !clientId) throw new ConsentInputError('a Consent needs a patient, a performer and the app as actor');
    const id = randomUUID();
    const resource: StoredResource = { ...consent, id, meta: { versionId: '1', lastUpdated: fhirInstant(now) } };
    const provenance = buildProvenance(resource, 'CREATE', consent.performer[0]!, now);
    const endText = resource.provision?.type === 'permit' ? resource.provision.period?.end : undefined;
    const end = endText ? Date.parse(endText) : undefined;
    const date = Date.parse(resource.dateTime);
    const remembered = this.rememberedKey(performer, clientId, patientId);
    const remember = resource.status === 'active' && resource.provision?.type === 'permit';
    const created = await this.redis.consentCreate(
      this.keyspace.consent(id),
      this.keyspace.consentProvenance(id),
      this.keyspace.consentsByPatient(patientId),
      this.keyspace.consentsByClient(clientId),
      this.keyspace.consentsAll(),
      remembered,
      this.keyspace.consentOutbox(),
      this.keyspace.consentsByPerformer(performerKey(performer)),
      id,
      JSON.stringify(resource),
      resource.status,
      patientId,
      clientId,
      performerKey(performer),
      JSON.stringify(opts.scopes),
      end === undefined ? '' : String(end),
      String(date),
      remembered,
      JSON.stringify(provenance),
      remember ? '1' : '0',
      this.outbox ? '1' : '0',
    );
    if (created !== 1) throw new Error('consent id collision');
    return {
      resource,
      version: 1,
      status: resource.status,
      patientId,
      clientId,
      performer: performerKey(performer),
      scopes: [...opts.scopes],
      ...(end === undefined ? {} : { end }),
    };
  }

  async get(id: string): Promise<StoredConsent | undefined> {
    return parseStored(await this.redis.hmget(this.keyspace.consent(id), ...FIELDS));
  }

  async version(id: string): Promise<number | undefined> {
    const v = await this.redis.hget(this.keyspace.consent(id), 'v');
    return v === null ? undefined : Number(v);
  }

  async provenance(id: string): Promise<Provenance[]> {
    return (await this.redis.lrange(this.keyspace.consentProvenance(id), 0, -1)).map((p) => JSON.parse(p) as Provenance);
  }

  /** The Provenances of each of these Consents, oldest first (for `_revinclude=Provenance:target`). */
  async provenanceOf(ids: readonly string[]): Promise<Map<string, Provenance[]>> {
    const lists = await Promise.all(ids.map((id) => this.provenance(id)));
    return new Map(ids.map((id, i) => [id, lists[i]!]));
  }

  async provenanceById(id: string): Promise<StoredProvenance | undefined> {
    const parts = provenanceIdParts(id);
    if (!parts) return undefined;
    const patientId = await this.redis.hget(this.keyspace.consent(parts.consentId), 'patient');
    if (patientId === null) return undefined;
    const resource = (await this.provenance(parts.consentId)).find((p) => p.id === id);
    return resource && { resource, patientId };
  }

  /**
   * Provenances newest first (by recorded). One Consent (target), a patient's Consents or all of
   * them are read; more than `maxScan` Consents is refused as too broad.
   */
  async searchProvenance(q: ProvenanceSearch): Promise<{ total: number; provenances: StoredProvenance[] }> {
    let ids: string[];
    if (q.target) ids = [q.target.consentId];
    else {
      const index = q.patient !== undefined ? this.keyspace.consentsByPatient(q.patient) : this.keyspace.consentsAll();
      ids = await this.redis.zrevrange(index, 0, this.maxScan);
      if (ids.length > this.maxScan)
        throw new ConsentSearchTooBroadError(`the search covers more than ${this.maxScan} Consents; narrow it (target, patient)`);
    }
    const [patients, lists] = await Promise.all([
      Promise.all(ids.map((id) => this.redis.hget(this.keyspace.consent(id), 'patient'))),
      Promise.all(ids.map((id) => this.provenance(id))),
    ]);
    const found: Array<StoredProvenance & { at: number }> = [];
    ids.forEach((id, i) => {
      const patientId = patients[i];
      if (patientId === null || patientId === undefined || (q.patient !== undefined && patientId !== q.patient)) return;
      const versioned = q.target?.version === undefined ? undefined : `Consent/${id}/_history/${q.target.version}`;
      for (const resource of lists[i]!) {
        const at = Date.parse(resource.recorded);
        if (versioned && !resource.target.some((t) => t.reference === versioned)) continue;
        if ((q.recordedFrom !== undefined && at < q.recordedFrom) || (q.recordedTo !== undefined && at > q.recordedTo)) continue;
        found.push({ resource, patientId, at });
      }
    });
    found.sort((a, b) => b.at - a.at || (a.resource.id < b.resource.id ? 1 : -1));
    return {
      total: found.length,
      provenances: found.slice(q.offset, q.offset + q.count).map(({ resource, patientId }) => ({ resource, patientId })),
    };
  }

  /** Ties a grant to an active Consent; refuses when the Consent is gone or no longer active. */
  async linkGrant(consentId: string, grantId: string): Promise<void> {
    const reply = await this.redis.consentLinkGrant(
      this.keyspace.consent(consentId),
      this.keyspace.consentGrants(consentId),
      this.keyspace.grantConsent(grantId),
      grantId,
      consentId,
    );
    if (reply === 'ok') return;
    if (reply === 'gone') throw new ConsentNotFoundError(consentId);
    throw new ConsentStateError(consentId, reply, `Consent ${consentId} is ${reply}; a grant can only be tied to an active Consent`);
  }

  async consentForGrant(grantId: string): Promise<StoredConsent | undefined> {
    const id = await this.redis.get(this.keyspace.grantConsent(grantId));
    return id === null ? undefined : this.get(id);
  }

  async grantsOf(consentId: string): Promise<string[]> {
    return this.redis.smembers(this.keyspace.consentGrants(consentId));
  }

  /**
   * Sets an active Consent to `inactive` (a new version, its narrative regenerated) and records
   * who did it. Withdrawing an already inactive Consent changes nothing but still answers its
   * grants, so a caller whose revocation failed half-way can simply try again.
   */
  async withdraw(id: string, by: Reference, now: Date = new Date()): Promise<WithdrawResult> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await this.get(id);
      if (!current) throw new ConsentNotFoundError(id);
      if (current.status === 'inactive') return { consent: current, grantIds: await this.grantsOf(id), changed: false };
      if (current.status !== 'active')
        throw new ConsentStateError(id, current.status, `Consent ${id} is ${current.status}; only an active Consent can be withdrawn`);
      const version = current.version + 1;
      const withdrawn: StoredResource = {
        ...current.resource,
        status: 'inactive',
        meta: { versionId: String(version), lastUpdated: fhirInstant(now) },
      };
      withdrawn.text = consentNarrative(withdrawn);
      const provenance = buildProvenance(withdrawn, 'UPDATE', by, now);
      const reply = await this.redis.consentWithdraw(
        this.keyspace.consent(id),
        this.keyspace.consentProvenance(id),
        this.rememberedKey(current.performer, current.clientId, current.patientId),
        this.keyspace.consentOutbox(),
        this.keyspace.consentGrants(id),
        id,
        String(current.version),
        JSON.stringify(withdrawn),
        JSON.stringify(provenance),
        this.outbox ? '1' : '0',
      );
      switch (reply[0]) {
        case 'ok':
          return { consent: { ...current, resource: withdrawn, version, status: 'inactive' }, grantIds: reply[2], changed: true };
        case 'gone':
          throw new ConsentNotFoundError(id);
        case 'status':
        case 'version':
          continue;
      }
    }
    throw new Error(`Consent ${id} kept changing while it was being withdrawn`);
  }

  /**
   * Consents newest first (by Consent.dateTime). One index is read (the patient's, the client's or
   * all); other filters are applied to at most `maxScan` of its ids.
   */
  async search(q: ConsentSearch): Promise<ConsentPage> {
    const patientId = q.patient === undefined ? undefined : patientIdOf(q.patient);
    if (q.patient !== undefined && !patientId) return { total: 0, consents: [] };
    const clientId = q.actor === undefined ? undefined : q.actor.startsWith('Device/') ? q.actor.slice('Device/'.length) : q.actor;
    const index =
      patientId !== undefined
        ? this.keyspace.consentsByPatient(patientId)
        : clientId !== undefined
          ? this.keyspace.consentsByClient(clientId)
          : this.keyspace.consentsAll();
    const min = q.dateFrom === undefined ? '-inf' : String(q.dateFrom);
    const max = q.dateTo === undefined ? '+inf' : String(q.dateTo);
    const statuses = q.status?.length ? new Set(q.status) : undefined;
    const needsFilter = statuses !== undefined || (patientId !== undefined && clientId !== undefined);

    if (!needsFilter) {
      const [total, ids] = await Promise.all([
        this.redis.zcount(index, min, max),
        q.count > 0 ? this.redis.zrevrangebyscore(index, max, min, 'LIMIT', q.offset, q.count) : [],
      ]);
      return { total, consents: await this.load(ids) };
    }
    const ids = await this.redis.zrevrangebyscore(index, max, min, 'LIMIT', 0, this.maxScan + 1);
    if (ids.length > this.maxScan)
      throw new ConsentSearchTooBroadError(
        `the search matches more than ${this.maxScan} Consents before filtering; narrow it (patient, actor, date)`,
      );
    const facts = await Promise.all(ids.map((id) => this.redis.hmget(this.keyspace.consent(id), 'status', 'client')));
    const matching = ids.filter((_, i) => {
      const [status, client] = facts[i]!;
      if (status === null || status === undefined) return false;
      if (statuses && !statuses.has(status)) return false;
      return clientId === undefined || client === clientId;
    });
    return { total: matching.length, consents: await this.load(matching.slice(q.offset, q.offset + q.count)) };
  }

  private async load(ids: string[]): Promise<StoredConsent[]> {
    const found = await Promise.all(ids.map((id) => this.get(id)));
    return found.filter((c): c is StoredConsent => c !== undefined);
  }

  /**
   * The Consents one person decided (`Patient/1`, `Practitioner/2`; an absolute URL is fine), newest
   * first, at most `limit` of them, whatever their status.
   */
  async decidedBy(performerRef: string, limit: number): Promise<StoredConsent[]> {
    if (limit <= 0) return [];
    const ids = await this.redis.zrevrange(this.keyspace.consentsByPerformer(performerKey(performerRef)), 0, limit - 1);
    return this.load(ids);
  }

  /** The active, unexpired permits of this person for this app and patient, newest first. */
  private async remembered(q: Omit<RememberedQuery, 'scopes'>, now: number): Promise<StoredConsent[]> {
    const patientId = patientIdOf(q.patientId);
    if (!patientId) return [];
    const key = this.rememberedKey(q.performerRef, q.clientId, patientId);
    const ids = await this.redis.zrevrange(key, 0, -1);
    const found = await this.load(ids);
    const current = found.filter((c) => c.status === 'active' && c.end !== undefined && c.end > now);
    const stale = ids.filter((id) => !current.some((c) => c.resource.id === id));
    // Expired permits stay in their other indexes; only the "remembered" shortlist forgets them.
    if (stale.length) await this.redis.zrem(key, ...stale);
    return current;
  }

  /**
   * Makes `keepId` the only permit remembered for its person, app and patient: a newer decision
   * supersedes the earlier ones for remembered consent. They stay active (the grants they back keep
   * working until they end or are withdrawn), they just no longer spare anyone the page.
   */
  async rememberOnly(q: Omit<RememberedQuery, 'scopes'>, keepId: string): Promise<void> {
    const patientId = patientIdOf(q.patientId);
    if (!patientId) return;
    const key = this.rememberedKey(q.performerRef, q.clientId, patientId);
    const earlier = (await this.redis.zrevrange(key, 0, -1)).filter((id) => id !== keepId);
    if (earlier.length) await this.redis.zrem(key, ...earlier);
  }

  /** One active, unexpired permit whose granted scopes cover all the requested ones, if any. */
  async coveringConsent(q: RememberedQuery, now: Date = new Date()): Promise<StoredConsent | undefined> {
    return (await this.remembered(q, now.getTime())).find((c) => coversAll(c.scopes, q.scopes));
  }

  /** The requested scopes that no active, unexpired permit of this person for this app and patient covers. */
  async missingScopes(q: RememberedQuery, now: Date = new Date()): Promise<string[]> {
    const consented = (await this.remembered(q, now.getTime())).flatMap((c) => c.scopes);
    return uncoveredScopes(consented, q.scopes);
  }
}
