import type { AdapterPayload } from 'oidc-provider';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';
import { adapterScripts } from './adapter-scripts.js';
import { PRUNE_GRACE_MS, type GrantIndex } from './grant-index.js';

/**
 * Revocation follows the account and the client: what an account or a client owns is indexed when
 * it is written, so disabling or deleting the owner ends all of it at once, on every instance.
 *
 * Why an index rather than a per-owner "not before" time checked at token lookup: the tokens are
 * really gone (a re-enabled user or a re-created client id revives nothing, whatever iat says),
 * refresh tokens, codes and SSO sessions end through the same path as access tokens, and
 * introspection, the hottest path, keeps its single round trip. The price is paid on writes that
 * are not hot (a Grant or Session save, a client-credentials token) and on the rare revocation.
 *
 * What is indexed (member `<Model>:<id>`, scored by expiry in ms like the grant index):
 *  - account → its Grants and Sessions. Every token, code and JWT marker of a user sits in the
 *    index of its Grant (grant-index.ts), so ending the Grant ends them.
 *  - client → its Grants, and what belongs to no grant: client-credentials tokens (opaque, or the
 *    marker of a JWT one) and its registration access token (RFC 7592), so a client re-created
 *    under the same id inherits nothing.
 *
 * Race rules, the grant index's: the member is added and the entry written, then the member is
 * checked to be still there; ending an owner sets its revoked mark and empties the index in one
 * script, then ends the members. So a write that overlaps an ending either is refused by the mark,
 * or finds its member gone and deletes its own entry; it never survives. Grants ended here are
 * dead (their in-flight token writes are refused too). The mark lasts OWNER_REVOKED_MARK_SECONDS.
 *
 * Sessions are the exception to the mark: a browser whose sign-in was in flight when the account
 * was disabled keeps its (indexed) session, so it gets the sign-in page rather than an error, and
 * the login check refuses the disabled account anyway. Reinstating the owner (user re-enabled,
 * client registered again) lifts the mark and ends whatever was indexed while it was revoked, so
 * such a session is gone before the account can be used again.
 */

export type OwnerKind = 'account' | 'client';

export interface Owner {
  kind: OwnerKind;
  id: string;
}

/** Long enough for any request that looked the owner up before it was ended to have finished. */
export const OWNER_REVOKED_MARK_SECONDS = 3600;

function present(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/**
 * The owners of an entry not bound to a grant (grant-bound entries are reached through their
 * Grant). Anything not listed (interactions, PAR requests, replay records) is short-lived and
 * unusable without the client or the account anyway.
 */
export function ownersOf(model: string, payload: AdapterPayload): Owner[] {
  const owners: Owner[] = [];
  const account = payload.accountId;
  const client = payload.clientId;
  switch (model) {
    case 'Grant':
      if (present(account)) owners.push({ kind: 'account', id: account });
      if (present(client)) owners.push({ kind: 'client', id: client });
      break;
    case 'Session':
      if (present(account)) owners.push({ kind: 'account', id: account });
      break;
    case 'ClientCredentials':
    case 'RegistrationAccessToken':
    case 'JwtAccessToken':
      if (present(client)) owners.push({ kind: 'client', id: client });
      break;
  }
  return owners;
}

export class OwnerIndex {
  private readonly redis;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly grants: GrantIndex,
  ) {
    this.redis = adapterScripts(redis);
  }

  /**
   * Returns false while the owner's access is being ended (its revoked mark is set), unless
   * `evenIfRevoked`: then the member is indexed all the same, for reinstatement to end it.
   */
  async add(owner: Owner, member: string, ttlMs: number | undefined, { evenIfRevoked = false } = {}): Promise<boolean> {
    const added = await this.redis.oidcGrantIndexAdd(
      this.keyspace.ownerIndex(owner.kind, owner.id),
      this.keyspace.ownerRevoked(owner.kind, owner.id),
      member,
      ttlMs === undefined ? '' : String(ttlMs),
      String(PRUNE_GRACE_MS),
      evenIfRevoked ? '1' : '0',
    );
    return added === 1;
  }

  /** The index and its revoked mark, for the single-node indexed write (adapter-scripts.ts). */
  keysOf(owner: Owner): [index: string, revoked: string] {
    return [this.keyspace.ownerIndex(owner.kind, owner.id), this.keyspace.ownerRevoked(owner.kind, owner.id)];
  }

  async contains(owner: Owner, member: string): Promise<boolean> {
    return (await this.redis.zscore(this.keyspace.ownerIndex(owner.kind, owner.id), member)) !== null;
  }

  /**
   * Ends everything the owner has: each Grant dies with all its tokens and codes, each Session and
   * client-credentials token is deleted. Idempotent; returns how many entries were ended.
   */
  async end(owner: Owner, { onlyIfIndexed = false } = {}): Promise<number> {
    const members = await this.redis.oidcOwnerTeardown(
      this.keyspace.ownerIndex(owner.kind, owner.id),
      this.keyspace.ownerRevoked(owner.kind, owner.id),
      String(OWNER_REVOKED_MARK_SECONDS),
      onlyIfIndexed ? '1' : '0',
    );
    await this.endMembers(members);
    return members.length;
  }

  /**
   * Lets new entries be written for the owner again (the user was re-enabled, the client
   * registered again) and ends what was indexed for it in the meantime. `onlyIfRevoked` leaves an
   * owner without a revoked mark untouched (a client upsert is usually a plain update).
   */
  async reinstate(owner: Owner, { onlyIfRevoked = false } = {}): Promise<void> {
    const members = await this.redis.oidcOwnerReinstate(
      this.keyspace.ownerIndex(owner.kind, owner.id),
      this.keyspace.ownerRevoked(owner.kind, owner.id),
      onlyIfRevoked ? '1' : '0',
    );
    await this.endMembers(members);
  }

  private async endMembers(members: string[]): Promise<void> {
    await Promise.all(
      members.map((member) => {
        const colon = member.indexOf(':');
        const model = member.slice(0, colon);
        const id = member.slice(colon + 1);
        return model === 'Grant' ? this.grants.revoke(id, { dead: true }) : this.redis.del(this.keyspace.model(model, id));
      }),
    );
  }
}

/** Ending and restoring a user's access, as the user directory needs it. */
export interface AccountAccess {
  /**
   * `onlyIfIndexed`: for an account that no longer exists (a retried delete), end only what is
   * still indexed; an id that owns nothing gets no revoked mark (a sign-in in flight for it fails
   * anyway: findAccount refuses unknown accounts).
   */
  end(accountId: string, opts?: { onlyIfIndexed?: boolean }): Promise<void>;
  reinstate(accountId: string): Promise<void>;
}

export function accountAccess(owners: OwnerIndex): AccountAccess {
  return {
    end: async (id, opts) => {
      await owners.end({ kind: 'account', id }, opts);
    },
    reinstate: (id) => owners.reinstate({ kind: 'account', id }),
  };
}
