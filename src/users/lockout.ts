import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClient } from '../redis/connection.js';
import type { Keyspace } from '../redis/keyspace.js';

/** What the user store and SCIM need to show and lift a lock; the login page also records attempts. */
export interface LockState {
  isLocked(userId: string): Promise<boolean>;
  clear(userId: string): Promise<void>;
}

export interface LockoutSettings {
  maxFailuresPerAccount: number;
  lockoutSeconds: number;
}

/**
 * Failures not followed by a success are remembered this long from the first one, so an account
 * is not locked by a handful of typos spread over weeks.
 */
export const FAILURE_MEMORY_SECONDS = 24 * 3600;

/**
 * Per-account brute-force protection: consecutive wrong passwords are counted in Redis (shared by
 * every instance); the failure that reaches the limit locks the account for `lockoutSeconds`, or
 * until an administrator clears it. A successful sign-in resets the count.
 */
export class LoginLockout implements LockState {
  private readonly failures: RateLimiterRedis;

  constructor(
    redis: RedisClient,
    keyspace: Keyspace,
    private readonly settings: LockoutSettings,
  ) {
    this.failures = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: keyspace.rateLimit('login-account'),
      points: settings.maxFailuresPerAccount,
      duration: FAILURE_MEMORY_SECONDS,
    });
  }

  async isLocked(userId: string): Promise<boolean> {
    const state = await this.failures.get(userId);
    return (state?.consumedPoints ?? 0) >= this.settings.maxFailuresPerAccount;
  }

  /** Counts one wrong password; true when this failure locked the account. */
  async recordFailure(userId: string): Promise<boolean> {
    let state: RateLimiterRes;
    try {
      state = await this.failures.consume(userId);
    } catch (err) {
      // The library rejects with its result object once the points are used up.
      if (!(err instanceof RateLimiterRes)) throw err;
      state = err;
    }
    if (state.consumedPoints < this.settings.maxFailuresPerAccount) return false;
    // The lock lasts lockoutSeconds from the failure that reached the limit, not from the first one.
    await this.failures.block(userId, this.settings.lockoutSeconds);
    return true;
  }

  async recordSuccess(userId: string): Promise<void> {
    await this.failures.delete(userId);
  }

  async clear(userId: string): Promise<void> {
    await this.failures.delete(userId);
  }

  /** Seconds until a lock ends by itself (0 when not locked); for administrators, never for the login page. */
  async secondsLeft(userId: string): Promise<number> {
    const state = await this.failures.get(userId);
    if (!state || state.consumedPoints < this.settings.maxFailuresPerAccount) return 0;
    return Math.max(1, Math.ceil(state.msBeforeNext / 1000));
  }
}
