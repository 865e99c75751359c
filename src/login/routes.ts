import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { HttpError } from '../http/errors.js';
import { renderView } from '../http/views.js';
import type { InteractionCsrf } from './csrf.js';
import { readForm } from './form.js';
import { GENERIC_FAILURE, type PasswordLogin } from './password-login.js';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface InteractionRouteDeps {
  provider: Provider;
  login: PasswordLogin;
  csrf: InteractionCsrf;
}

const EXPIRED = 'This sign-in link has expired or was already used. Start again from the app.';
const CANCELLED: InteractionResults = { error: 'access_denied', error_description: 'The user cancelled the sign-in.' };

/**
 * The interaction looked up from its cookie, checked against the uid in the path: the cookie is
 * what oidc-provider trusts, so a page for one interaction never acts on another.
 */
async function interactionFor(provider: Provider, ctx: Context): Promise<Interaction> {
  let interaction: Interaction;
  try {
    interaction = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    if ((err as { name?: string }).name === 'SessionNotFound') throw new HttpError(400, 'invalid_request', EXPIRED);
    throw err;
  }
  if (interaction.uid !== ctx.params.uid) throw new HttpError(400, 'invalid_request', EXPIRED);
  return interaction;
}

/** Browsers say where a form post came from; a cross-site post is refused before anything else. */
function refuseCrossSite(ctx: Context): void {
  if (ctx.get('Sec-Fetch-Site') === 'cross-site') throw new HttpError(403, 'invalid_request', 'This form can only be submitted from this site.');
}

function checkCsrf(deps: InteractionRouteDeps, uid: string, form: URLSearchParams): void {
  if (!deps.csrf.verify(uid, form.get('csrf'))) {
    throw new HttpError(403, 'invalid_csrf', 'The form could not be verified: it may be out of date. Go back, reload the sign-in page and try again.');
  }
}

async function clientLabel(provider: Provider, interaction: Interaction): Promise<{ clientName?: string; clientId?: string }> {
  const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : undefined;
  if (!clientId) return {};
  const client = await provider.Client.find(clientId);
  return { clientId, clientName: client?.clientName };
}

async function renderLogin(
  ctx: Context,
  deps: InteractionRouteDeps,
  interaction: Interaction,
  view: { status: number; username?: string; error?: string; invalid?: boolean },
): Promise<void> {
  ctx.status = view.status;
  ctx.type = 'html';
  ctx.body = await renderView('login', {
    title: 'Sign in',
    uid: interaction.uid,
    csrf: deps.csrf.token(interaction.uid),
    username: view.username ?? '',
    error: view.error ?? '',
    invalid: view.invalid ?? false,
    ...(await clientLabel(deps.provider, interaction)),
  });
}

/** oidc-provider's answer is a 303 back to the authorization endpoint, sent through Koa. */
async function finish(ctx: Context, provider: Provider, result: InteractionResults): Promise<void> {
  let returnTo: string;
  try {
    returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  } catch (err) {
    if ((err as { name?: string }).name === 'SessionNotFound') throw new HttpError(400, 'invalid_request', EXPIRED);
    throw err;
  }
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/**
 * The pages oidc-provider sends the browser to while it needs the user: the sign-in form for the
 * `login` prompt and a way to cancel. Prompts this build cannot serve yet (consent) end on a page
 * that says so rather than a form that cannot work.
 */
export function interactionRoutes(deps: InteractionRouteDeps): Router {
  const { provider, login } = deps;
  const router = new Router();

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/interaction/:uid', async (ctx) => {
    const interaction = await interactionFor(provider, ctx);
    if (interaction.prompt.name === 'login') {
      const hint = interaction.params.login_hint;
      await renderLogin(ctx, deps, interaction, { status: 200, ...(typeof hint === 'string' ? { username: hint.slice(0, 256) } : {}) });
      return;
    }
    throw new HttpError(503, 'interaction_unavailable', 'You are signed in, but approving what the app may access is not available on this server yet.');
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(provider, ctx);
    if (interaction.prompt.name !== 'login') throw new HttpError(400, 'invalid_request', 'You are already signed in for this request. Return to the app and start again.');
    const form = await readForm(ctx);
    checkCsrf(deps, interaction.uid, form);
    const username = form.get('username') ?? '';
    const outcome = await login.attempt({ username, password: form.get('password') ?? '', ip: ctx.ip, requestId: ctx.state.requestId as string | undefined });
    if (outcome.ok) {
      await finish(ctx, provider, { login: { accountId: outcome.user.id, amr: ['pwd'], remember: false } });
      return;
    }
    if (outcome.reason === 'rate_limited') {
      const minutes = Math.ceil(outcome.retryAfterSeconds / 60);
      await renderLogin(ctx, deps, interaction, {
        status: 429,
        username,
        error: `Too many sign-in attempts from your network. Wait ${minutes === 1 ? 'a minute' : `${minutes} minutes`} and try again.`,
      });
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      return;
    }
    await renderLogin(ctx, deps, interaction, { status: 400, username, error: GENERIC_FAILURE, invalid: true });
  });

  router.post('/interaction/:uid/abort', async (ctx) => {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(provider, ctx);
    checkCsrf(deps, interaction.uid, await readForm(ctx));
    await finish(ctx, provider, CANCELLED);
  });

  return router;
}
