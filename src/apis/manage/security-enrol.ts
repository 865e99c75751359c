import type { Context } from 'koa';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { jsonFormField } from '../../platform/http/body.js';
import { allowOwnScripts } from '../../platform/http/security-headers.js';
import { renderView } from '../../platform/http/views.js';
import type { AuditTrail } from '../../records/audit/trail.js';
import { factorEnrolled } from '../../records/audit/events/factor-events.js';
import { FactorError, type FactorSummary } from '../../records/directory/factors/types.js';
import type { Manage, ManageState, Step } from './context.js';
import { accountOf, actorOf, kindName, renderSecurity, SECURITY_TITLE } from './security-page.js';

/**
 * Adding a second factor on the account page: an authenticator app (a secret shown as a QR code,
 * confirmed by its first code) or a passkey or security key (a WebAuthn registration). The
 * registration's challenge is bound to this management session: one started in another session
 * (another browser, an earlier sign-in) does not complete here. On success the factor is recorded
 * in the audit trail before the page is sent; a person who had no recovery codes gets them, shown
 * once.
 */

type Trail = Pick<AuditTrail, 'record'>;
type Ctx = Context & { state: ManageState };

const MAX_LABEL = 64;
const WRONG_CODE = 'That code did not match. Scan the new code below (or enter the new key) and try again.';

/** The WebAuthn binding of a management session: its challenges complete in no other. */
const bindingOf = (ctx: Ctx) => `manage-session:${ctx.state.session!.sid}`;

/** A name the person gives the factor (optional; the store cleans and bounds it). */
function labelOf(form: URLSearchParams): string | undefined {
  const label = (form.get('label') ?? '').trim();
  return label ? label.slice(0, MAX_LABEL) : undefined;
}

async function render(ctx: Ctx, view: string, status: number, data: Record<string, unknown>): Promise<void> {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = await renderView(view, { title: SECURITY_TITLE, ...data });
}

/** The factor is on record, the session counts as having proved it, and new codes come when there were none. */
async function enrolled(m: Manage, trail: Trail, ctx: Ctx, factor: FactorSummary, amr: string[]): Promise<void> {
  const sub = ctx.state.session!.sub;
  const scope = { issuer: m.config.issuer };
  const actor = { user: actorOf(ctx) };
  await trail.record(
    factorEnrolled(scope, {
      actor,
      accountId: sub,
      kind: factor.kind,
      factorId: factor.id,
      label: factor.label,
      ...(factor.keyType ? { keyType: factor.keyType } : {}),
    }),
  );
  ctx.state.session = m.sessions.provedFactor(ctx, ctx.state.session!, amr);
  let codes: string[] = [];
  if ((await m.deps.factors.snapshot(sub)).recoveryCodesLeft === 0) {
    codes = await m.deps.factors.newRecoveryCodes(sub);
    await trail.record(factorEnrolled(scope, { actor, accountId: sub, kind: 'recovery', count: codes.length }));
  }
  await renderSecurity(m, ctx, { notice: `${kindName(factor)} added: ${factor.label}.`, codes });
}

// An authenticator app

async function showApp(m: Manage, ctx: Ctx, status: number, error = ''): Promise<void> {
  const account = await accountOf(m, ctx.state);
  const totp = await m.deps.factors.beginTotp(account.id, account.userName);
  await render(ctx, 'account-add-app', status, {
    csrf: m.sessions.csrfToken(ctx.state.session!),
    error,
    secret: totp.secret,
    qrDataUri: `data:image/svg+xml;base64,${Buffer.from(totp.qrSvg).toString('base64')}`,
  });
}

/** GET /manage/security/authenticator-app: a new secret, pending until its first code comes back. */
export function beginAuthenticatorApp(m: Manage): Step {
  return async function beginAuthenticatorApp(ctx) {
    await showApp(m, ctx, 200);
  };
}

/** POST /manage/security/authenticator-app: the app's first code proves it has the secret. */
export function confirmAuthenticatorApp(m: Manage, trail: Trail): Step {
  return async function confirmAuthenticatorApp(ctx) {
    const form = ctx.state.form!;
    const code = (form.get('code') ?? '').replace(/\s+/g, '');
    let factor: FactorSummary | undefined;
    try {
      factor = code && code.length <= 16 ? await m.deps.factors.confirmTotp(ctx.state.session!.sub, code, labelOf(form)) : undefined;
    } catch (err) {
      if (!(err instanceof FactorError)) throw err;
      return renderSecurity(m, ctx, { status: 400, error: err.message });
    }
    // The pending secret cannot be shown again (only its sealed form is kept): a new one is.
    if (!factor) return showApp(m, ctx, 400, WRONG_CODE);
    await enrolled(m, trail, ctx, factor, ['otp']);
  };
}

// A passkey or security key

async function showPasskey(m: Manage, ctx: Ctx, status: number, error = ''): Promise<void> {
  const account = await accountOf(m, ctx.state);
  const name = { userName: account.userName, displayName: account.displayName ?? account.userName };
  let options;
  try {
    options = await m.deps.factors.registrationOptions(account.id, name, bindingOf(ctx));
  } catch (err) {
    if (!(err instanceof FactorError)) throw err;
    return renderSecurity(m, ctx, { status: 400, error: err.message });
  }
  // The one page of /manage that runs script: this server's own WebAuthn files, no inline script.
  allowOwnScripts(ctx);
  await render(ctx, 'account-add-passkey', status, {
    csrf: m.sessions.csrfToken(ctx.state.session!),
    error,
    options: JSON.stringify(options),
  });
}

/** GET /manage/security/passkey: the registration options, the challenge bound to this session. */
export function beginPasskey(m: Manage): Step {
  return async function beginPasskey(ctx) {
    await showPasskey(m, ctx, 200);
  };
}

/** POST /manage/security/passkey: the authenticator's answer to this session's challenge. */
export function confirmPasskey(m: Manage, trail: Trail): Step {
  return async function confirmPasskey(ctx) {
    const form = ctx.state.form!;
    const response = jsonFormField<RegistrationResponseJSON>(form, 'response');
    if (!response) return showPasskey(m, ctx, 400, 'The passkey or security key could not be registered. Try again.');
    let factor: FactorSummary;
    try {
      factor = await m.deps.factors.verifyRegistration(ctx.state.session!.sub, response, bindingOf(ctx), labelOf(form));
    } catch (err) {
      if (!(err instanceof FactorError)) throw err;
      return showPasskey(m, ctx, 400, err.message);
    }
    await enrolled(m, trail, ctx, factor, [factor.keyType ?? 'swk']);
  };
}
