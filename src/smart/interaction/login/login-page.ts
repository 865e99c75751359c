import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { HttpError } from '../../../platform/http/errors.js';
import { renderView } from '../../../platform/http/views.js';
import type { InteractionCsrf } from '../pages/csrf.js';
import { readForm } from '../pages/form.js';
import { checkCsrf, clientLabel, finish, interactionFor, refuseCrossSite, type Interaction } from '../pages/interaction-http.js';
import { GENERIC_FAILURE, type PasswordLogin } from './password-login.js';
import type { AuditRecorder } from '../../../records/audit/trail.js';
import { loginAttemptEvents } from './login-audit.js';

/**
 * The pages of prompts other than login (smart/interactions/routes.ts): `show` renders the page
 * for its prompt; `register` adds the routes its forms post to.
 */
export interface PromptPages {
  show: Readonly<Record<string, (ctx: Context, interaction: Interaction) => Promise<void>>>;
  register(router: Router): void;
}

export interface InteractionRouteDeps {
  provider: Provider;
  login: PasswordLogin;
  csrf: InteractionCsrf;
  pages?: PromptPages;
  /** Every sign-in attempt is recorded before its page or redirect is sent. */
  audit: AuditRecorder;
  issuer: string;
}

const CANCELLED: InteractionResults = { error: 'access_denied', error_description: 'The user cancelled the sign-in.' };

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

/**
 * The pages oidc-provider sends the browser to while it needs the user: GET /interaction/:uid
 * shows the page of the prompt the interaction waits for (the sign-in form here, the others from
 * `pages`); every step can be cancelled. A prompt without a page ends on a page saying so.
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
    const show = deps.pages?.show[interaction.prompt.name];
    if (show) {
      await show(ctx, interaction);
      return;
    }
    throw new HttpError(503, 'interaction_unavailable', 'You are signed in, but this step of the request is not available on this server.');
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(provider, ctx);
    if (interaction.prompt.name !== 'login') throw new HttpError(400, 'invalid_request', 'You are already signed in for this request. Return to the app and start again.');
    const form = await readForm(ctx);
    checkCsrf(deps.csrf, interaction.uid, form);
    const username = form.get('username') ?? '';
    const outcome = await login.attempt({ username, password: form.get('password') ?? '', ip: ctx.ip, requestId: ctx.state.requestId as string | undefined });
    for (const event of loginAttemptEvents(deps.issuer, outcome, { ip: ctx.ip, clientId: interaction.params.client_id })) await deps.audit.record(event);
    if (outcome.ok) {
      await finish(ctx, provider, { login: { accountId: outcome.user.id, amr: ['pwd'], remember: false } }, { merge: false });
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
    checkCsrf(deps.csrf, interaction.uid, await readForm(ctx));
    await finish(ctx, provider, CANCELLED, { merge: false });
  });

  deps.pages?.register(router);
  return router;
}
