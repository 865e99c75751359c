import type { Context, Next } from 'koa';

/**
 * OAuth's error wire format: `{ "error", "error_description" }` JSON (RFC 6749 §5.2, RFC 7662
 * §2.3, RFC 7009 §2.2.1), with a `WWW-Authenticate` challenge where the caller must authenticate
 * (RFC 6750 §3, RFC 7235 §4.1). The endpoints this server serves itself (introspection,
 * revocation, userinfo, the launch API, /metrics, discovery, registration's body reading) throw an
 * `OAuthError` and render it here; so does the generic boundary (errors.ts) for programs.
 *
 * oidc-provider's own endpoints (/token, /authorize, /register, /session/end, …) throw its own
 * errors (`errors.InvalidClient` and the like: `statusCode`, `error`, `error_description`, plus an
 * `error_detail` kept for the log and the audit trail) and render them in its error handler: this
 * same JSON for programs, with the challenges it sets itself; for a browser, `renderError` in
 * app/provider-configuration.ts (an error page, or 503 when the store is down). Ours only reword
 * them: oauth/backend/client-auth-errors.ts puts `invalid_client`'s reason into its description.
 * They are left that way: oidc-provider's conformance depends on its own answers.
 */
export class OAuthError extends Error {
  override name = 'OAuthError';

  constructor(
    readonly status: number,
    /** The RFC 6749 / 6750 error code (`invalid_request`, `invalid_client`, `invalid_token`, …). */
    readonly error: string,
    /** Safe to show the caller: it names the rule, never a secret. */
    readonly description: string,
    /** A `WWW-Authenticate` value (see `challenge`), for 401s and bearer-token refusals. */
    readonly challenge?: string,
  ) {
    super(description);
  }
}

/** The fields the JSON carries: an OAuthError, or the generic boundary's PageError. */
export interface OAuthErrorFields {
  status: number;
  error: string;
  description: string;
  challenge?: string | undefined;
}

/** Answers an OAuth error. Never cached: it may describe a credential. */
export function sendOAuthError(ctx: Context, err: OAuthErrorFields): void {
  ctx.status = err.status;
  ctx.set('Cache-Control', 'no-store');
  if (err.challenge) ctx.set('WWW-Authenticate', err.challenge);
  ctx.body = { error: err.error, error_description: err.description };
}

/**
 * A `WWW-Authenticate` challenge, `Bearer realm="x", error="invalid_token"`: the parameters in the
 * order given, each a quoted string (RFC 7235 §2.1).
 */
export function challenge(scheme: 'Basic' | 'Bearer', params: Readonly<Record<string, string>> = {}): string {
  const quoted = Object.entries(params).map(([name, value]) => `${name}="${value.replace(/[\\"]/g, '\\$&')}"`);
  return quoted.length ? `${scheme} ${quoted.join(', ')}` : scheme;
}

/**
 * The error step of an OAuth JSON endpoint: an OAuthError thrown by a later step is answered as
 * such, and so is an error `translate` knows (the one place an endpoint turns its own errors, e.g.
 * a failed client authentication, into OAuth errors). Anything else goes on to the generic boundary
 * (a logged 500, or 503 when the store is down).
 */
export function oauthErrors(translate: (err: unknown) => OAuthError | undefined = () => undefined) {
  return async function answerOAuthErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const problem = err instanceof OAuthError ? err : translate(err);
      if (!problem) throw err;
      sendOAuthError(ctx, problem);
    }
  };
}
