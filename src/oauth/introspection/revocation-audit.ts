import type { AuditEvent } from '../../records/audit/audit-event.js';
import type { TokenName } from '../../records/audit/events/agents.js';
import { tokenRevoked } from '../../records/audit/events/token-events.js';
import type { FoundToken } from './token-lookup.js';

/**
 * Revocation events, built only from what the handler already holds (the caller, the token it
 * found). Introspection, the hot path, is recorded as a compact record (forms/introspection.ts)
 * straight from the same facts. Tokens are named by jti (JWT) or by a SHA-256 of the value (opaque:
 * the value is the id).
 */

function nameOf(token: FoundToken): TokenName {
  return token.format === 'jwt' ? { jti: token.id } : { opaqueValue: token.id };
}

function presentedName(value: string | null | undefined): TokenName | undefined {
  return value ? { opaqueValue: value } : undefined;
}

export function revocationEvent(
  issuer: string,
  input: {
    callerId?: string;
    ip: string;
    token?: FoundToken;
    value?: string | null;
    grantRevoked?: boolean;
    error?: { error: string; description?: string; status: number };
  },
): AuditEvent {
  const t = input.token;
  const presented = t ? undefined : presentedName(input.value);
  return tokenRevoked(
    { issuer },
    {
      ...(input.callerId ? { caller: { clientId: input.callerId, ip: input.ip } } : { ip: input.ip }),
      ...(t
        ? {
            token: {
              name: nameOf(t),
              kind: t.kind,
              clientId: t.clientId,
              ...(t.grantId ? { grantId: t.grantId } : {}),
              ...(t.accountId ? { accountId: t.accountId } : {}),
            },
          }
        : {}),
      ...(presented ? { presented } : {}),
      ...(input.grantRevoked ? { grantRevoked: true } : {}),
      ...(input.error ? { error: input.error } : {}),
    },
  );
}
