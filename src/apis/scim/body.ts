import type { Context } from 'koa';
import { ScimError, invalidSyntax } from '../../domain/scim/errors.js';

export const SCIM_MEDIA_TYPE = 'application/scim+json';

/** Reads a SCIM request body: application/scim+json or application/json, at most `limit` bytes. */
export async function readScimJson(ctx: Context, limit: number): Promise<unknown> {
  if (!ctx.request.length && !ctx.get('Transfer-Encoding')) throw invalidSyntax('the request needs a JSON body');
  if (!ctx.is(SCIM_MEDIA_TYPE, 'application/json')) {
    throw new ScimError(415, undefined, `Content-Type must be ${SCIM_MEDIA_TYPE} or application/json`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ScimError(413, undefined, `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw invalidSyntax('the request body is not valid JSON');
  }
}

export function sendScim(ctx: Context, status: number, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (body === undefined) return;
  ctx.body = JSON.stringify(body);
  ctx.type = `${SCIM_MEDIA_TYPE}; charset=utf-8`;
}
