import type { Logger } from 'pino';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword, type PasswordPolicy } from '../../../records/directory/passwords.js';
import { SMART_USER_SCHEMA, type ScimUser } from '../../../records/directory/model.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { LoginLockout } from '../../../records/directory/lockout.js';
import type { IpRateLimiter } from './ip-limiter.js';

/** The one message for every refused sign-in: it must not tell which part was wrong. */
export const GENERIC_FAILURE = 'The username or password is incorrect, or the account cannot sign in.';

/** Inputs beyond these are not credentials anyone has; refusing them early bounds the work. */
const MAX_USERNAME = 256;
const MAX_PASSWORD = 1024;

export type LoginOutcome =
  | { ok: true; user: ScimUser }
  /**
   * `account`/`lockedNow` are for the audit trail only, never for the page: the account the typed
   * name belongs to (when it does) and whether this failure locked it.
   */
  | { ok: false; reason: 'refused'; account?: { id: string; fhirUser?: string }; lockedNow?: boolean }
  | { ok: false; reason: 'rate_limited'; retryAfterSeconds: number };

export interface PasswordLoginDeps {
  users: Pick<UserStore, 'credentials' | 'replacePasswordHash'>;
  lockout: LoginLockout;
  ipLimiter: IpRateLimiter;
  passwords: PasswordPolicy;
  logger: Logger;
}

type Refusal = 'unknown_user' | 'locked' | 'wrong_password' | 'inactive' | 'malformed';

/**
 * Checks a username and password the way an attacker learns least from: the network's budget
 * first, then the account's lock-out slot (taken before the check, so the limit bounds checks,
 * not finished failures); every refusal looks the same and costs the same time (an unknown or
 * locked account still pays one password hash). A correct password for a locked or inactive
 * account is refused too.
 */
export class PasswordLogin {
  constructor(private readonly deps: PasswordLoginDeps) {}

  async attempt(input: { username: string; password: string; ip: string; requestId?: string }): Promise<LoginOutcome> {
    const { lockout, ipLimiter, passwords, users } = this.deps;
    const log = { ip: input.ip, requestId: input.requestId };

    const network = await ipLimiter.consume(input.ip);
    if (!network.allowed) {
      this.deps.logger.warn(
        { ...log, event: 'login.rate_limited', retryAfterSeconds: network.retryAfterSeconds },
        'sign-in attempts from this network are being limited',
      );
      return { ok: false, reason: 'rate_limited', retryAfterSeconds: network.retryAfterSeconds };
    }

    const username = input.username.trim();
    if (!username || !input.password || username.length > MAX_USERNAME || input.password.length > MAX_PASSWORD) {
      return this.refuse('malformed', log);
    }

    const found = await users.credentials(username);
    if (!found?.passwordHash) {
      await burnPasswordCheck(input.password, passwords);
      return this.refuse('unknown_user', log);
    }
    const { user, passwordHash } = found;
    const userLog = { ...log, userId: user.id };
    // The slot is taken before the (slow) check, atomically: concurrent guesses cannot all pass a
    // lock test that only a finished check would close.
    const slot = await lockout.reserve(user.id);
    if (!slot) {
      await burnPasswordCheck(input.password, passwords);
      return this.refuse('locked', userLog, user);
    }
    if (!(await verifyPassword(passwordHash, input.password))) {
      const lockedNow = await slot.failed();
      if (lockedNow) this.deps.logger.warn({ ...userLog, event: 'login.account_locked' }, 'account locked after repeated wrong passwords');
      return this.refuse('wrong_password', userLog, user, lockedNow);
    }
    if (!user.active) {
      await slot.released();
      return this.refuse('inactive', userLog, user);
    }

    // A right password does not end the count of wrong guesses: the sign-in may still need a
    // second factor, and someone who knows the password could otherwise reset the count between
    // rounds of code guesses. The slot is given back; the count ends when the sign-in completes
    // (second-factor/sign-in-completion.ts).
    await slot.released();
    await this.rehashIfNeeded(user.id, passwordHash, input.password);
    this.deps.logger.info({ ...userLog, event: 'login.success' }, 'signed in');
    return { ok: true, user };
  }

  /** Raised hashing costs take effect at the next sign-in; a concurrent password change wins. */
  private async rehashIfNeeded(userId: string, current: string, password: string): Promise<void> {
    if (!needsRehash(current, this.deps.passwords)) return;
    try {
      const replaced = await this.deps.users.replacePasswordHash(userId, current, await hashPassword(password, this.deps.passwords));
      if (replaced) this.deps.logger.info({ userId, event: 'login.rehashed' }, 'password hash upgraded to the current policy');
    } catch (err) {
      this.deps.logger.warn({ userId, err: { message: (err as Error).message } }, 'password rehash failed; the old hash stays valid');
    }
  }

  private refuse(reason: Refusal, log: Record<string, unknown>, user?: ScimUser, lockedNow = false): LoginOutcome {
    // Attempted usernames are not logged: people type passwords into the username field.
    this.deps.logger.info({ ...log, event: 'login.failure', reason }, 'sign-in refused');
    if (!user) return { ok: false, reason: 'refused' };
    const fhirUser = user[SMART_USER_SCHEMA]?.fhirUser;
    return {
      ok: false,
      reason: 'refused',
      account: { id: user.id, ...(fhirUser ? { fhirUser } : {}) },
      ...(lockedNow ? { lockedNow } : {}),
    };
  }
}
