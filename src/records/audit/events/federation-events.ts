import type { AuditEvent } from '../audit-event.js';
import { scimSystem } from './admin-events.js';
import { attemptAgents } from './login-events.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  details,
  securityObject,
  userAgents,
  type AuditScope,
  type ClientInfo,
  type Entity,
  type UserInfo,
} from './agents.js';
import { ENTITY_TYPES, EVENT_TYPES, OBJECT_ROLES, STANDARD_SUBTYPES, local } from './vocabulary.js';

/**
 * Federated sign-in events (smart/interaction/federation/): a sign-in through the organisation's
 * identity provider, the linking of its upstream identity to a directory user (or the user made
 * for it just in time), and every refusal with its reason. They follow the password sign-in events
 * (login-events.ts) and add the upstream identity as an entity: the provider, its issuer and the
 * upstream subject, when the upstream's answer got far enough to name one. Nothing of the upstream
 * answer beyond that is recorded (no tokens, no codes, no email addresses).
 */

/** Who the upstream identity provider said signed in. */
export interface UpstreamIdentityInfo {
  /** The configured provider id (`federation.providers[].id`); unknown for a hand-over nobody made. */
  provider?: string;
  /** The upstream issuer. */
  issuer?: string;
  /** The upstream `sub`, once an ID token was verified. */
  subject?: string;
  /** Upstream authentication methods and context class, when it said. */
  amr?: string[];
  acr?: string;
}

/** Why a federated sign-in was refused; the codes are also the entity detail `reason`. */
export type FederationRefusal =
  | 'bad_state'
  | 'upstream_error'
  | 'upstream_unreachable'
  | 'invalid_response'
  | 'unknown_user'
  | 'disabled_user'
  | 'ambiguous_match'
  | 'email_unverified'
  | 'subject_mismatch'
  | 'user_conflict';

/** The upstream identity as a Security User entity, identified by its issuer and subject. */
function upstreamEntity(upstream: UpstreamIdentityInfo, extra: Record<string, string | undefined> = {}): Entity {
  const detail = details({
    provider: upstream.provider,
    issuer: upstream.issuer,
    amr: upstream.amr?.length ? upstream.amr.join(' ') : undefined,
    acr: upstream.acr,
    ...extra,
  });
  const more = detail.length ? { detail } : {};
  if (upstream.subject && upstream.issuer) {
    return { ...securityObject({ system: upstream.issuer, value: upstream.subject }, OBJECT_ROLES.securityUser), ...more };
  }
  // No verified subject: the entity is the sign-in through that provider, not an identity.
  return { type: ENTITY_TYPES.systemObject, role: OBJECT_ROLES.securityResource, description: 'federated sign-in', ...more };
}

export function federatedLoginSucceeded(
  scope: AuditScope,
  input: { user: UserInfo; upstream: UpstreamIdentityInfo; client?: ClientInfo },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login, local('federated-login')],
    action: 'E',
    outcome: '0',
    agents: [
      ...userAgents(scope, input.user, true),
      authServerAgent(scope),
      ...(input.client ? [clientAgent(scope, input.client, false)] : []),
    ],
    entities: [upstreamEntity(input.upstream)],
  });
}

export function federatedLoginFailed(
  scope: AuditScope,
  input: {
    /** The directory user the upstream identity was matched to, when one was. */
    accountId?: string;
    fhirUser?: string;
    ip?: string;
    client?: ClientInfo;
    upstream: UpstreamIdentityInfo;
    reason: FederationRefusal;
    /** What an investigator reads: the reason in words (never an upstream-supplied text). */
    description: string;
    /** The OAuth error code the upstream answered with (`upstream_error`). */
    upstreamError?: string;
  },
): AuditEvent {
  const user = attemptAgents(scope, input);
  return auditEvent(scope, {
    type: EVENT_TYPES.userAuthentication,
    subtype: [STANDARD_SUBTYPES.login, local('login-failed'), local('federated-login')],
    action: 'E',
    outcome: '4',
    outcomeDesc: input.description,
    agents: [...user, authServerAgent(scope), ...(input.client ? [clientAgent(scope, input.client, false)] : [])],
    entities: [upstreamEntity(input.upstream, { reason: input.reason, upstream_error: input.upstreamError })],
  });
}

/**
 * A directory user was linked to an upstream identity at its first federated sign-in, or created
 * for it just in time (`created`): a change of the user's security attributes.
 */
export function upstreamIdentityLinked(
  scope: AuditScope,
  input: { user: UserInfo; upstream: UpstreamIdentityInfo; created: boolean; attributes?: string[] },
): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local(input.created ? 'user-provisioned' : 'identity-linked'), STANDARD_SUBTYPES.userSecurityAttributesChanged],
    action: input.created ? 'C' : 'U',
    outcome: '0',
    agents: [...userAgents(scope, input.user, true), authServerAgent(scope)],
    entities: [
      securityObject({ system: scimSystem(scope.issuer, 'Users'), value: input.user.accountId }, OBJECT_ROLES.securityUser, {
        attributes: input.attributes?.join(' '),
      }),
      upstreamEntity(input.upstream),
    ],
  });
}
