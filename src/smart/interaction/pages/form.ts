import type { Context } from 'koa';
import { readForm as readBody, type FormProblem, type FormRules } from '../../../platform/http/body.js';
import { PageError } from '../../../platform/http/error-page.js';

/** How a page tells a person their form was refused (an HTML error page). */
function refuse(problem: FormProblem): PageError {
  if (problem.kind === 'too-large') return new PageError(413, 'request_too_large', 'The submitted form is too large.');
  return new PageError(400, 'invalid_request', 'This page accepts only its own form. Go back and submit the form again.');
}

/**
 * The sign-in and prompt pages' forms: application/x-www-form-urlencoded, at most 16 KiB (far
 * more than a username, a password and a token need); checkbox lists repeat their name.
 */
const PAGE_FORM: FormRules = { types: ['application/x-www-form-urlencoded'], limit: 16 * 1024, repeatable: true, refuse };

/** Reads an HTML form post of one of this server's pages. */
export function readForm(ctx: Context): Promise<URLSearchParams> {
  return readBody(ctx, PAGE_FORM);
}
