import type Provider from 'oidc-provider';
import { normaliseBase } from '../../../oauth/provider/fhir-servers.js';
import { parseScope } from '../../../domain/scopes/scope-syntax.js';
import type { GrantContext, GrantContextStore } from '../../../oauth/tokens/grant-context.js';
import type { LaunchContext, LaunchStore } from '../../launch/launch-store.js';
import { grantableScopes } from '../../launch/user-scopes.js';
import type { AuthorizationFacts } from '../facts/authorization-facts.js';
import { fhirReferenceOf, patientIdOf } from '../facts/fhir-user.js';
import { buildGrant } from '../facts/grant-builder.js';
import { withinGrantable } from '../consent/granular-scopes.js';
import { allowedPatientsOf } from '../facts/user-context.js';
import type { Logger } from 'pino';
import { HcsRefusal, decideForUser, type HcsDecision } from '../../../domain/hcs/decision.js';
import { hcsPolicySchema, type HcsPolicy } from '../../../domain/hcs/policy.js';
import type { BreakTheGlassAlerts } from '../../../domain/hcs/break-the-glass.js';
import type { Metrics } from '../../../platform/ops/metrics.js';
import type { AuditTrail } from '../../../records/audit/trail.js';
import { breakTheGlass } from '../../../records/audit/events/consent-events.js';
import { purposeCoding } from '../../../domain/hcs/vocabulary.js';

/**
 * The end of every SMART authorization: what may be granted (the user side of downscoping), then
 * one new grant holding the approved scopes and, beside it, the launch context its tokens carry.
 * A new grant each time, never an old one updated: context is fixed for the life of a grant, so
 * two launches of one app by one user (two patients in two windows) never share one.
 */

export type RecordErrorCode = 'invalid_request' | 'invalid_scope' | 'access_denied';

/** Why an authorization cannot be completed; goes back to the app as an OAuth error. */
export class RecordError extends Error {
  constructor(
    readonly error: RecordErrorCode,
    readonly description: string,
  ) {
    super(description);
  }
}

export const LAUNCH_GONE = 'The launch has expired or was already used. Start the app again from the EHR.';

/** What this authorization can have, before the user decides. */
export interface AuthorizationPlan {
  /** The EHR launch in use (read, not yet used up). */
  launch: LaunchContext | undefined;
  patient: string | undefined;
  encounter: string | undefined;
  /** Grantable scopes in request order, each as it was asked for. */
  grantable: string[];
  refused: Array<{ scope: string; reason: string }>;
  /** Purposes of use, subject, ceiling and obligations of the grant (hcs/). */
  hcs?: HcsDecision;
}

/** Emergency access never outlives the emergency: no refresh token (SMART permission-offline/online). */
const REFRESH_SCOPES = new Set(['offline_access', 'online_access']);
const NO_REFRESH_IN_EMERGENCY = 'not available with emergency access';

export interface RecordedGrant {
  grantId: string;
  approved: string[];
  context: GrantContext;
}

/**
 * How a grant comes to stand on a patient's Consent (consent/consent-gate.ts): `decide` runs after the
 * launch is used up and before the grant is saved, answering the Consent id (or undefined when the
 * grant needs none); `link` ties the saved grant to it. When linking fails the grant is discarded.
 */
export interface ConsentStep {
  decide(scopes: string[]): Promise<string | undefined>;
  link(consentId: string, grantId: string): Promise<void>;
}

export interface ContextRecorderDeps {
  launches: Pick<LaunchStore, 'get' | 'consume'>;
  contexts: Pick<GrantContextStore, 'save' | 'get' | 'delete'>;
  /** Lifetime of grants (ttl.Grant): the context lives exactly as long. */
  grantTtlSeconds: number;
  /** The HCS policy; the shipped defaults when absent. */
  hcs?: HcsPolicy;
  /** Break-the-glass alerting (log line, webhook). */
  alerts?: Pick<BreakTheGlassAlerts, 'raise'>;
  logger?: Logger;
  metrics?: Pick<Metrics, 'breakTheGlass' | 'hcsFindings'>;
  /** Emergency access is in the audit trail (a Security Alert with the reason) before the app gets its code. */
  audit?: { trail: AuditTrail; issuer: string };
  /** Banner and style of EHR launches whose EHR named none (config `smart`, discovery/smart-style.ts). */
  ehrLaunchDefaults?: EhrLaunchDefaults;
}

/** Launch context an EHR launch carries when the EHR did not say (its own values win). */
export interface EhrLaunchDefaults {
  need_patient_banner: boolean;
  smart_style_url: string;
}

/** The second factor an emergency access rests on: its methods (RFC 8176) and when it was verified. */
export interface SecondFactorProof {
  amr: string[];
  /** ISO 8601 */
  verifiedAt: string;
}

/** Options of one recording. */
export interface RecordOptions {
  /** The reason typed on the consent page; required when the plan is emergency access. */
  breakTheGlassReason?: string;
  /** The fresh second factor; required when the plan is emergency access. */
  secondFactor?: SecondFactorProof;
}

function encounterIdOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const ref = fhirReferenceOf(value);
  if (ref) return ref.resourceType === 'Encounter' ? ref.id : undefined;
  return /^[A-Za-z0-9.-]{1,64}$/.test(value) ? value : undefined;
}

/**
 * Usable means: something was granted and, when the app asked for FHIR data, some of it (SMART
 * GR-03: invalid_scope only when nothing usable remains of a request for resource scopes).
 */
export function usableGrant(requested: readonly string[], approved: readonly string[]): boolean {
  if (!approved.length) return false;
  const isResource = (s: string) => parseScope(s).kind === 'resource';
  return !requested.some(isResource) || approved.some(isResource);
}

export class ContextRecorder {
  private readonly policy: HcsPolicy;

  constructor(private readonly deps: ContextRecorderDeps) {
    this.policy = deps.hcs ?? hcsPolicySchema.parse({});
  }

  /** The HCS decision for this user, client and request; a purpose they may not assert is refused. */
  hcsDecision(facts: AuthorizationFacts): HcsDecision {
    const security = facts.user.security ?? { roles: [], breakTheGlass: false, testAccount: false };
    try {
      return decideForUser(this.policy, {
        requested: facts.purposes,
        client: facts.clientHcs,
        user: {
          kind: facts.user.kind,
          ...(security.purposes ? { purposes: security.purposes } : {}),
          roles: security.roles,
          breakTheGlass: security.breakTheGlass,
          testAccount: security.testAccount,
          ...(facts.user.clearance ? { clearance: facts.user.clearance } : {}),
          subject: {
            ...(facts.user.displayName ? { name: facts.user.displayName } : {}),
            ...(security.organization ? { organization: security.organization } : {}),
            ...(security.organizationId ? { organizationId: security.organizationId } : {}),
            roles: security.roles,
            ...(security.npi ? { npi: security.npi } : {}),
          },
        },
      });
    } catch (err) {
      if (err instanceof HcsRefusal) throw new RecordError('invalid_request', err.message);
      throw err;
    }
  }

  /** Minimum length of a break-the-glass reason (the consent page's form). */
  get reasonMinLength(): number {
    return this.policy.breakTheGlass.reasonMinLength;
  }

  /** The launch context the request uses, checked against this app, server and user. */
  async launchFor(facts: AuthorizationFacts): Promise<LaunchContext | undefined> {
    if (!facts.launch) return undefined;
    const launch = await this.deps.launches.get(facts.launch);
    if (!launch) throw new RecordError('invalid_request', LAUNCH_GONE);
    checkLaunch(launch, facts);
    return launch;
  }

  async plan(facts: AuthorizationFacts): Promise<AuthorizationPlan> {
    const launch = await this.launchFor(facts);
    // An account linked to nothing never has a patient in context, not even the one an EHR launch
    // names: it gets identity scopes at most, and the consent page says why.
    const patient =
      facts.user.access === 'none' ? undefined : (patientIdOf(launch?.patient) ?? facts.picks.patient ?? facts.user.ownPatient);
    const allowed = allowedPatientsOf(facts.user);
    if (patient && allowed && !allowed.includes(patient)) {
      throw new RecordError('access_denied', 'You may not open this patient record.');
    }
    const encounter = encounterIdOf(launch?.encounter) ?? facts.picks.encounter;
    const hcs = this.hcsDecision(facts);
    let { granted, refused } = grantableScopes({
      requested: facts.requested,
      clientAllowed: facts.clientAllowed,
      access: facts.user.access,
      hasPatient: patient !== undefined,
    });
    if (hcs.grant.breakTheGlass) {
      refused = [...refused, ...granted.filter((s) => REFRESH_SCOPES.has(s)).map((scope) => ({ scope, reason: NO_REFRESH_IN_EMERGENCY }))];
      granted = granted.filter((s) => !REFRESH_SCOPES.has(s));
    }
    return { launch, patient, encounter, grantable: granted, refused, hcs };
  }

  /**
   * Saves the grant of `approved` (limited to what the plan allows, or offered narrowings of it) and its context, using up the
   * EHR launch. The launch is consumed last but before anything is saved: of two authorizations
   * racing on one launch, exactly one gets a grant.
   */
  async record(
    provider: Provider,
    facts: AuthorizationFacts,
    plan: AuthorizationPlan,
    approved: readonly string[],
    consent?: ConsentStep,
    options: RecordOptions = {},
  ): Promise<RecordedGrant> {
    // What the plan allows, or a category of it the person narrowed it to (consent/granular-scopes.ts).
    const scopes = withinGrantable(plan.grantable, approved);
    if (!usableGrant(facts.requested, scopes)) {
      throw new RecordError('invalid_scope', 'None of the requested scopes could be granted.');
    }
    const emergency = plan.hcs?.grant.breakTheGlass === true;
    // Emergency access is only ever granted on the consent page, where the reason is typed.
    if (emergency && !options.breakTheGlassReason)
      throw new RecordError('invalid_request', 'Emergency access needs a reason stated on the consent page.');
    if (emergency && !options.secondFactor)
      throw new RecordError('invalid_request', 'Emergency access needs a second factor verified within the last few minutes.');
    if (facts.launch && !(await this.deps.launches.consume(facts.launch))) {
      throw new RecordError('invalid_request', LAUNCH_GONE);
    }
    // The patient's decision is on record before anything can be issued from the grant.
    const consentId = await consent?.decide(scopes);
    const context = contextOf(facts, plan, scopes, this.deps.ehrLaunchDefaults);
    if (consentId) context.consentId = consentId;
    const at = new Date().toISOString();
    if (emergency) context.breakTheGlass = { reason: options.breakTheGlassReason!, at };
    const grant = buildGrant(provider, {
      accountId: facts.accountId,
      clientId: facts.clientId,
      audience: facts.audience,
      requested: facts.requested,
      approved: scopes,
    });
    const grantId = await grant.save();
    await this.deps.contexts.save(grantId, context, this.deps.grantTtlSeconds);
    if (consentId && consent) {
      try {
        await consent.link(consentId, grantId);
      } catch (err) {
        await this.discard(provider, grantId).catch(() => undefined);
        throw err;
      }
    }
    if (emergency && this.deps.audit) {
      // No audit record, no emergency access: the grant is undone if the trail cannot take it.
      try {
        await this.deps.audit.trail.record(this.emergencyEvent(facts, plan, context, options.breakTheGlassReason!, options.secondFactor!));
      } catch (err) {
        await this.discard(provider, grantId).catch(() => undefined);
        throw err;
      }
    }
    if (plan.hcs?.findings.length) {
      this.deps.logger?.warn(
        { clientId: facts.clientId, accountId: facts.accountId, grantId, findings: plan.hcs.findings },
        'HCS policy findings (audit-only)',
      );
      for (const f of plan.hcs.findings) this.deps.metrics?.hcsFindings.inc({ check: f.check });
    }
    if (emergency) {
      this.deps.metrics?.breakTheGlass.inc();
      this.deps.alerts
        ?.raise({
          grantId,
          clientId: facts.clientId,
          accountId: facts.accountId,
          ...(facts.user.fhirUser ? { fhirUser: facts.user.fhirUser } : {}),
          ...(context.patient ? { patient: context.patient } : {}),
          purposes: plan.hcs!.grant.purposes,
          reason: options.breakTheGlassReason!,
          at,
        })
        ?.catch((err: unknown) => this.deps.logger?.error({ err, grantId }, 'break-the-glass alert failed'));
    }
    return { grantId, approved: scopes, context };
  }

  private emergencyEvent(
    facts: AuthorizationFacts,
    plan: AuthorizationPlan,
    context: GrantContext,
    reason: string,
    secondFactor: SecondFactorProof,
  ) {
    const subject = plan.hcs?.grant.subject;
    return breakTheGlass(
      { issuer: this.deps.audit!.issuer },
      {
        reason,
        secondFactor,
        user: {
          accountId: facts.accountId,
          ...(facts.user.fhirUser ? { fhirUser: facts.user.fhirUser } : {}),
          ...(subject?.name ? { name: subject.name } : {}),
          ...(subject?.roles.length ? { roles: subject.roles } : {}),
          ...(subject?.organization || subject?.organizationId
            ? {
                organization: {
                  ...(subject.organization ? { name: subject.organization } : {}),
                  ...(subject.organizationId ? { identifier: { value: subject.organizationId } } : {}),
                },
              }
            : {}),
        },
        client: { clientId: facts.clientId },
        ...(context.patient ? { patient: context.patient } : {}),
        // The builder always names ETREAT and BTG; other emergency purposes (ERTREAT) are added.
        purposeOfUse: (plan.hcs?.grant.purposes ?? []).filter((p) => p !== 'ETREAT' && p !== 'BTG').map(purposeCoding),
      },
    );
  }

  /** Removes a grant no token was issued from yet, with its context. */
  private async discard(provider: Provider, grantId: string): Promise<void> {
    await (await provider.Grant.find(grantId))?.destroy();
    await this.deps.contexts.delete(grantId);
  }

  async savedContext(grantId: string): Promise<GrantContext | undefined> {
    return this.deps.contexts.get(grantId);
  }
}

function checkLaunch(launch: LaunchContext, facts: AuthorizationFacts): void {
  if (launch.clientId !== undefined && launch.clientId !== facts.clientId) {
    throw new RecordError('invalid_request', 'The launch was made for a different app.');
  }
  if (launch.aud !== undefined && facts.fhirServer && normaliseBase(launch.aud) !== facts.fhirServer.base) {
    throw new RecordError('invalid_request', 'The launch was made for a different FHIR server.');
  }
  if (launch.user !== undefined && launch.user !== facts.accountId) {
    throw new RecordError('access_denied', 'The launch was started for a different user. Sign out and start the app again from the EHR.');
  }
}

/**
 * The context the grant's tokens carry. Patient and encounter only when the grant is about them
 * (the EHR launch, their launch/ scope, or patient/ scopes, which need a patient); the banner,
 * style, intent and fhirContext only come from an EHR launch (SMART: they are EHR-launch context).
 * Every EHR launch has a banner and a style: the EHR's, else the configured `defaults`.
 */
export function contextOf(
  facts: AuthorizationFacts,
  plan: AuthorizationPlan,
  approved: readonly string[],
  defaults?: EhrLaunchDefaults,
): GrantContext {
  const has = new Set(approved);
  const launch = plan.launch && has.has('launch') ? plan.launch : undefined;
  const patientScopes = approved.some((s) => {
    const p = parseScope(s);
    return p.kind === 'resource' && p.context === 'patient';
  });
  const context: GrantContext = {};
  if (plan.patient && (launch || has.has('launch/patient') || patientScopes)) context.patient = plan.patient;
  if (plan.encounter && (launch || has.has('launch/encounter'))) context.encounter = plan.encounter;
  if (launch) {
    if (launch.fhirContext?.length) context.fhirContext = launch.fhirContext;
    const banner = launch.need_patient_banner ?? defaults?.need_patient_banner;
    if (banner !== undefined) context.need_patient_banner = banner;
    const style = launch.smart_style_url ?? defaults?.smart_style_url;
    if (style) context.smart_style_url = style;
    if (launch.intent) context.intent = launch.intent;
    if (launch.tenant) context.tenant = launch.tenant;
  }
  if (facts.user.fhirUser) context.fhirUser = facts.user.fhirUser;
  if (plan.hcs) context.hcs = plan.hcs.grant;
  if (has.has('online_access') && !has.has('offline_access')) context.onlineAccess = true;
  return context;
}
