/**
 * Every Redis key this server writes goes through here so the layout is documented in one place
 * (README "Redis keys"). `prefix` namespaces one deployment (or one test file) inside a shared Redis.
 *
 * Keys that a single command or script touches together share a `{hash tag}` so the layout is
 * Redis Cluster safe; keys that are only ever touched by separate commands do not need to.
 */
export class Keyspace {
  constructor(readonly prefix: string) {}

  /** oidc-provider model entry, e.g. `authz:oidc:AccessToken:{abc}`. */
  model(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:{${id}}`;
  }

  grantIndex(grantId: string): string {
    return `${this.prefix}oidc:grant:{${grantId}}`;
  }

  sessionUid(uid: string): string {
    return `${this.prefix}oidc:sessionUid:{${uid}}`;
  }

  userCode(code: string): string {
    return `${this.prefix}oidc:userCode:{${code}}`;
  }

  /** Set of every registered client id (clients live under `model('Client', id)`). */
  clientIndex(): string {
    return `${this.prefix}clients`;
  }

  /** Hash of signing keys, field = kid. Shares a hash tag with its version counter (one script writes both). */
  signingKeys(): string {
    return `${this.prefix}{signing-keys}`;
  }

  /** Bumped by every change to `signingKeys()`, so instances notice rotation with one GET. */
  signingKeysVersion(): string {
    return `${this.prefix}{signing-keys}:version`;
  }

  /**
   * Marks a destroyed grant so token writes still in flight for it are refused. Shares the grant's
   * hash tag so the revocation script can set it together with deleting the grant index.
   */
  revokedGrant(grantId: string): string {
    return `${this.prefix}oidc:grantRevoked:{${grantId}}`;
  }

  /** A one-time claim (`claimOnce`), e.g. a client-assertion `jti`; `digest` is a hash of the id. */
  once(namespace: string, digest: string): string {
    return `${this.prefix}once:${namespace}:{${digest}}`;
  }

  key(...parts: string[]): string {
    return `${this.prefix}${parts.join(':')}`;
  }
}
