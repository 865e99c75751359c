import type { AuditEvent } from '../../../records/audit/audit-event.js';
import {
  federatedLoginFailed,
  federatedLoginSucceeded,
  upstreamIdentityLinked,
  type FederationRefusal,
  type UpstreamIdentityInfo,
} from '../../../records/audit/events/federation-events.js';
import { SMART_USER_SCHEMA, type ScimUser } from '../../../records/directory/model.js';
import type { LinkOutcome } from './linking.js';
import type { UpstreamIdentity } from './upstream-identity.js';

/** The audit events of each federated sign-in outcome (records/audit/events/federation-events.ts). */

/** What an investigator reads for each refusal; never upstream-supplied text. */
const REFUSALS: Record<FederationRefusal, string> = {
  bad_state: 'the sign-in response was unknown, expired, already used or for another sign-in',
  upstream_error: 'the identity provider answered with an error',
  upstream_unreachable: 'the identity provider could not be reached',
  invalid_response: "the identity provider's answer failed verification",
  unknown_user: 'no directory user matches the upstream identity',
  disabled_user: 'the directory user is disabled',
  ambiguous_match: 'more than one directory user matches the upstream identity',
  email_unverified: 'the upstream email address is not verified',
  subject_mismatch: 'the user or the upstream identity is linked to another',
  user_conflict: 'the user could not be created: it conflicts with an existing one',
};

export interface SignInContext {
  issuer: string;
  ip: string;
  clientId?: string;
}

function upstreamInfo(provider: { id: string; issuer: string } | undefined, identity?: UpstreamIdentity): UpstreamIdentityInfo {
  if (!provider) return {};
  if (!identity) return { provider: provider.id, issuer: provider.issuer };
  return {
    provider: provider.id,
    issuer: identity.issuer,
    subject: identity.subject,
    ...(identity.amr.length ? { amr: identity.amr } : {}),
    ...(identity.acr ? { acr: identity.acr } : {}),
  };
}

const fhirUserOf = (user: ScimUser) => user[SMART_USER_SCHEMA]?.fhirUser;

/** A refusal; `provider` is undefined when not even the provider is known (an unknown hand-over). */
export function refusedEvent(
  at: SignInContext,
  provider: { id: string; issuer: string } | undefined,
  reason: FederationRefusal,
  more: { identity?: UpstreamIdentity; user?: ScimUser; upstreamError?: string } = {},
): AuditEvent {
  const fhirUser = more.user ? fhirUserOf(more.user) : undefined;
  return federatedLoginFailed(
    { issuer: at.issuer },
    {
      ...(more.user ? { accountId: more.user.id, ...(fhirUser ? { fhirUser } : {}) } : {}),
      ip: at.ip,
      ...(at.clientId ? { client: { clientId: at.clientId } } : {}),
      upstream: upstreamInfo(provider, more.identity),
      reason,
      description: REFUSALS[reason],
      ...(more.upstreamError ? { upstreamError: more.upstreamError } : {}),
    },
  );
}

/** A linked sign-in: the link or creation first (when it happened now), then the sign-in. */
export function linkedEvents(
  at: SignInContext,
  provider: { id: string; issuer: string },
  identity: UpstreamIdentity,
  outcome: Extract<LinkOutcome, { ok: true }>,
): AuditEvent[] {
  const scope = { issuer: at.issuer };
  const fhirUser = fhirUserOf(outcome.user);
  const user = { accountId: outcome.user.id, ...(fhirUser ? { fhirUser } : {}), ip: at.ip };
  const upstream = upstreamInfo(provider, identity);
  const events: AuditEvent[] = [];
  if (outcome.firstLink || outcome.created)
    events.push(
      upstreamIdentityLinked(scope, {
        user,
        upstream,
        created: Boolean(outcome.created),
        ...(outcome.created ? { attributes: outcome.created } : {}),
      }),
    );
  events.push(federatedLoginSucceeded(scope, { user, upstream, ...(at.clientId ? { client: { clientId: at.clientId } } : {}) }));
  return events;
}
