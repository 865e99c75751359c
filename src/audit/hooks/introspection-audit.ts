import type { AuditEvent } from '../audit-event.js';
import { introspectionRecord, type IntrospectionFacts, type IntrospectionRecord } from '../forms/introspection.js';
import type { TokenName } from '../events/agents.js';
import { tokenRevoked } from '../events/token-events.js';
import type { FoundToken } from '../../introspection/token-lookup.js';

/**
 * Introspection and revocation events, built only from what the handler already holds (the caller,
 * the token it found): introspection is the hot path, so no extra reads, and it is recorded in its
 * compact form. Tokens are named by jti (JWT) or by a SHA-256 of the value (opaque: the value is
 * the id).
 */

function nameOf(token: FoundToken): TokenName {
  return token.format === 'jwt' ? { jti: token.id } : { opaqueValue: token.id };
}

function presentedName(value: string | null | undefined): TokenName | undefined {
  return value ? { opaqueValue: value } : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

/**
 * The compact record of one introspection (forms/introspection.ts): the trail stores it as is and
 * renders the AuditEvent when it is read.
 */
export function introspectionAuditRecord(issuer: string, input: { callerId: string; ip: string; token: FoundToken | undefined; active: boolean; value: string }): IntrospectionRecord {
  const t = input.token;
  const facts: IntrospectionFacts = { callerId: input.callerId, ip: input.ip, active: input.active, value: input.value };
  if (t) {
    facts.token = { format: t.format, id: t.id, kind: t.kind, clientId: t.clientId, accountId: t.accountId, fhirUser: text(t.extra.fhirUser), patient: text(t.extra.patient), scope: t.scope, grantId: t.grantId };
  }
  return introspectionRecord(issuer, facts);
}

export function revocationEvent(
  issuer: string,
  input: { callerId?: string; ip: string; token?: FoundToken; value?: string | null; grantRevoked?: boolean; error?: { error: string; description?: string; status: number } },
): AuditEvent {
  const t = input.token;
  const presented = t ? undefined : presentedName(input.value);
  return tokenRevoked(
    { issuer },
    {
      ...(input.callerId ? { caller: { clientId: input.callerId, ip: input.ip } } : { ip: input.ip }),
      ...(t ? { token: { name: nameOf(t), kind: t.kind, clientId: t.clientId, ...(t.grantId ? { grantId: t.grantId } : {}), ...(t.accountId ? { accountId: t.accountId } : {}) } } : {}),
      ...(presented ? { presented } : {}),
      ...(input.grantRevoked ? { grantRevoked: true } : {}),
      ...(input.error ? { error: input.error } : {}),
    },
  );
}
