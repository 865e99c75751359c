import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { withSecondFactor } from '../../domain/authn/assurance.js';
import type { PendingSignIn, SignedInUser } from './sign-in.js';

/**
 * The management page's own session: a signed, httpOnly, SameSite=Lax cookie scoped to /manage
 * naming the signed-in account. It ends with the sign-in it came from: every request checks that
 * this server's sign-in session is still there for the same account (sign-out, expiry or another
 * user in the same browser end it at once), and the cookie itself lasts no longer than a sign-in
 * session may (ttl.session).
 *
 * Form tokens are an HMAC of the session id under the cookie keys, like the interaction forms'.
 * The session also remembers when and how the person last authenticated (the id_token's
 * `auth_time` and `amr`), so changes to their second factors can ask for a recent sign-in.
 */

export interface ManageSession {
  /** Random id of this management session (binds the form tokens). */
  sid: string;
  /** Account id. */
  sub: string;
  /** Epoch seconds. */
  exp: number;
  /** When the person last authenticated, epoch seconds (absent: unknown, so not recent). */
  authTime?: number;
  /** How (RFC 8176), as the id_token said; a factor enrolled on the page is added (see `provedFactor`). */
  amr?: string[];
}

export const SESSION_COOKIE = 'manage_session';
export const PENDING_COOKIE = 'manage_signin';
const COOKIE_PATH = '/manage';

function encode(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decode(raw: string | undefined): Record<string, unknown> | undefined {
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export interface ManageSessionOptions {
  provider: Provider;
  /** The app's cookie keys (the provider's `keys`): the first signs, all verify. */
  keys: readonly string[];
  secure: boolean;
  /** ttl.session: no management session outlives a sign-in session. */
  sessionSeconds: number;
}

export class ManageSessions {
  constructor(private readonly opts: ManageSessionOptions) {
    if (!opts.keys.length) throw new Error('ManageSessions needs at least one key');
  }

  private cookieOptions(maxAgeSeconds: number) {
    return {
      signed: true,
      httpOnly: true,
      sameSite: 'lax' as const,
      secure: this.opts.secure,
      path: COOKIE_PATH,
      maxAge: Math.max(0, maxAgeSeconds) * 1000,
      overwrite: true,
    };
  }

  savePending(ctx: Context, pending: PendingSignIn): void {
    ctx.cookies.set(PENDING_COOKIE, encode(pending), this.cookieOptions(pending.exp - nowSeconds()));
  }

  /** The pending sign-in, used up: a callback URL works once. */
  takePending(ctx: Context): PendingSignIn | undefined {
    const value = decode(ctx.cookies.get(PENDING_COOKIE, { signed: true }));
    ctx.cookies.set(PENDING_COOKIE, '', this.cookieOptions(0));
    if (!value) return undefined;
    const { state, nonce, verifier, exp, returnTo, freshSince } = value;
    if (
      typeof state !== 'string' ||
      typeof nonce !== 'string' ||
      typeof verifier !== 'string' ||
      typeof exp !== 'number' ||
      exp <= nowSeconds()
    )
      return undefined;
    return {
      state,
      nonce,
      verifier,
      exp,
      ...(typeof returnTo === 'string' ? { returnTo } : {}),
      ...(typeof freshSince === 'number' ? { freshSince } : {}),
    };
  }

  start(ctx: Context, user: SignedInUser): ManageSession {
    const session: ManageSession = {
      sid: randomBytes(16).toString('base64url'),
      sub: user.sub,
      exp: nowSeconds() + this.opts.sessionSeconds,
      ...(user.authTime !== undefined ? { authTime: user.authTime } : {}),
      ...(user.amr ? { amr: user.amr } : {}),
    };
    this.save(ctx, session);
    return session;
  }

  /**
   * The person just proved a second factor on the page (enrolled it): the session counts as
   * signed in with it, as a sign-in that enrols one does. Same id, so open forms stay valid.
   */
  provedFactor(ctx: Context, session: ManageSession, amr: readonly string[]): ManageSession {
    const proved: ManageSession = { ...session, amr: withSecondFactor(session.amr ?? [], amr) };
    this.save(ctx, proved);
    return proved;
  }

  private save(ctx: Context, session: ManageSession): void {
    ctx.cookies.set(SESSION_COOKIE, encode(session), this.cookieOptions(session.exp - nowSeconds()));
  }

  /** The current session, or undefined (and the cookie cleared) when it is over. */
  async current(ctx: Context): Promise<ManageSession | undefined> {
    const value = decode(ctx.cookies.get(SESSION_COOKIE, { signed: true }));
    if (!value) return undefined;
    const { sid, sub, exp, authTime, amr } = value;
    if (
      typeof sid !== 'string' ||
      typeof sub !== 'string' ||
      typeof exp !== 'number' ||
      exp <= nowSeconds() ||
      !(await this.signedInAs(ctx, sub))
    ) {
      this.end(ctx);
      return undefined;
    }
    return {
      sid,
      sub,
      exp,
      ...(typeof authTime === 'number' ? { authTime } : {}),
      ...(Array.isArray(amr) && amr.every((m) => typeof m === 'string') ? { amr: amr as string[] } : {}),
    };
  }

  end(ctx: Context): void {
    ctx.cookies.set(SESSION_COOKIE, '', this.cookieOptions(0));
  }

  /** This server's sign-in session (oidc-provider's) is still there, for the same account. */
  private async signedInAs(ctx: Context, sub: string): Promise<boolean> {
    const session = await this.opts.provider.Session.get(ctx as never);
    return session.accountId === sub;
  }

  csrfToken(session: ManageSession): string {
    return ManageSessions.mac(this.opts.keys[0]!, session.sid);
  }

  verifyCsrf(session: ManageSession, presented: unknown): boolean {
    if (typeof presented !== 'string' || !presented) return false;
    const given = Buffer.from(presented);
    return this.opts.keys.some((key) => {
      const expected = Buffer.from(ManageSessions.mac(key, session.sid));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
  }

  private static mac(key: string, sid: string): string {
    return createHmac('sha256', key).update(`smart-authz/manage-form\0${sid}`).digest('base64url');
  }
}
