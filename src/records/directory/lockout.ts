import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { lockoutScripts, type LockoutScripts } from './lockout-scripts.js';

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

/** One password check the lock-out allowed; settle it once with what the check found. */
export interface PasswordCheckSlot {
  /** The password was wrong: the slot stays as a failure. True when this failure locked the account. */
  failed(): Promise<boolean>;
  /** The password was right: the count starts again (only consecutive failures lock). */
  succeeded(): Promise<void>;
  /** The password was right but the account may not sign in: the slot is given back, the count stays. */
  released(): Promise<void>;
}

/**
 * Per-account brute-force protection, shared by every instance through Redis. A password is only
 * checked in a slot taken beforehand by one atomic script (`reserve`), and the slot is the failure
 * until the check proves otherwise; so at most `maxFailuresPerAccount` passwords are checked per
 * lock window, however many arrive at once and from however many addresses. The failure that
 * reaches the limit locks the account for `lockoutSeconds`, or until an administrator clears it.
 *
 * Checks in flight count toward the limit: while the last free slots are being checked, further
 * attempts (a correct password too) are refused as locked. That is the point: a password cannot be
 * known correct without checking it, and checking is what the limit bounds.
 */
export class LoginLockout implements LockState {
  private readonly redis: RedisClient & LockoutScripts;

  constructor(
    redis: RedisClient,
    private readonly keyspace: Keyspace,
    private readonly settings: LockoutSettings,
  ) {
    this.redis = lockoutScripts(redis);
  }

  /** True while no password may be checked: locked, or every slot taken by checks in flight. */
  async isLocked(userId: string): Promise<boolean> {
    return (await this.count(userId)) >= this.settings.maxFailuresPerAccount;
  }

  /** A slot for one password check, or undefined when the account is locked (check nothing then). */
  async reserve(userId: string): Promise<PasswordCheckSlot | undefined> {
    const { maxFailuresPerAccount: limit, lockoutSeconds } = this.settings;
    const counter = this.keyspace.loginFailures(userId);
    const slot = await this.redis.lockoutReserve(counter, limit, FAILURE_MEMORY_SECONDS, lockoutSeconds);
    if (slot === 0) return undefined;
    return {
      failed: async () => (await this.redis.lockoutFail(counter, limit, lockoutSeconds, slot)) === 1,
      succeeded: async () => {
        await this.redis.del(counter);
      },
      released: async () => {
        await this.redis.lockoutRelease(counter, limit, FAILURE_MEMORY_SECONDS, slot);
      },
    };
  }

  async clear(userId: string): Promise<void> {
    await this.redis.del(this.keyspace.loginFailures(userId));
  }

  /** Seconds until a lock ends by itself (0 when not locked); for administrators, never for the login page. */
  async secondsLeft(userId: string): Promise<number> {
    const counter = this.keyspace.loginFailures(userId);
    const [count, ms] = await Promise.all([this.count(userId), this.redis.pttl(counter)]);
    if (count < this.settings.maxFailuresPerAccount || ms <= 0) return 0;
    return Math.max(1, Math.ceil(ms / 1000));
  }

  private async count(userId: string): Promise<number> {
    return Number((await this.redis.get(this.keyspace.loginFailures(userId))) ?? 0);
  }
}
