import type { AuditEvent } from '../audit-event.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  consentEntity,
  patientEntity,
  securityObject,
  tokenEntity,
  userAgents,
  type AuditScope,
  type ClientInfo,
  type Entity,
  type TokenName,
  type UserInfo,
} from './agents.js';
import { EVENT_TYPES, LOCAL_PROFILES, OBJECT_ROLES, STANDARD_SUBTYPES, local, type Outcome } from './vocabulary.js';

/** Identifier system of grant ids (not secrets: a grant id alone gives no access). */
export function grantIdSystem(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/grants`;
}

export interface IssuedToken {
  name: TokenName;
  /** AccessToken, ClientCredentials, RefreshToken. */
  kind: string;
  format?: 'opaque' | 'jwt';
  scope?: string;
  expiresIn?: number;
  audience?: string | string[];
}

export interface TokenIssuedInput {
  client: ClientInfo;
  grantType: string;
  user?: UserInfo;
  patient?: string;
  encounter?: string;
  consentId?: string;
  grantId?: string;
  accessToken?: IssuedToken;
  refreshToken?: IssuedToken;
  idTokenIssued?: boolean;
}

function grantEntity(scope: AuditScope, grantId: string | undefined): Entity[] {
  return grantId
    ? [securityObject({ system: grantIdSystem(scope.issuer), value: grantId }, OBJECT_ROLES.securityResource, { kind: 'Grant' })]
    : [];
}

function tokenEntities(input: { accessToken?: IssuedToken; refreshToken?: IssuedToken; grantType: string; clientId: string }): Entity[] {
  const out: Entity[] = [];
  for (const t of [input.accessToken, input.refreshToken]) {
    if (!t) continue;
    const audience = Array.isArray(t.audience) ? t.audience.join(' ') : t.audience;
    out.push(
      tokenEntity(t.name, {
        token_kind: t.kind,
        token_format: t.format,
        grant_type: input.grantType,
        client_id: input.clientId,
        scope: t.scope,
        aud: audience,
        expires_in: t.expiresIn,
      }),
    );
  }
  return out;
}

/**
 * A token response (IHE ITI-71 Get Access Token), for every grant type. A refresh gets the extra
 * subtype `token-refreshed`, everything else `token-issued`. The patient in context makes it a
 * disclosure of that patient's data to the client.
 */
export function tokenIssued(scope: AuditScope, input: TokenIssuedInput): AuditEvent {
  const refreshed = input.grantType === 'refresh_token';
  return auditEvent(scope, {
    profile: LOCAL_PROFILES.tokenEvent,
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.getAccessToken, local(refreshed ? 'token-refreshed' : 'token-issued')],
    action: 'E',
    outcome: '0',
    purposeOfEvent: input.user?.purposeOfUse,
    agents: [clientAgent(scope, input.client, !input.user), authServerAgent(scope), ...userAgents(scope, input.user, true)],
    entities: [
      ...(input.patient ? [patientEntity(input.patient)] : []),
      ...tokenEntities({ ...input, clientId: input.client.clientId }),
      ...(input.consentId ? [consentEntity(input.consentId)] : []),
      ...grantEntity(scope, input.grantId),
    ],
  });
}

export interface TokenRefusedInput {
  /** The client as identified (authenticated or only claimed): absent when none was named. */
  client?: ClientInfo;
  /** The network address of the request when no client is known. */
  ip?: string;
  grantType?: string;
  error: string;
  /** The reason (oidc-provider's error_detail, or the response's error_description). */
  reason?: string;
  status: number;
  user?: UserInfo;
  patient?: string;
  grantId?: string;
}

function requestorAgents(scope: AuditScope, client: ClientInfo | undefined, ip: string | undefined) {
  return client ? [clientAgent(scope, client, true)] : [clientAgent(scope, { clientId: 'unidentified', ...(ip ? { ip } : {}) }, true)];
}

/** A refused token request, with the OAuth error and the reason. Client errors are outcome 4. */
export function tokenRefused(scope: AuditScope, input: TokenRefusedInput): AuditEvent {
  const outcome: Outcome = input.status >= 500 ? '8' : '4';
  return auditEvent(scope, {
    profile: LOCAL_PROFILES.tokenEvent,
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.getAccessToken, local('token-refused')],
    action: 'E',
    outcome,
    outcomeDesc: input.reason ? `${input.error}: ${input.reason}` : input.error,
    agents: [...requestorAgents(scope, input.client, input.ip), authServerAgent(scope), ...userAgents(scope, input.user, false)],
    entities: [
      ...(input.patient ? [patientEntity(input.patient)] : []),
      tokenEntity(undefined, { grant_type: input.grantType, error: input.error }),
      ...grantEntity(scope, input.grantId),
    ],
  });
}

export interface RefreshReuseInput {
  client: ClientInfo;
  /** The reused refresh token (hashed: it is opaque). */
  refreshToken: TokenName;
  grantId?: string;
  user?: UserInfo;
  patient?: string;
}

/**
 * A rotated refresh token presented again: the token may be stolen, so the grant was revoked.
 * Serious failure (8), its own subtype so it can be alerted on.
 */
export function refreshReuse(scope: AuditScope, input: RefreshReuseInput): AuditEvent {
  return auditEvent(scope, {
    profile: LOCAL_PROFILES.tokenEvent,
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.getAccessToken, local('refresh-reuse')],
    action: 'E',
    outcome: '8',
    outcomeDesc: 'invalid_grant: refresh token already used; the grant and every token of it were revoked',
    agents: [clientAgent(scope, input.client, true), authServerAgent(scope), ...userAgents(scope, input.user, false)],
    entities: [
      ...(input.patient ? [patientEntity(input.patient)] : []),
      tokenEntity(input.refreshToken, {
        token_kind: 'RefreshToken',
        grant_type: 'refresh_token',
        client_id: input.client.clientId,
        grant_revoked: true,
      }),
      ...grantEntity(scope, input.grantId),
    ],
  });
}

export interface IntrospectedToken {
  name: TokenName;
  kind: string;
  clientId: string;
  accountId?: string;
  fhirUser?: string;
  patient?: string;
  scope?: string;
  grantId?: string;
}

export interface TokenIntrospectedInput {
  /** The resource server (or introspect-scoped client) that asked. */
  caller: ClientInfo;
  active: boolean;
  /** The token as found; absent when it is unknown, expired or malformed. */
  token?: IntrospectedToken;
  /** For unknown tokens: their hash still lets an investigator match a value they hold. */
  presented?: TokenName;
}

/**
 * A resource server asked about a token. Answering active for a token with a patient in context
 * discloses that patient's data to the token's client through the resource server.
 */
export function tokenIntrospected(scope: AuditScope, input: TokenIntrospectedInput): AuditEvent {
  const t = input.token;
  const name = t?.name ?? input.presented;
  const agents = [clientAgent(scope, input.caller, true), authServerAgent(scope)];
  if (t && input.active) {
    if (t.clientId !== input.caller.clientId) agents.push(clientAgent(scope, { clientId: t.clientId }, false));
    if (t.accountId) agents.push(...userAgents(scope, { accountId: t.accountId, ...(t.fhirUser ? { fhirUser: t.fhirUser } : {}) }, false));
  }
  return auditEvent(scope, {
    profile: LOCAL_PROFILES.tokenEvent,
    type: EVENT_TYPES.userAuthentication,
    subtype: [local('token-introspected')],
    action: 'E',
    outcome: '0',
    outcomeDesc: input.active ? 'active' : 'inactive',
    agents,
    entities: [
      ...(t?.patient && input.active ? [patientEntity(t.patient)] : []),
      tokenEntity(name, { active: input.active, token_kind: t?.kind, client_id: t?.clientId, scope: input.active ? t?.scope : undefined }),
      ...(input.active ? grantEntity(scope, t?.grantId) : []),
    ],
  });
}

export interface TokenRevokedInput {
  caller?: ClientInfo;
  ip?: string;
  /** The token revoked (absent: unknown token, a no-op per RFC 7009). */
  token?: { name: TokenName; kind: string; clientId: string; grantId?: string; accountId?: string };
  presented?: TokenName;
  grantRevoked?: boolean;
  error?: { error: string; description?: string; status: number };
}

export function tokenRevoked(scope: AuditScope, input: TokenRevokedInput): AuditEvent {
  const t = input.token;
  const failure = input.error;
  return auditEvent(scope, {
    profile: LOCAL_PROFILES.tokenEvent,
    type: EVENT_TYPES.userAuthentication,
    subtype: [local('token-revoked')],
    action: 'D',
    outcome: failure ? (failure.status >= 500 ? '8' : '4') : '0',
    outcomeDesc: failure
      ? failure.description
        ? `${failure.error}: ${failure.description}`
        : failure.error
      : t
        ? input.grantRevoked
          ? 'revoked with its grant'
          : 'revoked'
        : 'unknown token (nothing to revoke)',
    agents: [
      ...requestorAgents(scope, input.caller, input.ip),
      authServerAgent(scope),
      ...(t?.accountId ? userAgents(scope, { accountId: t.accountId }, false) : []),
    ],
    entities: [
      tokenEntity(t?.name ?? input.presented, { token_kind: t?.kind, client_id: t?.clientId, grant_revoked: input.grantRevoked }),
      ...(t ? grantEntity(scope, t.grantId) : []),
    ],
  });
}
