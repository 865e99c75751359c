import { createHash } from 'node:crypto';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { upstreamLinkScripts, type UpstreamLinkScripts } from './upstream-link-scripts.js';

/**
 * Which upstream identity (issuer and subject at one identity provider) each directory user signs
 * in as. The first federated sign-in of a user pins both directions; later sign-ins must arrive
 * with the same subject. Linking finds users by claims the upstream lets people change (an email
 * address, a user name): without the pin, an upstream account renamed to someone else's address
 * would become that person here. A pin to a user that no longer exists is given up.
 */

export interface UpstreamSubject {
  issuer: string;
  subject: string;
}

export type PinOutcome =
  | { kind: 'first' }
  | { kind: 'same' }
  /** The user is linked to another upstream subject. */
  | { kind: 'user-linked' }
  /** The upstream subject is linked to another (existing) user. */
  | { kind: 'subject-linked'; userId: string };

const subjectValue = (upstream: UpstreamSubject) => JSON.stringify([upstream.issuer, upstream.subject]);
const subjectDigest = (upstream: UpstreamSubject) => createHash('sha256').update(subjectValue(upstream)).digest('base64url');

export class UpstreamLinks {
  private readonly redis: RedisClient & UpstreamLinkScripts;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    /** Whether a user still exists: a subject linked to a deleted user may be linked again. */
    private readonly userExists: (id: string) => Promise<boolean>,
  ) {
    this.redis = upstreamLinkScripts(redis);
  }

  /** Links `userId` to the upstream subject at its first federated sign-in, or checks the link. */
  async pin(providerId: string, userId: string, upstream: UpstreamSubject): Promise<PinOutcome> {
    const subject = subjectValue(upstream);
    const keys = [
      this.keyspace.federationUserLink(providerId, userId),
      this.keyspace.federationSubjectLink(providerId, subjectDigest(upstream)),
    ] as const;
    let replaceable = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      const [kind, other] = await this.redis.upstreamLinkPin(keys[0], keys[1], subject, userId, replaceable);
      if (kind === 'first' || kind === 'same' || kind === 'user-linked') return { kind };
      if (kind !== 'subject-linked' || !other) throw new Error(`unexpected reply ${kind} linking an upstream subject`);
      if (await this.userExists(other)) return { kind, userId: other };
      replaceable = other;
    }
    throw new Error('the upstream subject link changed while it was being taken over');
  }

  /** The (existing) user an upstream subject is linked to through a provider, if any. */
  async linkedUser(providerId: string, upstream: UpstreamSubject): Promise<string | undefined> {
    const userId = await this.redis.get(this.keyspace.federationSubjectLink(providerId, subjectDigest(upstream)));
    return userId && (await this.userExists(userId)) ? userId : undefined;
  }
}
