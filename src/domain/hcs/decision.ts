import { applyRules, listPermits, type HcsPolicy, type Mode } from './policy.js';
import { CONFIDENTIALITY, isEmergencyPurpose, lowerCeiling, type Confidentiality } from './vocabulary.js';
import { type Coding } from '../fhir/types.js';

/**
 * The HCS decision of one authorization: which purposes of use the token asserts, whether they are
 * permitted (for the client and, when there is one, the user), and the confidentiality ceiling and
 * obligations the policy attaches. The result is what tokens carry (claims.ts); it is fixed for the
 * life of a grant, like the launch context.
 */

/** Who the token is about, as resource servers read it (IHE IUA subject claims). */
export interface HcsSubject {
  name?: string;
  organization?: string;
  organizationId?: string;
  roles: Coding[];
  npi?: string;
}

/** What a grant's (or a backend token's) tokens carry; stored beside the grant. */
export interface HcsGrant {
  purposes: string[];
  subject?: HcsSubject;
  ceiling: Confidentiality;
  obligations: string[];
  breakTheGlass?: true;
  testData?: true;
}

export type CheckName = 'clientPurposes' | 'userPurposes' | 'breakTheGlass';

/** An audit-only check that failed, or an audit-only rule that would have applied. */
export interface Finding {
  check: CheckName | 'rule';
  detail: string;
}

export interface HcsDecision {
  grant: HcsGrant;
  /** Enforced rules that applied. */
  rules: string[];
  findings: Finding[];
}

/** A purpose that may not be asserted: the request fails with invalid_request and this sentence. */
export class HcsRefusal extends Error {}

export interface ClientHcsFacts {
  clientId: string;
  /** Registered `purposes_of_use`; absent = not restricted by the client (a user still is). */
  purposes?: readonly string[];
  /** Registered `default_purposes_of_use`, used when a request asserts none. */
  defaults?: readonly string[];
  testAccount: boolean;
}

export type UserKind = 'patient' | 'caregiver' | 'practitioner' | 'other';

export interface UserHcsFacts {
  kind: UserKind;
  /** SCIM `purposesOfUse`; absent = the policy's defaults for this kind of user. */
  purposes?: readonly string[];
  roles: readonly Coding[];
  breakTheGlass: boolean;
  testAccount: boolean;
  clearance?: Confidentiality;
  subject: HcsSubject;
}

class Checks {
  readonly findings: Finding[] = [];
  constructor(private readonly policy: HcsPolicy) {}

  run(name: CheckName, ok: boolean, detail: string): void {
    const mode: Mode = this.policy.checks[name];
    if (ok || mode === 'disabled') return;
    if (mode === 'enforce') throw new HcsRefusal(detail);
    this.findings.push({ check: name, detail });
  }
}

function permits(policy: HcsPolicy, list: readonly string[], code: string): boolean {
  return listPermits(list, code, policy.permitDescendants);
}

/** Test accounts assert HTEST and nothing else (the FHIR security module's test-data labelling). */
function testPurposes(requested: readonly string[]): string[] {
  const other = requested.filter((p) => p !== 'HTEST');
  if (other.length) throw new HcsRefusal(`this is a test account: it may only assert purpose of use HTEST, not ${other.join(' ')}`);
  return ['HTEST'];
}

function checkClient(
  checks: Checks,
  policy: HcsPolicy,
  client: ClientHcsFacts,
  purposes: readonly string[],
  requireRegistration: boolean,
  testData: boolean,
): void {
  for (const p of purposes) {
    // HTEST is imposed on test accounts, not asserted by the client.
    if (testData && p === 'HTEST') continue;
    if (!client.purposes) {
      checks.run(
        'clientPurposes',
        !requireRegistration,
        `purpose of use ${p} is not registered for client ${client.clientId} (purposes_of_use)`,
      );
      continue;
    }
    checks.run(
      'clientPurposes',
      permits(policy, client.purposes, p),
      `purpose of use ${p} is not registered for client ${client.clientId} (purposes_of_use)`,
    );
  }
}

export function mayBreakTheGlass(policy: HcsPolicy, user: UserHcsFacts): boolean {
  if (user.breakTheGlass) return true;
  if (user.purposes?.some((p) => p === 'ETREAT' || p === 'BTG')) return true;
  return policy.breakTheGlass.roles.some((w) => user.roles.some((r) => r.system === w.system && r.code === w.code));
}

function ceilingOf(policy: HcsPolicy, own: Confidentiality, emergency: boolean, ruleCeiling: Confidentiality | undefined): Confidentiality {
  let ceiling = own;
  // Emergency access may see more than the user's everyday clearance, up to the policy's level.
  if (emergency && CONFIDENTIALITY.indexOf(policy.breakTheGlass.ceiling) > CONFIDENTIALITY.indexOf(ceiling))
    ceiling = policy.breakTheGlass.ceiling;
  return ruleCeiling ? lowerCeiling(ceiling, ruleCeiling) : ceiling;
}

function finish(
  policy: HcsPolicy,
  checks: Checks,
  purposes: string[],
  roles: readonly Coding[],
  own: Confidentiality,
  subject: HcsSubject | undefined,
  testData: boolean,
): HcsDecision {
  const emergency = purposes.some(isEmergencyPurpose);
  const rules = applyRules(policy, purposes, roles);
  for (const w of rules.wouldApply) {
    checks.findings.push({
      check: 'rule',
      detail: `rule ${w.rule} (audit-only) would add ${[...w.obligations, ...(w.ceiling ? [`ceiling ${w.ceiling}`] : [])].join(', ')}`,
    });
  }
  const grant: HcsGrant = {
    purposes,
    ...(subject ? { subject } : {}),
    ceiling: ceilingOf(policy, own, emergency, rules.ceiling),
    obligations: rules.obligations,
    ...(emergency ? { breakTheGlass: true as const } : {}),
    ...(testData ? { testData: true as const } : {}),
  };
  return { grant, rules: rules.applied, findings: checks.findings };
}

/**
 * An interactive authorization (EHR or standalone launch): `requested` are the request's
 * `purpose_of_use` codes (already known to be v3-PurposeOfUse codes). Without any, the client's
 * default applies, else PATRQT for patients and caregivers acting on their own request.
 */
export function decideForUser(
  policy: HcsPolicy,
  input: { requested: readonly string[]; client: ClientHcsFacts; user: UserHcsFacts },
): HcsDecision {
  const { client, user } = input;
  const checks = new Checks(policy);
  const testData = client.testAccount || user.testAccount;
  const userList = user.purposes ?? policy.userDefaults[user.kind];
  let purposes: string[];
  if (testData) purposes = testPurposes(input.requested);
  else if (input.requested.length) purposes = [...input.requested];
  else if (client.defaults?.length) purposes = [...client.defaults];
  else purposes = (user.kind === 'patient' || user.kind === 'caregiver') && permits(policy, userList, 'PATRQT') ? ['PATRQT'] : [];

  checkClient(checks, policy, client, purposes, false, testData);
  for (const p of purposes) {
    if (testData && p === 'HTEST') continue;
    if (isEmergencyPurpose(p)) {
      checks.run(
        'breakTheGlass',
        mayBreakTheGlass(policy, user),
        `you are not permitted to break the glass (purpose of use ${p}); ask your administrator`,
      );
    } else {
      checks.run('userPurposes', permits(policy, userList, p), `you are not permitted to assert purpose of use ${p}`);
    }
  }
  return finish(policy, checks, purposes, user.roles, user.clearance ?? policy.defaultCeiling, user.subject, testData);
}

/** What a backend service asserted in its client assertion's `hl7-b2b` extension (b2b.ts). */
export interface B2bAssertion {
  purposes: string[];
  subject: HcsSubject;
}

/**
 * A backend-services token: purposes from the assertion's `hl7-b2b`, else the client's default.
 * No user stands behind the request, so every purpose must be registered for the client.
 */
export function decideForBackend(policy: HcsPolicy, input: { client: ClientHcsFacts; b2b?: B2bAssertion }): HcsDecision {
  const { client, b2b } = input;
  const checks = new Checks(policy);
  let purposes = b2b?.purposes ?? [...(client.defaults ?? [])];
  if (client.testAccount) purposes = testPurposes(b2b?.purposes ?? []);
  checkClient(checks, policy, client, purposes, true, client.testAccount);
  const roles = b2b?.subject.roles ?? [];
  return finish(policy, checks, purposes, roles, policy.defaultCeiling, b2b?.subject, client.testAccount);
}
