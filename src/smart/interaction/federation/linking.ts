import { ScimError } from '../../../domain/scim/errors.js';
import type { FederationProvider } from '../../../platform/config/schema.js';
import type { FederationRefusal } from '../../../records/audit/events/federation-events.js';
import type { ScimUser } from '../../../records/directory/model.js';
import type { UpstreamLinks } from '../../../records/directory/upstream-links.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import { jitUser } from './jit-user.js';
import type { UpstreamIdentity } from './upstream-identity.js';

/**
 * Finds the directory user an upstream identity is, by the provider's `link` rules in order: the
 * first rule whose claim is present and names users decides, and it must name exactly one. An
 * email address counts only when the upstream says it is verified (`email_verified: true`).
 * Without a match, a user is made just in time when the provider allows it. The user must be
 * active, and is pinned to the upstream subject (records/directory/upstream-links.ts).
 */

export type LinkOutcome =
  | {
      ok: true;
      user: ScimUser;
      /** The first federated sign-in of this user through this provider (the link was made now). */
      firstLink: boolean;
      /** The attributes of a user made just in time; absent when the user existed. */
      created?: string[];
    }
  | { ok: false; reason: FederationRefusal; user?: ScimUser };

export interface LinkerDeps {
  users: Pick<UserStore, 'findBy' | 'create'>;
  links: Pick<UpstreamLinks, 'pin' | 'linkedUser'>;
}

type Match = { user: ScimUser } | { refused: FederationRefusal } | { none: true; unverifiedEmail?: string };

export class UpstreamLinker {
  constructor(private readonly deps: LinkerDeps) {}

  async link(provider: FederationProvider, identity: UpstreamIdentity): Promise<LinkOutcome> {
    const upstream = { issuer: identity.issuer, subject: identity.subject };
    const match = await this.match(provider, identity);
    if ('refused' in match) return { ok: false, reason: match.refused };

    let user: ScimUser;
    let created: string[] | undefined;
    if ('user' in match) {
      user = match.user;
    } else {
      if (match.unverifiedEmail && (await this.deps.users.findBy('emails', match.unverifiedEmail)).length)
        return { ok: false, reason: 'email_unverified' };
      // An upstream subject already linked to someone the claims no longer name is not a new person.
      if (await this.deps.links.linkedUser(provider.id, upstream)) return { ok: false, reason: 'subject_mismatch' };
      if (!provider.jit.enabled) return { ok: false, reason: 'unknown_user' };
      const draft = jitUser(provider, identity);
      try {
        user = await this.deps.users.create(draft.resource);
      } catch (err) {
        // A user name taken by someone the link rules did not find, or claims SCIM refuses.
        if (err instanceof ScimError) return { ok: false, reason: 'user_conflict' };
        throw err;
      }
      created = draft.attributes;
    }

    if (!user.active) return { ok: false, reason: 'disabled_user', user };
    const pin = await this.deps.links.pin(provider.id, user.id, upstream);
    if (pin.kind === 'user-linked' || pin.kind === 'subject-linked') return { ok: false, reason: 'subject_mismatch', user };
    return { ok: true, user, firstLink: pin.kind === 'first', ...(created ? { created } : {}) };
  }

  private async match(provider: FederationProvider, identity: UpstreamIdentity): Promise<Match> {
    let unverifiedEmail: string | undefined;
    for (const rule of provider.link) {
      const value = identity.claims[rule.claim];
      if (typeof value !== 'string' || !value.trim()) continue;
      if (rule.attribute === 'emails' && identity.claims.email_verified !== true) {
        unverifiedEmail ??= value.trim();
        continue;
      }
      const users = await this.deps.users.findBy(rule.attribute, value.trim());
      if (users.length > 1) return { refused: 'ambiguous_match' };
      if (users.length === 1) return { user: users[0]! };
    }
    return { none: true, ...(unverifiedEmail ? { unverifiedEmail } : {}) };
  }
}
