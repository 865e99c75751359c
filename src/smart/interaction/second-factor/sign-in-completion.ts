import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { AMR, levelOfAmr, withSecondFactor } from '../../../domain/authn/assurance.js';
import { PageError } from '../../../platform/http/error-page.js';
import type { UserStore } from '../../../records/directory/user-store.js';
import type { SecondFactors } from '../../../records/directory/factors/second-factors.js';
import type { LockState } from '../../../records/directory/lockout.js';
import type { AfterFirstFactor } from '../login/first-factor.js';
import type { SignInProgress, SignInProgressStore } from '../login/sign-in-progress.js';
import { finish, type Interaction } from '../pages/interaction-http.js';
import { acrFor, assuranceNeed, isMet } from './assurance-need.js';
import type { MfaPolicy } from './mfa-policy.js';
import { isStepUpOnly } from './step-up-check.js';

export interface SignInCompletionDeps {
  provider: Provider;
  users: Pick<UserStore, 'get' | 'effectiveRoles'>;
  factors: Pick<SecondFactors, 'hasAny'>;
  /** A completed sign-in ends the account's count of wrong passwords and codes. */
  lockout: Pick<LockState, 'clear'>;
  progress: SignInProgressStore;
  policy: MfaPolicy;
  /** mfa.breakTheGlassFreshSeconds */
  freshSeconds: number;
}

const epochNow = () => Math.floor(Date.now() / 1000);

/** The account a sign-in is for, if it may still sign in (a person disabled meanwhile is refused), and what decides its need. */
async function activeUser(deps: Pick<SignInCompletionDeps, 'users' | 'factors'>, accountId: string) {
  const [user, roles, enrolled] = await Promise.all([
    deps.users.get(accountId),
    deps.users.effectiveRoles(accountId),
    deps.factors.hasAny(accountId),
  ]);
  if (!user?.active) {
    throw new PageError(403, 'access_denied', 'This account cannot sign in. Contact your administrator if you think this is wrong.');
  }
  return { user, roles, enrolled };
}

/**
 * Where every sign-in ends: after its first factor, either it is complete (handed to oidc-provider
 * as the login result, with `amr`, `acr` and `auth_time`) or a second factor is needed and the
 * sign-in waits for it in a SignInProgress, which only a verified factor completes.
 */
export class SignInCompletion {
  constructor(private readonly deps: SignInCompletionDeps) {}

  /** Password and federated sign-ins hand over here (login/first-factor.ts). */
  readonly afterFirstFactor: AfterFirstFactor = async (ctx, interaction, factor) => {
    const { user, roles, enrolled } = await activeUser(this.deps, factor.accountId);
    const need = assuranceNeed({ policy: this.deps.policy, user, roles, enrolled, params: interaction.params });
    const now = epochNow();
    const authTime = factor.authTime ?? now;
    // An upstream provider's multi-factor counts when its configuration trusts it (`mfa` in amr, or a listed acr).
    const amr = factor.upstreamMfa && !factor.amr.includes(AMR.multiFactor) ? [...factor.amr, AMR.multiFactor] : factor.amr;
    if (!need || isMet(need, { amr, authTime }, now, this.deps.freshSeconds)) {
      await this.login(ctx, interaction, { accountId: factor.accountId, amr, authTime });
      return;
    }
    await this.deps.progress.save(interaction.uid, {
      accountId: factor.accountId,
      amr: factor.amr,
      authTime,
      ...(factor.acr ? { upstreamAcr: factor.acr } : {}),
      ...(factor.via ? { via: factor.via } : {}),
      level: need.level,
      reasons: need.reasons,
    });
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
  };

  /**
   * A session that only needs a stronger or fresher factor (step-up-check.ts) goes on as a sign-in
   * in progress whose first factor is the session itself; undefined when the prompt wants more
   * than that (no session, max_age, prompt=login): then the whole sign-in is asked for.
   */
  async stepUp(interaction: Interaction): Promise<SignInProgress | undefined> {
    const accountId = interaction.session?.accountId;
    if (!accountId || !isStepUpOnly(interaction.prompt.reasons)) return undefined;
    let signedIn: Awaited<ReturnType<typeof activeUser>>;
    try {
      signedIn = await activeUser(this.deps, accountId);
    } catch {
      return undefined; // disabled meanwhile: the whole sign-in is asked for, and refused there
    }
    const { user, roles, enrolled } = signedIn;
    // An essential acr the session does not state exactly is met by a second factor at its level.
    const need = assuranceNeed({ policy: this.deps.policy, user, roles, enrolled, params: interaction.params }) ?? {
      level: 2,
      reasons: ['acr_values'],
    };
    const progress: SignInProgress = {
      accountId,
      amr: [...(interaction.session?.amr ?? [])],
      authTime: epochNow(),
      level: need.level,
      reasons: need.reasons,
      stepUp: true,
    };
    await this.deps.progress.save(interaction.uid, progress);
    return progress;
  }

  /** The second factor is verified (its methods in `secondAmr`): the sign-in completes, once. */
  async complete(ctx: Context, interaction: Interaction, secondAmr: readonly string[]): Promise<void> {
    const progress = await this.deps.progress.take(interaction.uid);
    if (!progress) throw new PageError(400, 'invalid_request', 'This sign-in was already completed. Return to the app and start again.');
    await activeUser(this.deps, progress.accountId);
    await this.login(ctx, interaction, {
      accountId: progress.accountId,
      amr: withSecondFactor(progress.amr, secondAmr),
      authTime: epochNow(),
    });
  }

  private async login(
    ctx: Context,
    interaction: Interaction,
    signIn: { accountId: string; amr: string[]; authTime: number },
  ): Promise<void> {
    const acr = acrFor(levelOfAmr(signIn.amr), interaction.params);
    await this.deps.lockout.clear(signIn.accountId);
    await finish(
      ctx,
      this.deps.provider,
      // An upstream provider that said nothing of how (no `amr`) leaves id_tokens without one, not with [].
      {
        login: {
          accountId: signIn.accountId,
          ...(signIn.amr.length ? { amr: signIn.amr } : {}),
          acr,
          ts: signIn.authTime,
          remember: false,
        },
      },
      { merge: false },
    );
  }
}
