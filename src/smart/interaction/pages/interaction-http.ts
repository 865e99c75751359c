import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { PageError } from '../../../platform/http/error-page.js';
import { allowFormRedirectTo } from '../../../platform/http/security-headers.js';
import type { InteractionCsrf } from './csrf.js';

/**
 * What every interaction page (sign-in, patient and encounter pickers, consent) does the same way:
 * find the interaction from its cookie, refuse cross-site and unverified form posts, and hand the
 * result back to oidc-provider.
 */

export type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** The page of one prompt, as the router (../routes.ts) serves it. */
export interface PromptPage {
  /** GET /interaction/:uid while the interaction waits for this prompt. */
  show(ctx: Context, interaction: Interaction): Promise<void>;
  /** Adds the routes the page's forms post to. */
  register(router: Router): void;
}

export const EXPIRED = 'This sign-in link has expired or was already used. Start again from the app.';

/**
 * The interaction looked up from its cookie, checked against the uid in the path: the cookie is
 * what oidc-provider trusts, so a page for one interaction never acts on another.
 */
export async function interactionFor(provider: Provider, ctx: Context): Promise<Interaction> {
  let interaction: Interaction;
  try {
    interaction = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    if ((err as { name?: string }).name === 'SessionNotFound') throw new PageError(400, 'invalid_request', EXPIRED);
    throw err;
  }
  if (interaction.uid !== ctx.params.uid) throw new PageError(400, 'invalid_request', EXPIRED);
  allowFormRedirectTo(ctx, interaction.params.redirect_uri);
  return interaction;
}

/** Browsers say where a form post came from; a cross-site post is refused before anything else. */
export function refuseCrossSite(ctx: Context): void {
  if (ctx.get('Sec-Fetch-Site') === 'cross-site')
    throw new PageError(403, 'invalid_request', 'This form can only be submitted from this site.');
}

export function checkCsrf(csrf: InteractionCsrf, uid: string, form: URLSearchParams): void {
  if (!csrf.verify(uid, form.get('csrf'))) {
    throw new PageError(
      403,
      'invalid_csrf',
      'The form could not be verified: it may be out of date. Go back, reload the page and try again.',
    );
  }
}

/** The step this form belongs to is the one the interaction is waiting for, or the form is stale. */
export function requirePrompt(interaction: Interaction, name: string): void {
  if (interaction.prompt.name !== name) {
    throw new PageError(400, 'invalid_request', 'This step is already done for this request. Return to the app and start again.');
  }
}

/**
 * oidc-provider's answer is a 303 back to the authorization endpoint, sent through Koa. Sign-in
 * starts a fresh result; later steps merge theirs into it (`merge`), as oidc-provider expects.
 */
export async function finish(ctx: Context, provider: Provider, result: InteractionResults, opts: { merge: boolean }): Promise<void> {
  let returnTo: string;
  try {
    returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: opts.merge });
  } catch (err) {
    if ((err as { name?: string }).name === 'SessionNotFound') throw new PageError(400, 'invalid_request', EXPIRED);
    throw err;
  }
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** The client's display name and id, for pages that say which app is asking. */
export async function clientLabel(provider: Provider, interaction: Interaction): Promise<{ clientName?: string; clientId?: string }> {
  const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : undefined;
  if (!clientId) return {};
  const client = await provider.Client.find(clientId);
  return { clientId, clientName: client?.clientName };
}
