import type { Context } from 'koa';
import { renderView } from '../../platform/http/views.js';
import { PageError } from '../../platform/http/error-page.js';
import type { ScimUser } from '../../records/directory/model.js';
import type { FactorSummary } from '../../records/directory/factors/types.js';
import type { UserInfo } from '../../records/audit/events/agents.js';
import { longDate } from '../../smart/interaction/pages/client-display.js';
import { needsSecondFactor } from '../../smart/interaction/second-factor/mfa-policy.js';
import { SESSION_ENDED, type Manage, type ManageState, type Step } from './context.js';

/**
 * "Security: second factors" (/manage/security): the person's own authenticator apps, passkeys and
 * security keys, and how many recovery codes they have left; the way in to adding, removing and
 * new codes (security-changes.ts). What every page of it shares lives here: the person's directory
 * record, whether the policy requires them to have a factor, and the page itself.
 */

export const SECURITY_TITLE = 'Security: second factors';

interface FactorRow {
  id: string;
  kind: string;
  label: string;
  added: { iso: string; text: string };
  lastUsed: { iso: string; text: string } | undefined;
}

/** What the page shows, beyond the list: a notice or an error, and recovery codes shown once. */
export interface SecurityView {
  status?: number;
  notice?: string;
  error?: string;
  codes?: string[];
}

function when(iso: string): { iso: string; text: string } {
  const ms = Date.parse(iso);
  return { iso: new Date(ms).toISOString(), text: longDate(ms) };
}

/** How a person knows a factor: by what it is, not by the protocol. */
export function kindName(factor: Pick<FactorSummary, 'kind' | 'keyType'>): string {
  if (factor.kind === 'totp') return 'Authenticator app';
  return factor.keyType === 'swk' ? 'Passkey' : 'Security key';
}

function rowOf(f: FactorSummary): FactorRow {
  return {
    id: f.id,
    kind: kindName(f),
    label: f.label,
    added: when(f.createdAt),
    lastUsed: f.lastUsedAt ? when(f.lastUsedAt) : undefined,
  };
}

/** The signed-in person's directory record (the page's session step has just checked it is active). */
export async function accountOf(m: Manage, state: ManageState): Promise<ScimUser> {
  const account = await m.deps.users.get(state.session!.sub);
  if (!account) throw new PageError(401, 'login_required', SESSION_ENDED);
  return account;
}

/** Whether the MFA policy (config `mfa`) names this person: then they must keep a factor. */
export async function policyRequiresFactor(m: Manage, account: ScimUser): Promise<boolean> {
  return needsSecondFactor(m.config.mfa, account, await m.deps.users.effectiveRoles(account.id));
}

/** The person as the audit trail names them: the account, their FHIR user, and the browser's address. */
export function actorOf(ctx: Context & { state: ManageState }): UserInfo {
  const { session, user } = ctx.state;
  return {
    accountId: session!.sub,
    ...(user?.fhirUser ? { fhirUser: user.fhirUser } : {}),
    ...(user?.displayName ? { name: user.displayName } : {}),
    ...(ctx.ip ? { ip: ctx.ip } : {}),
  };
}

export async function renderSecurity(m: Manage, ctx: Context & { state: ManageState }, view: SecurityView = {}): Promise<void> {
  const { session, user } = ctx.state;
  const account = await accountOf(m, ctx.state);
  const [snapshot, required] = await Promise.all([m.deps.factors.snapshot(account.id), policyRequiresFactor(m, account)]);
  ctx.status = view.status ?? 200;
  ctx.type = 'html';
  ctx.body = await renderView('account-security', {
    title: SECURITY_TITLE,
    userName: user?.displayName ?? '',
    csrf: m.sessions.csrfToken(session!),
    factors: snapshot.factors.map(rowOf),
    recoveryCodesLeft: snapshot.recoveryCodesLeft,
    required,
    notice: view.notice ?? '',
    error: view.error ?? '',
    codes: view.codes ?? [],
  });
}

/** GET /manage/security. */
export function showSecurity(m: Manage): Step {
  return async function showSecurity(ctx) {
    await renderSecurity(m, ctx);
  };
}
