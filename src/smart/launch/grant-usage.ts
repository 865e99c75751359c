import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';

/**
 * When each grant last had a token issued (code exchange or refresh), for the "last used" column
 * of the management page. One `SET … EX` per token response; introspection, the hot path of
 * every FHIR request, writes nothing. So "last used" means "last got a token": an app refreshing
 * every hour shows within the hour, one holding a single access token shows when it got it.
 */
export class GrantUsage {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
    /** How long a mark is kept: the grant lifetime (ttl.grant). */
    private readonly ttlSeconds: number,
  ) {}

  async touch(grantId: string, at: number = Date.now()): Promise<void> {
    await this.redis.set(this.keyspace.grantLastUsed(grantId), String(at), 'EX', Math.max(1, this.ttlSeconds));
  }

  /** The latest use of any of these grants (epoch ms), if one was ever used. */
  async lastUsed(grantIds: readonly string[]): Promise<number | undefined> {
    // One GET per grant: the keys live in different hash slots (auto-pipelined all the same).
    const values = await Promise.all(grantIds.map((g) => this.redis.get(this.keyspace.grantLastUsed(g))));
    const times = values
      .filter((v): v is string => v !== null)
      .map(Number)
      .filter(Number.isFinite);
    return times.length ? Math.max(...times) : undefined;
  }
}

type TokenCtx = Context & Partial<Pick<KoaContextWithOIDC, 'oidc'>>;

/** Post-middleware of the token endpoint: marks the grant of every successful code exchange or refresh. */
export function grantUsageTracking(deps: { tokenPath: string; usage: Pick<GrantUsage, 'touch'>; logger?: Logger }) {
  return async function trackGrantUse(ctx: TokenCtx, next: Next): Promise<void> {
    if (ctx.path !== deps.tokenPath) return next();
    await next();
    const oidc = ctx.oidc;
    if (oidc?.route !== 'token' || ctx.status !== 200) return;
    const grantId = oidc.entities.AuthorizationCode?.grantId ?? oidc.entities.RefreshToken?.grantId;
    if (!grantId) return;
    // The tokens are already issued: a failed mark only makes "last used" older.
    await deps.usage
      .touch(grantId)
      .catch((err: unknown) => deps.logger?.warn({ err, grantId }, 'could not record when a grant was last used'));
  };
}
