import type Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { jsonFormField } from '../../../platform/http/body.js';
import { PageError } from '../../../platform/http/error-page.js';
import { allowOwnScripts } from '../../../platform/http/security-headers.js';
import { renderView } from '../../../platform/http/views.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { SecondFactors } from '../../../records/directory/factors/second-factors.js';
import { FactorError, type FactorSummary, type VerifyAttempt } from '../../../records/directory/factors/types.js';
import type { AuditRecorder } from '../../../records/audit/trail.js';
import type { InteractionCsrf } from '../pages/csrf.js';
import { readForm } from '../pages/form.js';
import { checkCsrf, EXPIRED, interactionFor, refuseCrossSite, requirePrompt, type Interaction } from '../pages/interaction-http.js';
import type { IpRateLimiter } from '../login/ip-limiter.js';
import type { SignInProgress, SignInProgressStore } from '../login/sign-in-progress.js';
import type { SignInCompletion } from './sign-in-completion.js';
import { enrolledEvent, verifyEvents } from './second-factor-audit.js';

/**
 * The second step of a sign-in (and the whole of a step-up): verify a factor the person has, or,
 * when they have none and need one, set one up. Its routes:
 *
 *   GET  /interaction/:uid                              (through the login page) verify, or enrol
 *   POST /interaction/:uid/second-factor                a code, a recovery code or a WebAuthn assertion
 *   POST /interaction/:uid/second-factor/enrol-totp     the first code of a new authenticator app
 *   POST /interaction/:uid/second-factor/enrol-passkey  a new passkey's registration
 *   POST /interaction/:uid/second-factor/continue       past the recovery codes shown once
 *
 * Each post is checked as every interaction form is (same-site, CSRF, the interaction's own
 * cookie) and needs the sign-in in progress this interaction began: a second factor alone signs
 * nobody in. Codes count against the network's sign-in budget and the account's lock-out, like
 * passwords. A factor is set up here only by someone with no factor at all: one who has a factor
 * must use it, so a stolen password cannot add the thief's own authenticator.
 */

export interface SecondFactorPageDeps {
  provider: Provider;
  csrf: InteractionCsrf;
  users: Pick<UserStore, 'get'>;
  factors: Pick<
    SecondFactors,
    | 'list'
    | 'beginTotp'
    | 'confirmTotp'
    | 'registrationOptions'
    | 'verifyRegistration'
    | 'authenticationOptions'
    | 'verify'
    | 'newRecoveryCodes'
  >;
  progress: SignInProgressStore;
  completion: SignInCompletion;
  ipLimiter: IpRateLimiter;
  audit: AuditRecorder;
  issuer: string;
  /** mfa.breakTheGlassFreshSeconds, for the page's wording. */
  freshSeconds: number;
}

const FAILED = 'That did not work. Check the code or try your other factor.';
const LOCKED = 'Too many wrong attempts: this account is locked for a while. Try again later, or ask your administrator to unlock it.';

function whyText(progress: SignInProgress, freshSeconds: number, clientName: string | undefined): string {
  const minutes = Math.max(1, Math.round(freshSeconds / 60));
  if (progress.reasons.includes('break_the_glass'))
    return `Emergency access needs a second factor verified within the last ${minutes === 1 ? 'minute' : `${minutes} minutes`}.`;
  if (progress.level === 3) return `${clientName ?? 'This app'} asks for a passkey or security key.`;
  if (progress.reasons.includes('acr_values')) return `${clientName ?? 'This app'} asks for a second factor.`;
  if (progress.reasons.includes('policy')) return 'Your organisation requires a second factor for your account.';
  return 'Your account is protected by a second factor.';
}

/** Factors that reach the level: a passkey or security key only, for a phishing-resistant sign-in. */
function usable(factors: FactorSummary[], progress: SignInProgress): FactorSummary[] {
  return progress.level === 3 ? factors.filter((f) => f.kind === 'webauthn') : factors;
}

async function clientNameOf(provider: Provider, interaction: Interaction): Promise<string | undefined> {
  const id = interaction.params.client_id;
  if (typeof id !== 'string') return undefined;
  return (await provider.Client.find(id))?.clientName;
}

/** The options a browser needs, as the attribute the page script reads (EJS escapes it). */
const asAttribute = (options: unknown) => JSON.stringify(options);

async function render(ctx: Context, view: string, status: number, data: Record<string, unknown>): Promise<void> {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = await renderView(view, data);
}

export function secondFactorPage(deps: SecondFactorPageDeps) {
  const { provider, factors, progress: store } = deps;

  async function showVerify(ctx: Context, interaction: Interaction, progress: SignInProgress, view: { status: number; error?: string }) {
    const all = await factors.list(progress.accountId);
    const have = usable(all, progress);
    const hasWebauthn = have.some((f) => f.kind === 'webauthn');
    if (hasWebauthn) allowOwnScripts(ctx);
    await render(ctx, 'second-factor', view.status, {
      title: 'Verify it is you',
      why: whyText(progress, deps.freshSeconds, await clientNameOf(provider, interaction)),
      uid: interaction.uid,
      csrf: deps.csrf.token(interaction.uid),
      error: view.error ?? '',
      webauthn: hasWebauthn ? asAttribute(await factors.authenticationOptions(progress.accountId, interaction.uid)) : '',
      totp: have.some((f) => f.kind === 'totp'),
      // A recovery code is a one-time password: it stands in for an app code, not for a passkey.
      recovery: progress.level < 3,
      missing:
        'This app asks for a passkey or security key, and your account has none. Add one on your account page (Manage → Security), then try again.',
    });
  }

  async function showEnrol(ctx: Context, interaction: Interaction, progress: SignInProgress, view: { status: number; error?: string }) {
    const user = await deps.users.get(progress.accountId);
    if (!user?.active) throw new PageError(403, 'access_denied', 'This account cannot sign in.');
    const name = { userName: user.userName, displayName: user.displayName ?? user.userName };
    allowOwnScripts(ctx);
    const totp = progress.level < 3 ? await factors.beginTotp(progress.accountId, user.userName) : undefined;
    await render(ctx, 'enrol-factor', view.status, {
      title: 'Set up a second factor',
      why: whyText(progress, deps.freshSeconds, await clientNameOf(provider, interaction)),
      uid: interaction.uid,
      csrf: deps.csrf.token(interaction.uid),
      error: view.error ?? '',
      passkeyOptions: asAttribute(await factors.registrationOptions(progress.accountId, name, interaction.uid)),
      totp: totp
        ? { secret: totp.secret, qrDataUri: `data:image/svg+xml;base64,${Buffer.from(totp.qrSvg).toString('base64')}` }
        : undefined,
    });
  }

  async function showEnrolled(ctx: Context, interaction: Interaction, progress: SignInProgress, codes: string[]) {
    await render(ctx, 'factor-enrolled', 200, {
      title: 'Second factor added',
      factorName: progress.verified?.kind === 'totp' ? 'authenticator app' : 'passkey or security key',
      codes,
      uid: interaction.uid,
      csrf: deps.csrf.token(interaction.uid),
    });
  }

  /** The page of a sign-in in progress: enrolled (go on), verify, or enrol when the person has no factor at all. */
  async function showProgress(ctx: Context, interaction: Interaction, progress: SignInProgress): Promise<void> {
    if (progress.verified) return showEnrolled(ctx, interaction, progress, []);
    const all = await factors.list(progress.accountId);
    if (all.length === 0) return showEnrol(ctx, interaction, progress, { status: 200 });
    return showVerify(ctx, interaction, progress, { status: 200 });
  }

  /** The checks every post of this step makes, in order; ends with the sign-in in progress. */
  async function postedStep(ctx: Context): Promise<{ interaction: Interaction; form: URLSearchParams; progress: SignInProgress }> {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(provider, ctx);
    requirePrompt(interaction, 'login');
    const form = await readForm(ctx);
    checkCsrf(deps.csrf, interaction.uid, form);
    const progress = await store.get(interaction.uid);
    if (!progress) throw new PageError(400, 'invalid_request', EXPIRED);
    return { interaction, form, progress };
  }

  /** The network's sign-in budget, shared with passwords; false when the page already answered 429. */
  async function withinBudget(ctx: Context, interaction: Interaction, progress: SignInProgress): Promise<boolean> {
    const network = await deps.ipLimiter.consume(ctx.ip);
    if (network.allowed) return true;
    ctx.set('Retry-After', String(network.retryAfterSeconds));
    await showVerify(ctx, interaction, progress, {
      status: 429,
      error: 'Too many attempts from your network. Wait a few minutes and try again.',
    });
    return false;
  }

  function attemptOf(form: URLSearchParams): VerifyAttempt | undefined {
    const method = form.get('method');
    if (method === 'totp' || method === 'recovery') {
      const code = (form.get('code') ?? '').replace(/\s+/g, '');
      return code && code.length <= 64 ? { kind: method, code } : undefined;
    }
    if (method === 'webauthn') {
      const response = jsonFormField<AuthenticationResponseJSON>(form, 'response');
      return response ? { kind: 'webauthn', response } : undefined;
    }
    return undefined;
  }

  async function verify(ctx: Context): Promise<void> {
    const { interaction, form, progress } = await postedStep(ctx);
    if (!(await withinBudget(ctx, interaction, progress))) return;
    const attempt = attemptOf(form);
    if (!attempt) return showVerify(ctx, interaction, progress, { status: 400, error: FAILED });
    if (progress.level === 3 && attempt.kind !== 'webauthn') {
      return showVerify(ctx, interaction, progress, { status: 400, error: 'This app asks for a passkey or security key.' });
    }
    const outcome = await factors.verify(progress.accountId, attempt, interaction.uid);
    // On record before the page or redirect is sent, as every sign-in attempt is.
    for (const event of verifyEvents(deps.issuer, progress, attempt.kind, outcome, { ip: ctx.ip, clientId: interaction.params.client_id }))
      await deps.audit.record(event);
    if (outcome.ok) return deps.completion.complete(ctx, interaction, outcome.amr);
    if (outcome.reason === 'locked') return showVerify(ctx, interaction, progress, { status: 403, error: LOCKED });
    return showVerify(ctx, interaction, progress, { status: 400, error: FAILED });
  }

  /** Enrolment is for a person with no factor yet; anyone else verifies the factor they have. */
  async function requireNoFactor(progress: SignInProgress): Promise<void> {
    if ((await factors.list(progress.accountId)).length > 0) {
      throw new PageError(
        403,
        'access_denied',
        'Your account already has a second factor: use it to sign in. To add another, go to your account page after signing in.',
      );
    }
  }

  async function enrolled(ctx: Context, interaction: Interaction, progress: SignInProgress, factor: FactorSummary, amr: string[]) {
    const verified: SignInProgress = { ...progress, verified: { amr, kind: factor.kind } };
    await store.save(interaction.uid, verified);
    await deps.audit.record(enrolledEvent(deps.issuer, progress, factor, { ip: ctx.ip, clientId: interaction.params.client_id }));
    await showEnrolled(ctx, interaction, verified, await factors.newRecoveryCodes(progress.accountId));
  }

  async function enrolTotp(ctx: Context): Promise<void> {
    const { interaction, form, progress } = await postedStep(ctx);
    if (progress.verified) return showEnrolled(ctx, interaction, progress, []);
    await requireNoFactor(progress);
    if (progress.level === 3) throw new PageError(400, 'invalid_request', 'This app asks for a passkey or security key.');
    if (!(await withinBudget(ctx, interaction, progress))) return;
    const code = (form.get('code') ?? '').replace(/\s+/g, '');
    const factor = code.length <= 16 ? await factors.confirmTotp(progress.accountId, code, 'Authenticator app') : undefined;
    if (!factor)
      return showEnrol(ctx, interaction, progress, {
        status: 400,
        error: 'That code did not match. Scan the new code below and try again.',
      });
    await enrolled(ctx, interaction, progress, factor, ['otp']);
  }

  async function enrolPasskey(ctx: Context): Promise<void> {
    const { interaction, form, progress } = await postedStep(ctx);
    if (progress.verified) return showEnrolled(ctx, interaction, progress, []);
    await requireNoFactor(progress);
    const response = jsonFormField<RegistrationResponseJSON>(form, 'response');
    if (!response) return showEnrol(ctx, interaction, progress, { status: 400, error: 'The passkey could not be registered. Try again.' });
    let factor: FactorSummary;
    try {
      factor = await factors.verifyRegistration(progress.accountId, response, interaction.uid, 'Passkey');
    } catch (err) {
      if (!(err instanceof FactorError)) throw err;
      return showEnrol(ctx, interaction, progress, { status: 400, error: err.message });
    }
    await enrolled(ctx, interaction, progress, factor, [factor.keyType ?? 'swk']);
  }

  async function carryOn(ctx: Context): Promise<void> {
    const { interaction, progress } = await postedStep(ctx);
    if (!progress.verified) throw new PageError(400, 'invalid_request', 'Set up or verify a second factor first.');
    await deps.completion.complete(ctx, interaction, progress.verified.amr);
  }

  return {
    /**
     * Shows this step when the interaction has a sign-in in progress, or its session only needs a
     * stronger or fresher factor; false when the whole sign-in is asked for (the password page).
     */
    async showIfNeeded(ctx: Context, interaction: Interaction): Promise<boolean> {
      const progress = (await store.get(interaction.uid)) ?? (await deps.completion.stepUp(interaction));
      if (!progress) return false;
      await showProgress(ctx, interaction, progress);
      return true;
    },
    register(router: Router): void {
      router.post('/interaction/:uid/second-factor', (ctx) => verify(ctx));
      router.post('/interaction/:uid/second-factor/enrol-totp', (ctx) => enrolTotp(ctx));
      router.post('/interaction/:uid/second-factor/enrol-passkey', (ctx) => enrolPasskey(ctx));
      router.post('/interaction/:uid/second-factor/continue', (ctx) => carryOn(ctx));
    },
  };
}
