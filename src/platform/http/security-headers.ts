import type { Context, Next } from 'koa';
import { requestState } from './request-state.js';

declare module './request-state.js' {
  interface RequestState {
    /** The CSP settings of this response, kept so an interaction page can allow its one redirect target. */
    cspOptions?: CspOptions;
  }
}

export interface CspOptions {
  frameAncestors: string[];
  formTargets?: string[];
  /** The page runs this server's own scripts (WebAuthn needs the browser's credential API). */
  scripts?: boolean;
}

/**
 * Strict defaults on every response. Pages are server-rendered without JavaScript, so the CSP
 * allows no script at all, except the few pages that use WebAuthn, which may run this server's
 * own script files (never inline script); forms may only post back to this origin.
 */
export function contentSecurityPolicy(opts: CspOptions): string {
  return [
    "default-src 'none'",
    ...(opts.scripts ? ["script-src 'self'", "connect-src 'self'"] : []),
    "style-src 'self'",
    "img-src 'self' https: data:",
    `form-action 'self'${opts.formTargets?.length ? ` ${opts.formTargets.join(' ')}` : ''}`,
    "base-uri 'none'",
    `frame-ancestors ${opts.frameAncestors.join(' ')}`,
  ].join('; ');
}

/**
 * Browsers apply `form-action` to every redirect that follows a form post, and a sign-in or
 * consent form ends in a redirect to the app's redirect_uri. Interaction pages therefore allow
 * exactly that one target (its origin, or its scheme for a native app), nothing more.
 */
export function allowFormRedirectTo(ctx: Context, redirectUri: unknown): void {
  const parsed = typeof redirectUri === 'string' ? URL.parse(redirectUri) : null;
  if (!parsed) return;
  const target = parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.origin : parsed.protocol;
  if (!/^[A-Za-z0-9+.:/[\]-]+$/.test(target)) return;
  changeCsp(ctx, { formTargets: [target] });
}

/** This page runs this server's own script files (the WebAuthn pages); still no inline script. */
export function allowOwnScripts(ctx: Context): void {
  changeCsp(ctx, { scripts: true });
}

function changeCsp(ctx: Context, change: Partial<CspOptions>): void {
  const state = requestState(ctx);
  if (!state.cspOptions) return;
  state.cspOptions = { ...state.cspOptions, ...change };
  ctx.set('Content-Security-Policy', contentSecurityPolicy(state.cspOptions));
}

export function securityHeaders(opts: { frameAncestors: string[] }) {
  const csp = contentSecurityPolicy(opts);
  const denyFraming = opts.frameAncestors.length === 1 && opts.frameAncestors[0] === "'none'";
  return async function headers(ctx: Context, next: Next): Promise<void> {
    requestState(ctx).cspOptions = opts;
    ctx.set('Content-Security-Policy', csp);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=()');
    if (denyFraming) ctx.set('X-Frame-Options', 'DENY');
    if (ctx.secure) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}
