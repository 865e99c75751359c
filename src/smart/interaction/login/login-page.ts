import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { PageError } from '../../../platform/http/error-page.js';
import { renderView } from '../../../platform/http/views.js';
import type { InteractionCsrf } from '../pages/csrf.js';
import { readForm } from '../pages/form.js';
import { checkCsrf, clientLabel, interactionFor, refuseCrossSite, type Interaction, type PromptPage } from '../pages/interaction-http.js';
import { GENERIC_FAILURE, type PasswordLogin } from './password-login.js';
import type { AuditRecorder } from '../../../records/audit/trail.js';
import { AMR } from '../../../domain/authn/assurance.js';
import { loginAttemptEvents } from './login-audit.js';
import type { AfterFirstFactor } from './first-factor.js';
import { federateHref } from '../federation/paths.js';

/**
 * The `login` step: the sign-in form, and its post checked by password-login.ts (network limit,
 * account lock-out). Every attempt is recorded in the audit trail (login-audit.ts) before its page
 * or redirect is sent. A correct password is a first factor: `afterFirstFactor` decides whether
 * a second one is needed.
 */

/** The ways of signing in the page offers: the password form, the organisation's identity providers, or both. */
export interface SignInOptions {
  passwordSignIn: boolean;
  /** One "Sign in with <displayName>" button each (federation/). */
  providers: ReadonlyArray<{ id: string; displayName: string }>;
}

export interface LoginPageDeps {
  provider: Provider;
  login: PasswordLogin;
  csrf: InteractionCsrf;
  /** Every sign-in attempt is recorded before its page or redirect is sent. */
  audit: AuditRecorder;
  issuer: string;
  /** What a correct password leads to: a second factor, or the end of the sign-in. */
  afterFirstFactor: AfterFirstFactor;
  /** Default: the password form only. */
  signInOptions?: SignInOptions;
}

const PASSWORD_ONLY: SignInOptions = { passwordSignIn: true, providers: [] };

/** The sign-in page of an interaction, with an error when an attempt (of any kind) was refused. */
export async function renderLogin(
  ctx: Context,
  deps: LoginPageDeps,
  interaction: Interaction,
  view: { status: number; username?: string; error?: string; invalid?: boolean },
): Promise<void> {
  const options = deps.signInOptions ?? PASSWORD_ONLY;
  const csrf = deps.csrf.token(interaction.uid);
  ctx.status = view.status;
  ctx.type = 'html';
  ctx.body = await renderView('login', {
    title: 'Sign in',
    uid: interaction.uid,
    csrf,
    username: view.username ?? '',
    error: view.error ?? '',
    invalid: view.invalid ?? false,
    passwordSignIn: options.passwordSignIn,
    providers: options.providers.map((p) => ({ displayName: p.displayName, href: federateHref(interaction.uid, p.id, csrf) })),
    ...(await clientLabel(deps.provider, interaction)),
  });
}

async function show(ctx: Context, deps: LoginPageDeps, interaction: Interaction): Promise<void> {
  const hint = interaction.params.login_hint;
  await renderLogin(ctx, deps, interaction, { status: 200, ...(typeof hint === 'string' ? { username: hint.slice(0, 256) } : {}) });
}

async function signIn(ctx: Context, deps: LoginPageDeps): Promise<void> {
  const { provider, login } = deps;
  refuseCrossSite(ctx);
  // Hiding the form is not enough: where only the identity providers may be used, no password is checked.
  if (deps.signInOptions && !deps.signInOptions.passwordSignIn)
    throw new PageError(403, 'invalid_request', 'Password sign-in is not offered here. Sign in with your organisation instead.');
  const interaction = await interactionFor(provider, ctx);
  if (interaction.prompt.name !== 'login')
    throw new PageError(400, 'invalid_request', 'You are already signed in for this request. Return to the app and start again.');
  const form = await readForm(ctx);
  checkCsrf(deps.csrf, interaction.uid, form);
  const username = form.get('username') ?? '';
  const outcome = await login.attempt({
    username,
    password: form.get('password') ?? '',
    ip: ctx.ip,
    requestId: ctx.state.requestId as string | undefined,
  });
  for (const event of loginAttemptEvents(deps.issuer, outcome, { ip: ctx.ip, clientId: interaction.params.client_id }))
    await deps.audit.record(event);
  if (outcome.ok) {
    await deps.afterFirstFactor(ctx, interaction, { accountId: outcome.user.id, amr: [AMR.password] });
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
}

export function loginPage(deps: LoginPageDeps): PromptPage {
  return {
    show: (ctx, interaction) => show(ctx, deps, interaction),
    register(router) {
      router.post('/interaction/:uid/login', (ctx) => signIn(ctx, deps));
    },
  };
}
