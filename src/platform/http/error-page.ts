import type { Context } from 'koa';
import { renderView } from './views.js';

/**
 * The HTML error page (views/error.ejs) a person sees when a browser flow fails: a title for the
 * status, the description and the error code, and the request id to quote to support.
 */

const TITLES: Record<number, string> = {
  400: 'The request could not be understood',
  401: 'Sign-in required',
  403: 'Not allowed',
  404: 'Page not found',
  405: 'Method not allowed',
  413: 'Request too large',
  429: 'Too many requests',
  503: 'Service temporarily unavailable',
};

/**
 * The error type of the HTML-page wire format: an error of a browser flow, or of any route outside
 * the APIs, thrown on purpose with a status, an OAuth-style code and a safe description. The generic
 * boundary (errors.ts) renders it here as a page for a person, and as OAuth JSON for a program.
 */
export class PageError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

export interface ErrorPage {
  status: number;
  /** The page's heading; by default one for the status. */
  title?: string;
  /** The OAuth-style error code, shown small for support. */
  error: string;
  /** What went wrong and what to do, for a person. */
  description: string;
}

/** Answers an error page; never cached. */
export async function sendErrorPage(ctx: Context, page: ErrorPage): Promise<void> {
  ctx.status = page.status;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  ctx.body = await renderView('error', {
    title: page.title ?? TITLES[page.status] ?? 'Something went wrong',
    message: page.description,
    code: page.error,
    requestId: ctx.state.requestId as string | undefined,
  });
}
