import type { Context, Next } from 'koa';

/**
 * Strict defaults on every response. Pages are server-rendered without JavaScript, so the CSP
 * allows no script at all; forms may only post back to this origin.
 */
export function securityHeaders(opts: { frameAncestors: string[] }) {
  const csp = [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' https: data:",
    "form-action 'self'",
    "base-uri 'none'",
    `frame-ancestors ${opts.frameAncestors.join(' ')}`,
  ].join('; ');
  const denyFraming = opts.frameAncestors.length === 1 && opts.frameAncestors[0] === "'none'";
  return async function headers(ctx: Context, next: Next): Promise<void> {
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
