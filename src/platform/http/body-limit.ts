import type { Context, Next } from 'koa';
import { PageError } from './error-page.js';

export function parseSize(size: string): number {
  const m = /^(\d+)(kb|mb)$/i.exec(size);
  if (!m) throw new Error(`bad size ${size}`);
  return Number(m[1]) * (m[2]!.toLowerCase() === 'mb' ? 1024 * 1024 : 1024);
}

/**
 * Refuses oversized bodies before anyone reads them. Requests without Content-Length (chunked)
 * are bounded again by each body parser's own limit.
 */
export function bodyLimit(limit: string) {
  const max = parseSize(limit);
  return function limitBody(ctx: Context, next: Next): Promise<void> {
    const length = Number(ctx.get('Content-Length') || 0);
    // Thrown synchronously: koa-compose turns it into the rejection the error boundary answers.
    if (length > max) throw new PageError(413, 'request_too_large', `The request body exceeds ${limit}.`);
    return next();
  };
}
