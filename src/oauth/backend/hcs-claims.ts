import { errors } from 'oidc-provider';
import type { Logger } from 'pino';
import { B2bInputError, b2bAssertionOf } from '../../domain/hcs/b2b.js';
import { tokenExtensions } from '../../domain/hcs/claims.js';
import { clientHcsFacts, type ClientHcsMetadata } from '../../domain/hcs/client-facts.js';
import { HcsRefusal, decideForBackend, type B2bAssertion } from '../../domain/hcs/decision.js';
import type { HcsPolicy } from '../../domain/hcs/policy.js';
import type { Metrics } from '../../platform/ops/metrics.js';
import { requestState } from '../../platform/http/request-state.js';

declare module '../../platform/http/request-state.js' {
  interface RequestState {
    /**
     * Backend services assert their context in the client assertion (UDAP `hl7-b2b`); oidc-provider
     * hands the verified claims to the assertion hook (`rememberB2bAssertion`) and later mints the
     * token in the same request (`backendHcsClaims`), so the parsed assertion waits here in between.
     */
    b2bAssertion?: B2bAssertion;
  }
}

type Ctx = { oidc?: { route?: string; params?: Record<string, unknown>; client?: unknown } };

/** Called by the client-assertion hook once the assertion is verified. Refuses a malformed hl7-b2b. */
export function rememberB2bAssertion(ctx: Ctx, claims: Record<string, unknown>): void {
  if (ctx.oidc?.route !== 'token') return;
  let b2b: B2bAssertion | undefined;
  try {
    b2b = b2bAssertionOf(claims);
  } catch (err) {
    if (err instanceof B2bInputError) throw new errors.InvalidRequest(err.message);
    throw err;
  }
  if (!b2b) return;
  if (ctx.oidc.params?.grant_type !== 'client_credentials') {
    throw new errors.InvalidRequest('hl7-b2b authorization context applies to client_credentials requests only');
  }
  requestState(ctx).b2bAssertion = b2b;
}

/**
 * `extraTokenClaims` for client-credentials tokens issued by the token endpoint: the HCS decision
 * as `extensions`. A purpose the client may not assert refuses the request (invalid_request).
 */
export function backendHcsClaims(policy: HcsPolicy, logger?: Logger, metrics?: Pick<Metrics, 'hcsFindings'>) {
  return (ctx: unknown): Record<string, unknown> | undefined => {
    const c = ctx as Ctx | undefined;
    const client = c?.oidc?.client as ClientHcsMetadata | undefined;
    // Tokens this server mints for itself in-process (no token request) carry no HCS context.
    if (c?.oidc?.route !== 'token' || !client) return undefined;
    const b2b = requestState(c).b2bAssertion;
    try {
      const decision = decideForBackend(policy, { client: clientHcsFacts(client), ...(b2b ? { b2b } : {}) });
      if (decision.findings.length) {
        logger?.warn({ clientId: client.clientId, findings: decision.findings }, 'HCS policy findings (audit-only)');
        for (const f of decision.findings) metrics?.hcsFindings.inc({ check: f.check });
      }
      return { extensions: tokenExtensions(decision.grant) };
    } catch (err) {
      if (err instanceof HcsRefusal) throw new errors.InvalidRequest(err.message);
      throw err;
    }
  };
}
