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

  key(...parts: string[]): string {
    return `${this.prefix}${parts.join(':')}`;
  }
}
