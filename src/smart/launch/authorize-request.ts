import type { Context, Next } from 'koa';
import { PageError } from '../../platform/http/error-page.js';
import { readForm, type BodyRules, type FormProblem } from '../../platform/http/body.js';

/**
 * Two rewrites of authorization requests before oidc-provider sees them:
 *
 * - `POST /authorize` (SMART authorize-post) becomes a 303 to `GET /authorize` with the same
 *   parameters. oidc-provider's own POST support would force SameSite=None cookies, which
 *   browsers refuse on http://localhost; a same-site GET keeps SameSite=Lax working.
 * - A request for `offline_access` or `online_access` gets `prompt=consent`: oidc-provider drops
 *   offline_access without it (OIDC Core §11), and a refresh token is something the user approves.
 *   `prompt=none` is left alone (consent cannot be asked silently; offline_access is then dropped).
 */

/** The parameters end up in a URL: keep them well inside common request-line limits. */
const FORM_LIMIT = 8 * 1024;
const REFRESH_SCOPES = new Set(['offline_access', 'online_access']);

function refuseForm(problem: FormProblem): PageError {
  switch (problem.kind) {
    case 'missing':
    case 'media-type':
      return new PageError(
        400,
        'invalid_request',
        'An authorization request sent with POST must be an HTML form (application/x-www-form-urlencoded).',
      );
    case 'too-large':
      return new PageError(413, 'request_too_large', 'The authorization request is too large.');
    case 'repeated':
      return new PageError(400, 'invalid_request', `The authorization request repeats the parameter "${problem.name.slice(0, 64)}".`);
  }
}

const AUTHORIZATION_FORM: BodyRules<FormProblem> = { types: ['application/x-www-form-urlencoded'], limit: FORM_LIMIT, refuse: refuseForm };

/**
 * Marks the `prompt=consent` this server adds, so the consent page can tell it from a client's own
 * (which always shows the page: OpenID Connect Core 3.1.2.1). Whatever a client sends under this
 * name is removed first, so only this server can set it.
 */
export const ADDED_PROMPT_PARAM = 'smart_added_prompt';

function withoutAddedPromptMarker(querystring: string): string {
  return querystring
    .split('&')
    .filter((part) => part && !part.startsWith(`${ADDED_PROMPT_PARAM}=`) && part !== ADDED_PROMPT_PARAM)
    .join('&');
}

/** The query with `prompt=consent` added when refresh scopes are asked for, or undefined if unchanged. */
export function withConsentForRefresh(sent: string): string | undefined {
  const querystring = withoutAddedPromptMarker(sent);
  const changed = querystring !== sent ? querystring : undefined;
  const params = new URLSearchParams(querystring);
  const scopes = params.getAll('scope');
  const prompts = params.getAll('prompt');
  // Repeated parameters are oidc-provider's to refuse; leave them as they are.
  if (scopes.length !== 1 || prompts.length > 1) return changed;
  if (!scopes[0]!.split(' ').some((s) => REFRESH_SCOPES.has(s))) return changed;
  const prompt = new Set((prompts[0] ?? '').split(' ').filter(Boolean));
  if (prompt.has('none') || prompt.has('consent')) return changed;
  prompt.add('consent');
  // Only the prompt parameter is re-encoded; every other one stays byte for byte as sent.
  const others = querystring.split('&').filter((part) => part && !/^prompt(=|$)/.test(part));
  return [...others, `prompt=${encodeURIComponent([...prompt].join(' '))}`, `${ADDED_PROMPT_PARAM}=consent`].join('&');
}

export function authorizationRequestRewrites(authorizationPath: string) {
  // Not async at the top: every request passes here and only /authorize is rewritten.
  return function rewriteAuthorizationRequest(ctx: Context, next: Next): Promise<void> {
    return ctx.path === authorizationPath ? rewrite(ctx, next) : next();
  };
  async function rewrite(ctx: Context, next: Next): Promise<void> {
    if (ctx.method === 'POST') {
      const form = await readForm(ctx, AUTHORIZATION_FORM);
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(`${authorizationPath}?${form.toString()}`);
      return;
    }
    if (ctx.method === 'GET') {
      const rewritten = withConsentForRefresh(ctx.querystring);
      if (rewritten !== undefined) ctx.querystring = rewritten;
    }
    return next();
  }
}
