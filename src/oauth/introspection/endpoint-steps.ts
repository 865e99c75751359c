import type { Middleware } from 'koa';
import { readForm, type BodyRules, type FormProblem } from '../../platform/http/body.js';
import { OAuthError, challenge } from '../../platform/http/oauth-error.js';
import { CallerAuthError, type ClientRecord } from './caller-auth.js';
import type { FoundToken, TokenLookup } from './token-lookup.js';

/**
 * The steps introspection (introspect.ts) and revocation (revoke.ts) share. Each endpoint is an
 * array of small named steps, Koa middleware run in order, like oidc-provider's own endpoints
 * (lib/actions/*.js); what a step finds out it keeps in `ctx.state` for the steps after it.
 */

/** What the shared steps find out, in the order they run. */
export interface TokenRequest {
  /** The route's name in metrics and logs (platform/http/request-context.ts). */
  routeLabel: string;
  /** readTokenForm */
  form: URLSearchParams;
  /** the endpoint's own authentication step */
  caller: ClientRecord;
  /** requireToken: the `token` parameter */
  value: string;
  /** findToken: undefined when the value names no token this server knows */
  token: FoundToken | undefined;
}

export type Step<S = TokenRequest> = Middleware<S>;

const FORM_LIMIT = 16 * 1024;

/** The Basic challenge of a failed client authentication, at both endpoints. */
export const INVALID_CLIENT_CHALLENGE = challenge('Basic', { realm: 'introspection', error: 'invalid_client' });

/**
 * The one place these endpoints turn a failed client authentication into their wire error: 401
 * invalid_client naming the rule that failed (RFC 6749 §5.2).
 */
export function clientAuthFailure(err: unknown): OAuthError | undefined {
  if (!(err instanceof CallerAuthError)) return undefined;
  return new OAuthError(401, 'invalid_client', `client authentication failed: ${err.problem}`, INVALID_CLIENT_CHALLENGE);
}

const TOKEN_FORM: BodyRules<FormProblem> = {
  types: ['application/x-www-form-urlencoded'],
  limit: FORM_LIMIT,
  refuse: (problem) => {
    switch (problem.kind) {
      case 'missing':
      case 'media-type':
        return new OAuthError(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
      case 'too-large':
        return new OAuthError(413, 'invalid_request', 'the request body is too large');
      case 'repeated':
        return new OAuthError(400, 'invalid_request', `parameter ${problem.name} must not be repeated`);
    }
  },
};

/** The form body: small, urlencoded, each parameter once. */
export const readTokenForm: Step = async function readTokenForm(ctx, next) {
  ctx.state.form = await readForm(ctx, TOKEN_FORM);
  await next();
};

export const requireToken: Step = async function requireToken(ctx, next) {
  const value = ctx.state.form.get('token');
  if (!value) throw new OAuthError(400, 'invalid_request', 'token is required');
  ctx.state.value = value;
  await next();
};

/** `token_type_hint` only orders the lookup; the token is found whatever it says. */
export function findToken(lookup: Pick<TokenLookup, 'find'>): Step {
  return async function findToken(ctx, next) {
    ctx.state.token = await lookup.find(ctx.state.value, ctx.state.form.get('token_type_hint'));
    await next();
  };
}
