import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { decodeJwt } from 'jose';
import { requestState } from '../../platform/http/request-state.js';

declare module '../../platform/http/request-state.js' {
  interface RequestState {
    /** Why client authentication failed, reworded for the client and the audit trail (oidc-provider says only invalid_client). */
    clientAuthProblem?: string;
  }
}

const AUTH_ERROR_EVENTS = ['grant.error', 'introspection.error', 'revocation.error'] as const;

/** oidc-provider's terse details, reworded to name the rule that failed. */
function reword(detail: string, allowedAlgs: readonly string[], claims: Record<string, unknown> | undefined): string {
  // oidc-provider finds the client by the assertion's `sub`; when iss and sub disagree the
  // honest rule to name is that one, not "client not found".
  if (detail === 'client not found' && claims && claims.iss !== claims.sub) return 'sub must equal iss (the client_id)';
  if (detail === 'alg mismatch') return `the signing algorithm is not allowed (allowed: ${allowedAlgs.join(', ')})`;
  if (/no matching key|no applicable key|JWKSNoMatchingKey/i.test(detail))
    return "no key in the client's registered key set matches the assertion (kid/alg)";
  if (/signature verification failed|invalid signature/i.test(detail)) return 'the client assertion signature is invalid';
  if (/client authentication must only be provided using one mechanism/.test(detail)) return detail;
  return detail;
}

function assertionClaims(ctx: Context): Record<string, unknown> | undefined {
  const assertion = (ctx as Context & { oidc?: { params?: { client_assertion?: unknown } } }).oidc?.params?.client_assertion;
  if (typeof assertion !== 'string') return undefined;
  try {
    return decodeJwt(assertion);
  } catch {
    return undefined;
  }
}

function detailOf(err: unknown): string | undefined {
  const e = err as { error_detail?: unknown; cause?: { message?: unknown } };
  if (typeof e.error_detail === 'string' && e.error_detail) return e.error_detail;
  if (typeof e.cause?.message === 'string') return e.cause.message;
  return undefined;
}

/**
 * RFC 6749 lets `invalid_client` say why; oidc-provider keeps the reason in `error_detail` and
 * answers a generic "client authentication failed". Clients debugging their assertions need the
 * rule that failed, so it goes into `error_description`. Details never contain key material.
 */
export function exposeClientAuthProblems(provider: Provider, allowedAlgs: readonly string[]) {
  // The event names exist at runtime; the type definitions list only some of them.
  const on = provider.on.bind(provider) as (event: string, listener: (ctx: Context, err: unknown) => void) => unknown;
  for (const event of AUTH_ERROR_EVENTS) {
    on(event, (ctx, err) => {
      if ((err as { error?: string }).error !== 'invalid_client') return;
      const detail = detailOf(err);
      if (detail) requestState(ctx).clientAuthProblem = reword(detail, allowedAlgs, assertionClaims(ctx));
    });
  }
  return async function clientAuthProblems(ctx: Context, next: Next): Promise<void> {
    await next();
    const body = ctx.body as { error?: string; error_description?: string } | undefined;
    const problem = requestState(ctx).clientAuthProblem;
    if (problem && body?.error === 'invalid_client') body.error_description = `client authentication failed: ${problem}`;
  };
}
