import { errors } from 'oidc-provider';
import { uncoveredScopes } from '../../records/consent/scope-coverage.js';
import { parseScope } from '../../domain/scopes/scope-syntax.js';
import { isEmergencyPurpose } from '../../domain/hcs/vocabulary.js';
import { SMART_CLIENT_KINDS, isSmartClientKind, type SmartClientKind } from './client-kinds.js';
import { parseScopePattern } from './scope-patterns.js';

/**
 * What one initial access token lets its holder register through RFC 7591, and keep through
 * RFC 7592 updates: a ceiling of client kinds and of scope patterns. On top of any ceiling,
 * administrative scopes are never registrable dynamically; only an operator grants them, with
 * the CLI or the clients file (which do not go through these rules).
 */
export interface RegistrationCeiling {
  kinds: SmartClientKind[];
  /** Scope patterns; `launch/*` stands for every `launch/<type>` context scope. */
  scopes: string[];
}

/** Apps only: a token that should allow more has to say so (`registration token --kinds …`). */
export const DEFAULT_REGISTRATION_KINDS: readonly SmartClientKind[] = ['public_app', 'confidential_symmetric', 'confidential_asymmetric'];

export const DEFAULT_REGISTRATION_SCOPES: readonly string[] = [
  'patient/*.cruds',
  'user/*.cruds',
  'launch',
  'launch/*',
  'openid',
  'fhirUser',
  'profile',
  'offline_access',
  'online_access',
];

export const DEFAULT_REGISTRATION_CEILING: RegistrationCeiling = {
  kinds: [...DEFAULT_REGISTRATION_KINDS],
  scopes: [...DEFAULT_REGISTRATION_SCOPES],
};

const ANY_LAUNCH_CONTEXT = 'launch/*';

/** Resource types whose system/ scopes open this server's own administration APIs. */
const ADMIN_RESOURCE_TYPES = new Set(['AuditEvent', 'Consent']);

/**
 * Why a scope is administrative, or undefined. `scim` and `introspect` open the user directory and
 * token introspection; `system/AuditEvent.*` the whole audit trail; `system/Consent.*` every
 * patient's consents; any other system/ scope that creates, updates or deletes (v2 c/u/d, v1
 * write or *) changes data for every patient. A system/ scope on `*` is treated by its letters:
 * the audit and consent APIs only honour scopes naming their type (apis/fhir-api.ts).
 */
export function administrativeReason(scope: string): string | undefined {
  const pattern = parseScopePattern(scope);
  if ('problem' in pattern) return undefined;
  if (pattern.kind === 'admin') return scope === 'scim' ? 'it manages the user directory' : 'it introspects tokens';
  const parsed = parseScope(scope);
  if (parsed.kind !== 'resource' || parsed.context !== 'system') return undefined;
  if (ADMIN_RESOURCE_TYPES.has(parsed.resourceType)) {
    return parsed.resourceType === 'AuditEvent'
      ? 'it reads the audit trail of every patient'
      : 'it reads or withdraws the consents of every patient';
  }
  if (parsed.permissions.has('c') || parsed.permissions.has('u') || parsed.permissions.has('d')) return 'it writes data of every patient';
  return undefined;
}

/**
 * Client metadata only an operator sets (smart-authz clients or the clients file), whatever a
 * token's policy says: emergency purposes of use (ETREAT and everything under it, such as BTG and
 * ERTREAT: domain/hcs/vocabulary.ts) let a backend assert break-the-glass access on its own, and a
 * `jku_allowlist` makes this server fetch key sets from wherever it points. A `jku` equal to the
 * client's own `jwks_uri` is honoured without one (SMART Backend Services' rule), so registrants
 * need none. `test_account` only narrows what a client may do, and stays registrable.
 * Returns a sentence naming the rule, or undefined.
 */
export function operatorOnlyMetadataProblem(properties: Record<string, unknown>): string | undefined {
  const purposes = Array.isArray(properties.purposes_of_use) ? (properties.purposes_of_use as unknown[]) : [];
  for (const [i, code] of purposes.entries()) {
    if (typeof code === 'string' && isEmergencyPurpose(code)) {
      return `purposes_of_use[${i}] ${quote(code)} is an emergency (break-the-glass) purpose of use and cannot be registered dynamically; only an operator can grant it (smart-authz clients --purpose or the clients file)`;
    }
  }
  const jku = properties.jku_allowlist;
  if (jku !== undefined && !(Array.isArray(jku) && jku.length === 0)) {
    return "jku_allowlist cannot be registered dynamically: a client assertion's jku is honoured when it is the client's own jwks_uri; other key-set URLs only an operator can allow (smart-authz clients --jku or the clients file)";
  }
  return undefined;
}

function fail(description: string): never {
  throw new errors.InvalidClientMetadata(description);
}

function quote(value: string): string {
  return `'${value.length > 80 ? `${value.slice(0, 77)}...` : value}'`;
}

/**
 * The scopes a registration asks for: `smart_scopes` and, should it be sent, the RFC 7591 `scope`
 * member. Malformed `smart_scopes` entries are left out of the ceiling check (not of the admin
 * check): the metadata validator, which always runs after this, refuses them with a precise reason.
 */
function requestedScopes(properties: Record<string, unknown>): { all: string[]; bounded: string[] } {
  const smart = Array.isArray(properties.smart_scopes) ? properties.smart_scopes.filter((s): s is string => typeof s === 'string') : [];
  const member = typeof properties.scope === 'string' ? properties.scope.split(' ').filter(Boolean) : [];
  const all = [...new Set([...smart, ...member])];
  const malformed = new Set(smart.filter((s) => 'problem' in parseScopePattern(s)));
  return { all, bounded: all.filter((s) => !malformed.has(s) || member.includes(s)) };
}

function withinCeiling(scope: string, ceiling: readonly string[]): boolean {
  const parsed = parseScope(scope);
  if (parsed.kind === 'context' && parsed.name.startsWith('launch/') && ceiling.includes(ANY_LAUNCH_CONTEXT)) return true;
  return uncoveredScopes(ceiling, [scope]).length === 0;
}

/**
 * Refuses (RFC 7591 `invalid_client_metadata`) a registration or update outside the ceiling, naming
 * the rule. Administrative scopes are checked first and whatever the ceiling says. A missing or
 * malformed kind is refused here too; malformed scope patterns are left to the metadata validator.
 * A kind inferred from standard metadata (standard-metadata.ts) is held to the same ceiling, and
 * its refusal says what it was inferred from.
 */
export function assertWithinCeiling(
  properties: Record<string, unknown>,
  ceiling: RegistrationCeiling,
  via: string,
  inferredKindBasis?: string,
): void {
  const scopes = requestedScopes(properties);
  for (const scope of scopes.all) {
    const reason = administrativeReason(scope);
    if (reason)
      fail(
        `scope ${quote(scope)} is administrative (${reason}) and cannot be registered dynamically; only an operator can grant it (smart-authz clients or the clients file)`,
      );
  }
  // Operator-only metadata too, whatever the ceiling says.
  const operatorOnly = operatorOnlyMetadataProblem(properties);
  if (operatorOnly) fail(operatorOnly);
  const kind = properties.smart_client_kind;
  const allowedKinds = ceiling.kinds.join(', ') || 'none';
  if (typeof kind !== 'string') fail(`smart_client_kind is required; ${via} allows ${allowedKinds}`);
  if (!(ceiling.kinds as string[]).includes(kind)) {
    const inferred = inferredKindBasis ? ` (inferred from ${inferredKindBasis}; smart_client_kind was not sent)` : '';
    fail(`smart_client_kind ${quote(kind)}${inferred} is not allowed by ${via} (it allows ${allowedKinds})`);
  }
  for (const scope of scopes.bounded) {
    if (!withinCeiling(scope, ceiling.scopes))
      fail(`scope ${quote(scope)} is not allowed by ${via} (it allows scopes within: ${ceiling.scopes.join(' ') || 'none'})`);
  }
}

/** Splits a list given as "a b" or "a,b". */
export function splitList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/**
 * Checks a ceiling an operator asks for when minting a token; returns a sentence saying what is
 * wrong, or undefined. Administrative scopes are refused here too, so no token ever claims to
 * allow what registration will refuse anyway.
 */
export function ceilingProblem(ceiling: RegistrationCeiling): string | undefined {
  if (!ceiling.kinds.length) return 'at least one client kind is needed';
  for (const kind of ceiling.kinds) {
    if (!isSmartClientKind(kind)) return `client kind ${quote(kind)} is not known: use ${SMART_CLIENT_KINDS.join(', ')}`;
  }
  for (const scope of ceiling.scopes) {
    if (scope === ANY_LAUNCH_CONTEXT) continue;
    const parsed = parseScopePattern(scope);
    if ('problem' in parsed) return `scope ${quote(scope)} ${parsed.problem}`;
    const reason = administrativeReason(scope);
    if (reason)
      return `scope ${quote(scope)} is administrative (${reason}); it can never be registered dynamically (use smart-authz clients add)`;
  }
  return undefined;
}

/** A ceiling read back from storage, or undefined when it is not one (fail closed: the caller refuses). */
export function asCeiling(value: unknown): RegistrationCeiling | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const { kinds, scopes } = value as { kinds?: unknown; scopes?: unknown };
  if (!Array.isArray(kinds) || !kinds.every(isSmartClientKind)) return undefined;
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string')) return undefined;
  return { kinds: [...kinds], scopes: [...(scopes as string[])] };
}

/** Client metadata remembering the ceiling a dynamically registered client was registered under. */
export const CEILING_PROPERTY = 'smart_registration_ceiling';

/**
 * Requests (RFC 7591/7592 writes) whose registration policy ran to the end. The metadata validator
 * refuses a dynamic write that is not here, so a token minted without our policy registers nothing.
 */
const policyApplied = new WeakSet<object>();

export function markRegistrationPolicyApplied(ctx: object): void {
  policyApplied.add(ctx);
}

export function registrationPolicyApplied(ctx: unknown): boolean {
  return typeof ctx === 'object' && ctx !== null && policyApplied.has(ctx);
}
