import type { AuditEvent } from '../audit-event.js';
import {
  auditEvent,
  authServerAgent,
  clientAgent,
  concept,
  consentEntity,
  details,
  patientEntity,
  tokenEntity,
  userAgents,
  userOrganizationAgent,
  type AuditScope,
  type ClientInfo,
  type Entity,
  type UserInfo,
} from './agents.js';
import { AGENT_TYPES, BALP_PROFILES, EVENT_TYPES, PURPOSES, STANDARD_SUBTYPES, local, type Coding } from './vocabulary.js';

/**
 * Authorization decisions (IHE BALP AuthZ-Consent), patient Consents, and break-the-glass.
 */

export interface AuthorizationDecisionInput {
  client: ClientInfo;
  user?: UserInfo;
  patient?: string;
  consentId?: string;
  /** What was granted (granted) or asked for (denied). */
  scope?: string;
  granted: boolean;
  /** For denials: the OAuth error and its description. */
  error?: string;
  reason?: string;
  /** The user refused (access_denied), rather than a rule or error. */
  deniedByUser?: boolean;
  grantId?: string;
}

/** This server as the authorizer (BALP AuthZ-Consent agent[authorizer]: no network, unlike the AuthzOauthService agent). */
function authorizerAgent(scope: AuditScope) {
  const server = authServerAgent(scope);
  return { type: concept(AGENT_TYPES.authorizer, AGENT_TYPES.authServer), who: server.who!, requestor: false };
}

/**
 * The end of an authorization request: granted (a code goes to the app) or denied. A user's
 * refusal is outcome 8 (BALP: deny); a request refused by a rule or error is 4.
 *
 * The event claims IHE BALP AuthZconsent only when it has every fact that profile requires (the
 * user and their organization, the client's address, the patient and the consent decided on);
 * otherwise it claims nothing beyond R4 (docs/audit-profiles.md). In both shapes the user agent
 * carries no network (BALP: users are not network devices; the browser's address is the client
 * agent's), what was asked or granted is detail of the consent entity, and the purposes of use
 * the user acts under are the event's purposeOfEvent.
 */
export function authorizationDecision(scope: AuditScope, input: AuthorizationDecisionInput): AuditEvent {
  const user = input.user ? { ...input.user, ip: undefined } : undefined;
  const clientIp = input.client.ip ?? input.user?.ip;
  const client = { ...input.client, ...(clientIp ? { ip: clientIp } : {}) };
  const decided = details({ scope: input.scope, client_id: input.client.clientId, grant_id: input.grantId });
  const entities: Entity[] = [];
  if (input.patient) entities.push(patientEntity(input.patient));
  if (input.consentId) entities.push(consentEntity(input.consentId, decided));
  else
    entities.push(
      tokenEntity(undefined, { kind: 'authorization', scope: input.scope, client_id: input.client.clientId, grant_id: input.grantId }),
    );
  const agents = [clientAgent(scope, client, false), ...userAgents(scope, user, true), authorizerAgent(scope)];
  const meetsAuthZconsent = Boolean(clientIp && input.user && userOrganizationAgent(input.user) && input.patient && input.consentId);
  return auditEvent(scope, {
    ...(meetsAuthZconsent ? { profile: BALP_PROFILES.authzConsent } : {}),
    type: EVENT_TYPES.securityAlert,
    subtype: [STANDARD_SUBTYPES.authzConsent, local(input.granted ? 'authorization-granted' : 'authorization-denied')],
    action: 'E',
    outcome: input.granted ? '0' : input.deniedByUser ? '8' : '4',
    ...(input.granted
      ? {}
      : { outcomeDesc: input.reason ? `${input.error ?? 'access_denied'}: ${input.reason}` : (input.error ?? 'access_denied') }),
    purposeOfEvent: input.user?.purposeOfUse,
    agents,
    entities,
  });
}

export interface ConsentEventInput {
  consentId: string;
  patient: string;
  /** Who decided or withdrew: a FHIR reference (Patient/…, RelatedPerson/…, Practitioner/…). */
  performer?: string;
  /** The account acting, when a person is signed in. */
  user?: UserInfo;
  /** The app the consent is about, or the API client that withdrew it. */
  client?: ClientInfo;
  /** permit or deny (recorded) */
  decision?: 'permit' | 'deny';
  scopes?: string[];
  ip?: string;
}

function consentAgents(scope: AuditScope, input: ConsentEventInput) {
  const agents = [...userAgents(scope, input.user, true)];
  if (!input.user && input.performer) {
    agents.push({
      type: { coding: [AGENT_TYPES.consenter] },
      who: { reference: input.performer },
      requestor: true,
      ...(input.ip ? { network: { address: input.ip, type: '2' as const } } : {}),
    });
  }
  if (input.client) agents.push(clientAgent(scope, input.client, agents.length === 0));
  agents.push(authServerAgent(scope));
  return agents;
}

export function consentRecorded(scope: AuditScope, input: ConsentEventInput): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.rest,
    subtype: [STANDARD_SUBTYPES.create, local('consent-recorded')],
    action: 'C',
    outcome: '0',
    outcomeDesc: input.decision === 'deny' ? 'Consent recorded: deny' : 'Consent recorded: permit',
    agents: consentAgents(scope, input),
    entities: [
      patientEntity(input.patient),
      consentEntity(input.consentId, details({ decision: input.decision, scopes: input.scopes?.join(' '), performer: input.performer })),
    ],
  });
}

export function consentWithdrawn(scope: AuditScope, input: ConsentEventInput & { grantsRevoked?: number }): AuditEvent {
  return auditEvent(scope, {
    type: EVENT_TYPES.rest,
    subtype: [STANDARD_SUBTYPES.update, local('consent-withdrawn')],
    action: 'U',
    outcome: '0',
    outcomeDesc: 'Consent withdrawn; every grant it authorized was revoked',
    agents: consentAgents(scope, input),
    entities: [
      patientEntity(input.patient),
      consentEntity(input.consentId, details({ status: 'inactive', withdrawn_by: input.performer, grants_revoked: input.grantsRevoked })),
    ],
  });
}

export interface BreakTheGlassInput {
  /** Why the user overrode the normal access rules (their own words; kept as text). */
  reason: string;
  /** The fresh second factor the override rested on: its methods (RFC 8176 amr) and when it was verified. */
  secondFactor?: { amr: string[]; verifiedAt: string };
  user: UserInfo;
  client?: ClientInfo;
  patient?: string;
  /** Extra purposes besides ETREAT/BTG. */
  purposeOfUse?: Coding[];
  /** The token the override was granted with, by jti. */
  tokenJti?: string;
  scope?: string;
}

/**
 * An emergency override of access rules ("break the glass"): a Security Alert that always needs
 * review, with the reason the user gave.
 */
export function breakTheGlass(scope: AuditScope, input: BreakTheGlassInput): AuditEvent {
  const purposes = [PURPOSES.emergencyTreatment, PURPOSES.breakTheGlass, ...(input.purposeOfUse ?? [])];
  const user: UserInfo = {
    ...input.user,
    purposeOfUse: [
      ...(input.user.purposeOfUse ?? []),
      ...purposes.filter((p) => !input.user.purposeOfUse?.some((q) => q.code === p.code && q.system === p.system)),
    ],
  };
  const entities: Entity[] = [];
  if (input.patient) entities.push(patientEntity(input.patient));
  entities.push(
    tokenEntity(
      input.tokenJti ? { jti: input.tokenJti } : undefined,
      {
        reason: input.reason,
        scope: input.scope,
        ...(input.secondFactor
          ? { second_factor_amr: input.secondFactor.amr.join(' '), second_factor_at: input.secondFactor.verifiedAt }
          : {}),
      },
      'break-the-glass',
    ),
  );
  return auditEvent(scope, {
    type: EVENT_TYPES.securityAlert,
    subtype: [local('break-the-glass'), STANDARD_SUBTYPES.emergencyOverrideStarted],
    action: 'E',
    outcome: '0',
    outcomeDesc: `break-the-glass: ${input.reason}`,
    purposeOfEvent: purposes,
    agents: [...userAgents(scope, user, true), ...(input.client ? [clientAgent(scope, input.client, false)] : []), authServerAgent(scope)],
    entities,
  });
}
