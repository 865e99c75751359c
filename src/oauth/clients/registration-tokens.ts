import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { asCeiling, ceilingProblem, type RegistrationCeiling } from './registration-policy.js';

/**
 * RFC 7591 initial access tokens with their registration policy. The token itself is oidc-provider's
 * InitialAccessToken (which answers 401 invalid_token once it is gone); its policy — the ceiling of
 * kinds and scopes and the registrations left — is a Redis hash beside it with the same lifetime.
 * A token without a policy record registers nothing (registration-http.ts), so a token minted by
 * older code or a record lost to eviction fails closed.
 */

/** Policy name every initial access token carries (see features.registration.policies). */
export const SMART_REGISTRATION_POLICY = 'smart-client';

export interface RegistrationTokenPolicy extends RegistrationCeiling {
  /** Registrations the token allows in all (default 1). */
  uses: number;
  expiresIn: number;
}

export interface IssuedRegistrationToken {
  token: string;
  /** Epoch seconds. */
  expiresAt: number;
}

export class RegistrationTokenError extends Error {
  override name = 'RegistrationTokenError';
}

export const MAX_REGISTRATION_USES = 1000;
/** 30 days: a token is a credential in someone's mailbox; it should not outlive a release cycle. */
export const MAX_REGISTRATION_TOKEN_SECONDS = 30 * 24 * 3600;

/**
 * Takes one registration from a token's record. Returns the registrations left after this one
 * (0: this was the last, and the record is gone), or -1 when there is no record or nothing left,
 * so of N concurrent callers on a token with k uses exactly min(N, k) get a number >= 0.
 * KEYS[1] the record.
 */
const TAKE_USE = `
local left = tonumber(redis.call('HGET', KEYS[1], 'uses'))
if not left or left < 1 then
  return -1
end
left = redis.call('HINCRBY', KEYS[1], 'uses', -1)
if left <= 0 then
  redis.call('DEL', KEYS[1])
end
return left
`;

type WithScript = RedisClient & { registrationTokenTakeUse(key: string): Promise<number> };

const defined = new WeakSet<RedisClient>();

export function registrationTokenScripts(redis: RedisClient): WithScript {
  if (!defined.has(redis)) {
    redis.defineCommand('registrationTokenTakeUse', { numberOfKeys: 1, lua: TAKE_USE });
    defined.add(redis);
  }
  return redis as WithScript;
}

export class RegistrationTokens {
  private readonly redis: WithScript;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {
    this.redis = registrationTokenScripts(redis);
  }

  /** Mints an initial access token bound to `policy`. The policy is checked here, not trusted. */
  async issue(provider: Provider, policy: RegistrationTokenPolicy): Promise<IssuedRegistrationToken> {
    const problem = ceilingProblem(policy);
    if (problem) throw new RegistrationTokenError(problem);
    if (!Number.isInteger(policy.uses) || policy.uses < 1 || policy.uses > MAX_REGISTRATION_USES) {
      throw new RegistrationTokenError(`uses must be a whole number from 1 to ${MAX_REGISTRATION_USES}`);
    }
    if (!Number.isInteger(policy.expiresIn) || policy.expiresIn < 1 || policy.expiresIn > MAX_REGISTRATION_TOKEN_SECONDS) {
      throw new RegistrationTokenError(`expires-in must be a whole number of seconds from 1 to ${MAX_REGISTRATION_TOKEN_SECONDS}`);
    }
    const iat = new provider.InitialAccessToken({ expiresIn: policy.expiresIn, policies: [SMART_REGISTRATION_POLICY] });
    // Saved first: until its record exists the token registers nothing, so there is no window
    // in which it registers without a policy.
    const token = await iat.save();
    try {
      const key = this.key(iat.jti);
      await this.redis
        .multi()
        .hset(key, { kinds: policy.kinds.join(' '), scopes: policy.scopes.join(' '), uses: String(policy.uses) })
        .expire(key, policy.expiresIn)
        .exec();
    } catch (err) {
      await iat.destroy().catch(() => undefined);
      throw err;
    }
    return { token, expiresAt: Math.floor(Date.now() / 1000) + policy.expiresIn };
  }

  /** The ceiling and registrations left of a token (by its id), or undefined when it has none (refuse). */
  async policyOf(token: string): Promise<(RegistrationCeiling & { uses: number }) | undefined> {
    const record = await this.redis.hgetall(this.key(token));
    const uses = Number(record.uses);
    if (!Number.isInteger(uses) || uses < 1) return undefined;
    const ceiling = asCeiling({ kinds: splitStored(record.kinds), scopes: splitStored(record.scopes) });
    return ceiling && { ...ceiling, uses };
  }

  /** Atomically takes one registration; the number left after it, or undefined when none was left. */
  async takeUse(token: string): Promise<number | undefined> {
    const left = Number(await this.redis.registrationTokenTakeUse(this.key(token)));
    return left >= 0 ? left : undefined;
  }

  private key(token: string): string {
    return this.keyspace.registrationToken(createHash('sha256').update(token).digest('base64url'));
  }
}

function splitStored(value: string | undefined): string[] {
  return (value ?? '').split(' ').filter(Boolean);
}
