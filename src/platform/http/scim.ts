import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { ScimError, invalidSyntax } from '../../domain/scim/errors.js';
import { isRedisOutage, STORE_RETRY_AFTER_SECONDS } from '../redis/outage.js';
import { readJson, type JsonProblem } from './body.js';

/** SCIM over HTTP (RFC 7644): writing SCIM JSON, reading a SCIM body, and rendering ScimErrors. */

export const SCIM_MEDIA_TYPE = 'application/scim+json';
const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export function sendScim(ctx: Context, status: number, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (body === undefined) return;
  ctx.body = JSON.stringify(body);
  ctx.type = `${SCIM_MEDIA_TYPE}; charset=utf-8`;
}

/** Answers a SCIM error (RFC 7644 §3.12). */
export function sendScimError(ctx: Context, err: ScimError): void {
  for (const [name, value] of Object.entries(err.headers)) ctx.set(name, value);
  sendScim(ctx, err.status, {
    schemas: [SCIM_ERROR_SCHEMA],
    status: String(err.status),
    ...(err.scimType ? { scimType: err.scimType } : {}),
    detail: err.detail,
  });
}

function bodyProblem(problem: JsonProblem): ScimError {
  switch (problem.kind) {
    case 'missing':
      return invalidSyntax('the request needs a JSON body');
    case 'media-type':
      return new ScimError(415, undefined, `Content-Type must be ${problem.types.join(' or ')}`);
    case 'too-large':
      return new ScimError(413, undefined, `the request body exceeds ${problem.limit} bytes`);
    case 'not-json':
      return invalidSyntax('the request body is not valid JSON');
  }
}

/** Reads a SCIM request body: application/scim+json or application/json, at most `limit` bytes. */
export function readScimJson(ctx: Context, limit: number): Promise<unknown> {
  return readJson(ctx, { types: [SCIM_MEDIA_TYPE, 'application/json'], limit, required: true, refuse: bodyProblem });
}

/**
 * Turns whatever a SCIM route throws into a SCIM error: ScimErrors as they are, Koa's client
 * errors with their own status, a failing store as 503 (RFC 7644 allows it: a retry later
 * succeeds), anything else as a logged 500 that reveals nothing.
 */
export function scimErrorBoundary(logger: Logger) {
  return async function renderScimErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      sendScimError(ctx, asScimError(err, ctx, logger));
    }
  };
}

function asScimError(err: unknown, ctx: Context, logger: Logger): ScimError {
  if (err instanceof ScimError) return err;
  const status = (err as { status?: number }).status;
  if (status && status >= 400 && status < 500 && (err as { expose?: boolean }).expose)
    return new ScimError(status, undefined, (err as Error).message);
  if (isRedisOutage(err)) {
    logger.warn({ err: { message: (err as Error).message }, requestId: ctx.state.requestId }, 'SCIM request: data store unavailable');
    return new ScimError(503, undefined, 'the service cannot reach its data store; try again shortly', {
      'Retry-After': String(STORE_RETRY_AFTER_SECONDS),
    });
  }
  logger.error({ err, requestId: ctx.state.requestId }, 'SCIM request failed');
  return new ScimError(500, undefined, 'an unexpected error occurred');
}
