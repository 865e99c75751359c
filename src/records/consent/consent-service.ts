import type { Logger } from 'pino';
import { buildConsent, type ConsentDecision } from './consent-resource.js';
import type { ConsentStore, RememberedQuery, StoredConsent, StoredResource } from './consent-store.js';
import { ConsentRequiredError } from './errors.js';
import type { Reference } from '../../domain/fhir/types.js';
import { coversAll, patientScopes } from './scope-coverage.js';
import type { AuditRecorder } from '../audit/trail.js';
import { consentRecorded, consentWithdrawn } from '../audit/events/consent-events.js';

export interface ConsentServiceDeps {
  store: ConsentStore;
  issuer: string;
  /** Ends a grant and everything issued from it (tokens, codes, launch context). */
  revokeGrant(grantId: string): Promise<void>;
  logger?: Logger;
  /** Decisions and withdrawals are recorded before the caller answers anyone. */
  audit?: AuditRecorder;
}

/**
 * The consent rules on top of the store: a decision becomes a Consent, a withdrawal ends every
 * grant tied to it, and the token path asks `assertActiveForGrant` before issuing a token with
 * patient/ scopes.
 */
export class ConsentService {
  readonly store: ConsentStore;

  constructor(private readonly deps: ConsentServiceDeps) {
    this.store = deps.store;
  }

  /**
   * Records an Allow (active permit) or a Deny (rejected). With `decision.grantId` the permit is
   * tied to that grant too; otherwise tie it with `linkGrant` once the grant exists.
   */
  async recordDecision(decision: ConsentDecision, now: Date = new Date()): Promise<StoredResource> {
    const stored = await this.store.create(buildConsent(decision, now, { issuer: this.deps.issuer }), { scopes: decision.scopes, now });
    if (decision.grantId && decision.kind === 'permit') await this.store.linkGrant(stored.resource.id, decision.grantId);
    // The newest permit is the person's current choice for this app and patient: only it is remembered.
    if (decision.kind === 'permit')
      await this.store.rememberOnly(
        { performerRef: decision.performer.reference, clientId: decision.clientId, patientId: decision.patientId },
        stored.resource.id,
      );
    await this.deps.audit?.record(
      consentRecorded(
        { issuer: this.deps.issuer, now },
        {
          consentId: stored.resource.id,
          patient: decision.patientId,
          performer: decision.performer.reference,
          client: { clientId: decision.clientId, ...(decision.clientName ? { name: decision.clientName } : {}) },
          decision: decision.kind,
          scopes: decision.scopes,
        },
      ),
    );
    return stored.resource;
  }

  linkGrant(consentId: string, grantId: string): Promise<void> {
    return this.store.linkGrant(consentId, grantId);
  }

  /**
   * Withdraws a Consent and revokes every grant tied to it, all at once. Answers the Consent as it
   * now is. Repeating a withdrawal repeats the revocations, so a partial failure can be retried.
   */
  async withdraw(id: string, by: Reference, now: Date = new Date()): Promise<StoredResource> {
    const result = await this.store.withdraw(id, by, now);
    if (result.changed) {
      const c = result.consent;
      await this.deps.audit?.record(
        consentWithdrawn(
          { issuer: this.deps.issuer, now },
          {
            consentId: id,
            patient: c.patientId,
            ...(by.reference ? { performer: by.reference } : {}),
            client: { clientId: c.clientId },
            grantsRevoked: result.grantIds.length,
          },
        ),
      );
    }
    await this.revokeAll(result.grantIds, id);
    return result.consent.resource;
  }

  private async revokeAll(grantIds: string[], consentId: string): Promise<void> {
    const outcomes = await Promise.allSettled(grantIds.map((g) => this.deps.revokeGrant(g)));
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (!failed.length) return;
    this.deps.logger?.error(
      { consentId, failed: failed.length, err: failed[0]!.reason },
      'could not revoke every grant of a withdrawn consent',
    );
    throw new Error(`${failed.length} of ${grantIds.length} grants of Consent ${consentId} could not be revoked`);
  }

  /**
   * For the token path (code exchange and refresh) of a token with patient/ scopes: the grant's
   * Consent must exist, be active, be within its period and cover the patient/ scopes. A missing,
   * withdrawn or expired Consent ends the grant as well; scopes it does not cover only fail this
   * request. Throws ConsentRequiredError (invalid_grant).
   */
  async assertActiveForGrant(grantId: string, scopes: string[] | string, now: Date = new Date()): Promise<StoredConsent> {
    const requested = patientScopes(typeof scopes === 'string' ? scopes.split(' ').filter(Boolean) : scopes);
    const consent = await this.store.consentForGrant(grantId);
    if (!consent) return this.endGrant(new ConsentRequiredError('missing', grantId));
    if (consent.status !== 'active') return this.endGrant(new ConsentRequiredError('inactive', grantId, consent.resource.id));
    if (consent.end === undefined || consent.end <= now.getTime())
      return this.endGrant(new ConsentRequiredError('expired', grantId, consent.resource.id));
    if (!coversAll(consent.scopes, requested)) throw new ConsentRequiredError('not-covered', grantId, consent.resource.id);
    return consent;
  }

  private async endGrant(problem: ConsentRequiredError): Promise<never> {
    await this.deps.revokeGrant(problem.grantId);
    throw problem;
  }

  coveringConsent(q: RememberedQuery, now?: Date): Promise<StoredConsent | undefined> {
    return this.store.coveringConsent(q, now);
  }

  missingScopes(q: RememberedQuery, now?: Date): Promise<string[]> {
    return this.store.missingScopes(q, now);
  }
}
