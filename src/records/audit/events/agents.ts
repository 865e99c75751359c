import { hash } from 'node:crypto';
import { isIP } from 'node:net';
import type { AuditEvent } from '../audit-event.js';
import {
  AGENT_TYPES,
  ENTITY_TYPES,
  OBJECT_ROLES,
  SECURITY_SERVER,
  TOKEN_SHA256_SYSTEM,
  frozen,
  type Coding,
  type Outcome,
} from './vocabulary.js';

/**
 * The parts every event is made of: agents (client, user, this server, an operator), entities
 * (patient, token, consent, …) and the envelope (source, recorded, outcome). Pure functions: the
 * hooks gather the facts, these only shape them.
 *
 * Secrets never enter here: a token is named by its `jti` (JWT) or by a SHA-256 of its value
 * (opaque tokens, whose id *is* the bearer value); passwords, client secrets, codes, verifiers and
 * assertions have no parameter to pass them through.
 */

export type Agent = AuditEvent['agent'][number];
export type Entity = NonNullable<AuditEvent['entity']>[number];
export type CodeableConcept = { coding: Coding[]; text?: string };

/** What every event needs to know about where it happens. */
export interface AuditScope {
  /** This server's issuer URL: source site, agent identifiers. */
  issuer: string;
  /** When the event happened (default: now). */
  now?: Date;
}

export interface ClientInfo {
  clientId: string;
  name?: string;
  /** The network address the client's request came from. */
  ip?: string;
}

/**
 * The signed-in person. `roles`, `purposeOfUse` and `organization` are optional so that identity
 * claims from elsewhere (IHE IUA `extensions.ihe_iua`: subject_role, purpose_of_use,
 * subject_organization(_id), subject_name) can be plugged in without changing the builders.
 */
export interface UserInfo {
  /** The account id (`sub`). */
  accountId: string;
  /** The user's FHIR resource (relative `Practitioner/1` or absolute URL). */
  fhirUser?: string;
  /** A display name (IUA subject_name), never a typed user name. */
  name?: string;
  roles?: Coding[];
  purposeOfUse?: Coding[];
  organization?: { name?: string; identifier?: { system?: string; value: string } };
  /** The browser's address, when the user was the one at the keyboard. */
  ip?: string;
  /** `jti` of the token this user acts with (BALP: agent[user].policy). */
  tokenJti?: string;
}

/** An operator acting outside HTTP (the smart-authz CLI on some host). */
export interface OperatorInfo {
  /** e.g. "smart-authz CLI (ops@host-1)". */
  display: string;
  host?: string;
}

const concepts = new WeakMap<Coding, CodeableConcept>();

/** A CodeableConcept; one made of a single shared (frozen) coding is itself shared. */
export function concept(...codings: Coding[]): CodeableConcept {
  const only = codings.length === 1 ? codings[0]! : undefined;
  if (!only || !Object.isFrozen(only)) return { coding: codings };
  let made = concepts.get(only);
  if (!made) {
    made = frozen({ coding: [only] });
    concepts.set(only, made);
  }
  return made;
}

/** network.type 2 for IP addresses, 1 for machine names. */
export function network(address: string): { address: string; type: '1' | '2' } {
  return { address, type: isIP(address) ? '2' : '1' };
}

const hosts = new Map<string, string>();

/** The issuer's host (memoised: every event needs it, and introspection builds one per request). */
export function issuerHost(issuer: string): string {
  let host = hosts.get(issuer);
  if (host === undefined) {
    try {
      host = new URL(issuer).host;
    } catch {
      host = issuer;
    }
    if (hosts.size < 16) hosts.set(issuer, host);
  }
  return host;
}

/** Identifier system of client ids: this issuer's client registry. */
export function clientIdSystem(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/clients`;
}

export function clientAgent(scope: AuditScope, client: ClientInfo, requestor: boolean, types: Coding[] = [AGENT_TYPES.application]): Agent {
  return {
    type: concept(...types),
    who: { identifier: { system: clientIdSystem(scope.issuer), value: client.clientId }, ...(client.name ? { display: client.name } : {}) },
    requestor,
    ...(client.ip ? { network: network(client.ip) } : {}),
  };
}

export function userAgent(scope: AuditScope, user: UserInfo, requestor = true): Agent {
  return {
    type: concept(AGENT_TYPES.informationRecipient),
    who: {
      ...(user.fhirUser ? { reference: user.fhirUser } : {}),
      identifier: { system: scope.issuer, value: user.accountId },
      ...(user.name ? { display: user.name } : {}),
    },
    ...(user.roles?.length ? { role: user.roles.map((r) => concept(r)) } : {}),
    requestor,
    ...(user.tokenJti ? { policy: [jtiUrn(user.tokenJti)] } : {}),
    ...(user.ip ? { network: network(user.ip) } : {}),
    ...(user.purposeOfUse?.length ? { purposeOfUse: user.purposeOfUse.map((p) => concept(p)) } : {}),
  };
}

/** The user's organization (BALP agent[userorg]), when known. */
export function userOrganizationAgent(user: UserInfo): Agent | undefined {
  const org = user.organization;
  if (!org || (!org.name && !org.identifier)) return undefined;
  return {
    type: concept(AGENT_TYPES.provider),
    who: { ...(org.identifier ? { identifier: org.identifier } : {}), ...(org.name ? { display: org.name } : {}) },
    requestor: false,
  };
}

/** User agent and, when known, the user's organization. */
export function userAgents(scope: AuditScope, user: UserInfo | undefined, requestor = true): Agent[] {
  if (!user) return [];
  const org = userOrganizationAgent(user);
  return org ? [userAgent(scope, user, requestor), org] : [userAgent(scope, user, requestor)];
}

const perIssuer = new Map<string, { agent: Agent; source: AuditEvent['source'] }>();

/** The parts that only depend on the issuer, made once and shared (frozen). */
function issuerParts(issuer: string): { agent: Agent; source: AuditEvent['source'] } {
  let parts = perIssuer.get(issuer);
  if (!parts) {
    parts = frozen({
      agent: {
        type: concept(AGENT_TYPES.authServer),
        who: { identifier: { value: issuer } },
        requestor: false,
        network: network(issuerHost(issuer).replace(/:\d+$/, '')),
      },
      source: {
        site: issuerHost(issuer),
        observer: { reference: 'Device/smart-authz', display: `SMART authorization server ${issuer}` },
        type: [SECURITY_SERVER],
      },
    });
    if (perIssuer.size < 16) perIssuer.set(issuer, parts);
  }
  return parts;
}

/** This authorization server (BALP AuthzOauthService). */
export function authServerAgent(scope: AuditScope): Agent {
  return issuerParts(scope.issuer).agent;
}

/** Someone at a terminal running the admin CLI. */
export function operatorAgent(operator: OperatorInfo): Agent {
  return {
    type: concept(AGENT_TYPES.humanUser),
    who: { display: operator.display },
    requestor: true,
    ...(operator.host ? { network: network(operator.host) } : {}),
  };
}

/** A user whose sign-in attempt named no known account: only where it came from is recorded. */
export function anonymousUserAgent(ip: string | undefined): Agent {
  return {
    type: concept(AGENT_TYPES.informationRecipient),
    who: { display: 'unknown account' },
    requestor: true,
    ...(ip ? { network: network(ip) } : {}),
  };
}

export function patientReference(patient: string): string {
  return patient.includes('/') ? patient : `Patient/${patient}`;
}

export function patientEntity(patient: string): Entity {
  return { what: { reference: patientReference(patient) }, type: ENTITY_TYPES.person, role: OBJECT_ROLES.patient };
}

export function consentEntity(consentId: string, detail: Array<{ type: string; valueString: string }> = []): Entity {
  const reference = consentId.startsWith('Consent/') ? consentId : `Consent/${consentId}`;
  return { what: { reference }, type: ENTITY_TYPES.consent, ...(detail.length ? { detail } : {}) };
}

export function jtiUrn(jti: string): string {
  return `urn:ietf:params:oauth:jti:${jti}`;
}

export function tokenSha256(value: string): string {
  return hash('sha256', value, 'base64url');
}

/**
 * How a token is named: a JWT by its `jti`; an opaque token by a hash of its value, since its id
 * is the bearer value itself (`sha256` when that hash was already taken, as compact records keep it).
 */
export type TokenName = { jti: string } | { opaqueValue: string } | { sha256: string };

export function tokenIdentifier(name: TokenName): { system?: string; value: string } {
  if ('jti' in name) return { value: jtiUrn(name.jti) };
  return { system: TOKEN_SHA256_SYSTEM, value: 'sha256' in name ? name.sha256 : tokenSha256(name.opaqueValue) };
}

export type Details = Record<string, string | number | boolean | undefined | null>;

export function details(values: Details): Array<{ type: string; valueString: string }> {
  return Object.entries(values)
    .filter((e): e is [string, string | number | boolean] => e[1] !== undefined && e[1] !== null && e[1] !== '')
    .map(([type, v]) => ({ type, valueString: String(v) }));
}

/** A token as a Security Resource (BALP token-response / token entity). */
export function tokenEntity(name: TokenName | undefined, values: Details, description?: string): Entity {
  const detail = details(values);
  return {
    ...(name ? { what: { identifier: tokenIdentifier(name) } } : {}),
    type: ENTITY_TYPES.systemObject,
    role: OBJECT_ROLES.securityResource,
    ...(description ? { description } : {}),
    ...(detail.length ? { detail } : {}),
  };
}

/** Any other security object (grant, client, key, user account, group) by an identifier. */
export function securityObject(identifier: { system?: string; value: string }, role: Coding, values: Details = {}, name?: string): Entity {
  const detail = details(values);
  return {
    what: { identifier },
    type: ENTITY_TYPES.systemObject,
    role,
    ...(name ? { name } : {}),
    ...(detail.length ? { detail } : {}),
  };
}

export interface Envelope {
  /** The profile the event claims (meta.profile); only one it is validated against. */
  profile?: string;
  type: Coding;
  subtype: Coding[];
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  outcome: Outcome;
  outcomeDesc?: string;
  purposeOfEvent?: Coding[];
  agents: Agent[];
  entities?: Entity[];
}

/** Caps free text taken from requests (error descriptions) so no event grows without bound. */
export function clip(text: string | undefined, max = 500): string | undefined {
  if (text === undefined) return undefined;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Assembles a complete AuditEvent with this server as its source. */
export function auditEvent(scope: AuditScope, e: Envelope): AuditEvent {
  const entities = e.entities?.filter(Boolean) ?? [];
  return {
    resourceType: 'AuditEvent',
    ...(e.profile ? { meta: { profile: [e.profile] } } : {}),
    type: e.type,
    subtype: e.subtype,
    action: e.action,
    recorded: (scope.now ?? new Date()).toISOString(),
    outcome: e.outcome,
    ...(e.outcomeDesc ? { outcomeDesc: clip(e.outcomeDesc)! } : {}),
    ...(e.purposeOfEvent?.length ? { purposeOfEvent: e.purposeOfEvent.map((p) => concept(p)) } : {}),
    agent: e.agents,
    source: issuerParts(scope.issuer).source,
    ...(entities.length ? { entity: entities } : {}),
  } as AuditEvent;
}
