import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import * as client from 'openid-client';
import { PageError } from '../../../platform/http/error-page.js';
import type { FederationRefusal } from '../../../records/audit/events/federation-events.js';
import { checkCsrf, interactionFor, refuseCrossSite, requirePrompt, type Interaction } from '../pages/interaction-http.js';
import { renderLogin, type LoginPageDeps } from '../login/login-page.js';
import { linkedEvents, refusedEvent, type SignInContext } from './federation-audit.js';
import type { AfterFirstFactor } from '../login/first-factor.js';
import type { UpstreamLinker } from './linking.js';
import { federatedHref } from './paths.js';
import type { CallbackOutcome, FederationStates, StartedSignIn } from './sign-in-state.js';
import { upstreamIdentityOf, upstreamMfa } from './upstream-identity.js';
import { isUnreachable, type UpstreamProvider } from './upstream-provider.js';

/**
 * Federated sign-in over OpenID Connect (the URLs: paths.ts). A trip upstream is the
 * authorization code flow with PKCE S256, `state` and `nonce` kept server-side for one use
 * (sign-in-state.ts); openid-client verifies the answer (state, issuer, the ID token's signature,
 * audience, expiry and nonce). The verified identity is handed to the interaction page, which is
 * where the browser proves, by its interaction cookie, that it is the one that started the trip;
 * only then is the identity linked to a directory user (linking.ts) and the sign-in handed on.
 * Every outcome is recorded in the audit trail before its page or redirect is sent.
 */

export interface FederationDeps {
  providers: ReadonlyMap<string, UpstreamProvider>;
  states: FederationStates;
  linker: UpstreamLinker;
  /** What follows a first factor (the second-factor step, or finishing the sign-in). */
  afterFirstFactor: AfterFirstFactor;
  logger?: Logger;
}

const EXPIRED_RESPONSE = 'This sign-in response has expired or was already used. Start again from the app.';
const CANNOT_SIGN_IN = (name: string) =>
  `Your ${name} account cannot be used to sign in here. If you think it should, contact your administrator.`;

function unreachable(upstream: UpstreamProvider): PageError {
  return new PageError(
    502,
    'upstream_unreachable',
    `The identity provider (${upstream.displayName}) could not be reached. Try again in a few minutes; if it keeps happening, tell your administrator.`,
  );
}

function providerOf(deps: FederationDeps, ctx: Context): UpstreamProvider {
  const upstream = deps.providers.get(String(ctx.params.provider));
  if (!upstream) throw new PageError(404, 'not_found', 'This server has no such identity provider.');
  return upstream;
}

const clientIdOf = (interaction: Interaction) =>
  typeof interaction.params.client_id === 'string' ? interaction.params.client_id : undefined;

/** The app's `max_age`, when it sent one that is a whole number of seconds. */
function maxAgeOf(interaction: Interaction): number | undefined {
  const raw = interaction.params.max_age;
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
  return value !== undefined && Number.isSafeInteger(value) ? value : undefined;
}

/** A query parameter given once, or undefined (absent, repeated or empty). */
function single(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  return typeof value === 'string' && value ? value : undefined;
}

export function federationRoutes(router: Router, deps: FederationDeps, page: LoginPageDeps): void {
  const audit = (events: Parameters<LoginPageDeps['audit']['record']>[0][]) =>
    events.reduce((done, event) => done.then(() => page.audit.record(event)), Promise.resolve());
  const at = (ctx: Context, clientId: string | undefined): SignInContext => ({
    issuer: page.issuer,
    ip: ctx.ip,
    ...(clientId ? { clientId } : {}),
  });
  const log = (ctx: Context, upstream: UpstreamProvider, reason: FederationRefusal, err?: unknown) =>
    deps.logger?.warn(
      {
        event: 'federation.refused',
        provider: upstream.id,
        reason,
        requestId: ctx.state.requestId as string | undefined,
        // Only the message: openid-client's causes may hold the upstream's claims.
        ...(err ? { err: { message: (err as Error).message, code: (err as { code?: string }).code } } : {}),
      },
      'federated sign-in refused',
    );

  /** The sign-in page's button: a trip to the upstream's authorization endpoint. */
  router.get('/interaction/:uid/federate/:provider', async (ctx) => {
    refuseCrossSite(ctx);
    const interaction = await interactionFor(page.provider, ctx);
    checkCsrf(page.csrf, interaction.uid, new URLSearchParams(ctx.querystring));
    requirePrompt(interaction, 'login');
    const upstream = providerOf(deps, ctx);
    const clientId = clientIdOf(interaction);
    let config: client.Configuration;
    try {
      config = await upstream.configuration();
    } catch (err) {
      log(ctx, upstream, 'upstream_unreachable', err);
      await audit([refusedEvent(at(ctx, clientId), upstream.settings, 'upstream_unreachable')]);
      throw unreachable(upstream);
    }
    const maxAge = maxAgeOf(interaction);
    const { state, nonce, verifier } = await deps.states.start({
      uid: interaction.uid,
      provider: upstream.id,
      ...(clientId ? { clientId } : {}),
      ...(maxAge !== undefined ? { maxAge } : {}),
    });
    const prompt = String(interaction.params.prompt ?? '').split(' ');
    const hint = interaction.params.login_hint;
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: upstream.redirectUri,
      scope: upstream.settings.scopes.join(' '),
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      // What the app asked of the sign-in applies upstream too, or the upstream's single sign-on
      // would answer with an older sign-in than the app accepts.
      ...(maxAge !== undefined ? { max_age: String(maxAge) } : {}),
      ...(prompt.includes('login') ? { prompt: 'login' } : {}),
      ...(typeof hint === 'string' && hint.length <= 256 ? { login_hint: hint } : {}),
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  });

  /** The upstream's answer: verified here, handed to the interaction page. */
  router.get('/federation/:provider/callback', async (ctx) => {
    const upstream = providerOf(deps, ctx);
    const state = single(ctx, 'state');
    const started = state ? await deps.states.take(state) : undefined;
    if (!started || started.provider !== upstream.id) {
      log(ctx, upstream, 'bad_state');
      await audit([refusedEvent(at(ctx, started?.clientId), upstream.settings, 'bad_state')]);
      throw new PageError(400, 'invalid_request', EXPIRED_RESPONSE);
    }
    const outcome = await verify(ctx, upstream, started, state!);
    if (outcome.kind === 'failed') {
      log(ctx, upstream, outcome.reason);
      await audit([
        refusedEvent(at(ctx, started.clientId), upstream.settings, outcome.reason, {
          ...(outcome.upstreamError ? { upstreamError: outcome.upstreamError } : {}),
        }),
      ]);
    }
    const handOver = await deps.states.handOver({
      uid: started.uid,
      provider: upstream.id,
      ...(started.clientId ? { clientId: started.clientId } : {}),
      ...outcome,
    });
    ctx.status = 303;
    ctx.redirect(federatedHref(started.uid, handOver));
  });

  /** The upstream's authorization response and the code exchange, checked by openid-client. */
  async function verify(ctx: Context, upstream: UpstreamProvider, started: StartedSignIn, state: string): Promise<CallbackOutcome> {
    const error = single(ctx, 'error');
    if (error) return { kind: 'failed', reason: 'upstream_error', upstreamError: /^[\w.-]{1,64}$/.test(error) ? error : 'invalid' };
    let config: client.Configuration;
    try {
      config = await upstream.configuration();
    } catch (err) {
      log(ctx, upstream, 'upstream_unreachable', err);
      await audit([refusedEvent(at(ctx, started.clientId), upstream.settings, 'upstream_unreachable')]);
      throw unreachable(upstream);
    }
    const current = new URL(upstream.redirectUri);
    current.search = ctx.querystring;
    try {
      const tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: started.verifier,
        expectedState: state,
        expectedNonce: started.nonce,
        ...(started.maxAge !== undefined ? { maxAge: started.maxAge } : {}),
      });
      const claims = tokens.claims();
      if (!claims) return { kind: 'failed', reason: 'invalid_response' };
      return { kind: 'verified', identity: upstreamIdentityOf(upstream.settings, claims) };
    } catch (err) {
      // The metadata may be stale (moved endpoints, rotated keys the cache missed): read it again next time.
      upstream.forget();
      if (isUnreachable(err)) {
        log(ctx, upstream, 'upstream_unreachable', err);
        await audit([refusedEvent(at(ctx, started.clientId), upstream.settings, 'upstream_unreachable')]);
        throw unreachable(upstream);
      }
      log(ctx, upstream, 'invalid_response', err);
      return { kind: 'failed', reason: 'invalid_response' };
    }
  }

  /** Back on the interaction: the browser's interaction cookie must name the one the trip was for. */
  router.get('/interaction/:uid/federated', async (ctx) => {
    const result = await deps.states.takeHandOver(single(ctx, 'result') ?? '');
    const upstream = result ? deps.providers.get(result.provider) : undefined;
    const refuseStale = async (clientId: string | undefined) => {
      if (upstream) log(ctx, upstream, 'bad_state');
      await audit([refusedEvent(at(ctx, clientId), upstream?.settings, 'bad_state')]);
      return new PageError(400, 'invalid_request', EXPIRED_RESPONSE);
    };
    let interaction: Interaction;
    try {
      interaction = await interactionFor(page.provider, ctx);
    } catch (err) {
      // Another browser than the one that started the trip (no interaction cookie): a sign-in
      // forced on someone else's browser ends here.
      if (err instanceof PageError) throw await refuseStale(result?.clientId);
      throw err;
    }
    const clientId = clientIdOf(interaction);
    if (!result || !upstream || result.uid !== interaction.uid) throw await refuseStale(clientId);
    requirePrompt(interaction, 'login');
    if (result.kind === 'failed') {
      const message =
        result.reason === 'upstream_error'
          ? result.upstreamError === 'access_denied'
            ? `Sign-in with ${upstream.displayName} was cancelled or not allowed.`
            : `Sign-in with ${upstream.displayName} did not complete (${result.upstreamError ?? 'error'}).`
          : `The answer from ${upstream.displayName} could not be verified, so you were not signed in.`;
      await renderLogin(ctx, page, interaction, { status: 400, error: `${message} Try again, or choose another way to sign in.` });
      return;
    }

    const identity = result.identity;
    const linked = await deps.linker.link(upstream.settings, identity);
    if (!linked.ok) {
      log(ctx, upstream, linked.reason);
      await audit([
        refusedEvent(at(ctx, clientId), upstream.settings, linked.reason, { identity, ...(linked.user ? { user: linked.user } : {}) }),
      ]);
      await renderLogin(ctx, page, interaction, { status: 403, error: CANNOT_SIGN_IN(upstream.displayName) });
      return;
    }
    await audit(linkedEvents(at(ctx, clientId), upstream.settings, identity, linked));
    deps.logger?.info(
      { event: 'federation.success', provider: upstream.id, userId: linked.user.id, requestId: ctx.state.requestId as string | undefined },
      'signed in through an identity provider',
    );
    await deps.afterFirstFactor(ctx, interaction, {
      accountId: linked.user.id,
      amr: identity.amr,
      ...(identity.acr !== undefined ? { acr: identity.acr } : {}),
      authTime: identity.authTime ?? Math.floor(Date.now() / 1000),
      via: { provider: upstream.id },
      upstreamMfa: upstreamMfa(upstream.settings, identity),
    });
  });
}
