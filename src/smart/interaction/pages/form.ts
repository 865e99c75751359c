import type { Context } from 'koa';
import { HttpError } from '../../../platform/http/errors.js';

/** Far more than a username, a password and a token need. */
const FORM_LIMIT = 16 * 1024;

/** Reads an HTML form post (application/x-www-form-urlencoded), bounded in size. */
export async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new HttpError(400, 'invalid_request', 'This page accepts only its own form. Go back and submit the form again.');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > FORM_LIMIT) throw new HttpError(413, 'request_too_large', 'The submitted form is too large.');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
