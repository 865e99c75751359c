import { errors } from 'oidc-provider';
import { clientJwksProblem } from './client-keys.js';
import { KIND_RULES, SMART_CLIENT_KINDS, isSmartClientKind, type SmartClientKind } from './client-kinds.js';
import { parseScopePattern } from './scope-patterns.js';
import { isEmergencyPurpose, isPurpose } from '../../domain/hcs/vocabulary.js';
import { listPermits } from '../../domain/hcs/policy.js';
import { asCeiling, registrationPolicyApplied } from './registration-policy.js';

/**
 * SMART client metadata, validated by oidc-provider's `extraClientMetadata.validator` hook so the
 * same rules apply to every way a client arrives: dynamic registration, clients read back through
 * the adapter, the clients file and the CLI (the last two call `provider.Client.validate`).
 *
 * oidc-provider calls the validator once per property, in this order, on the schema object after
 * its defaults are merged but before its own checks; so `metadata` values may still be of any type
 * and are checked defensively here. `smart_client_kind` comes first and carries every rule that
 * spans several properties (kind vs auth method and grants, keys, redirect URIs), so they run once
 * for every client whatever else is present.
 */
export const SMART_CLIENT_PROPERTIES = [
  'smart_client_kind',
  'smart_scopes',
  'fhir_servers',
  'launch_url',
  'purposes_of_use',
  'default_purposes_of_use',
  'test_account',
  'jku_allowlist',
  'smart_remember_consent',
  // The ceiling of kinds and scopes a dynamically registered client stays within (registration-policy.ts).
  'smart_registration_ceiling',
] as const;

export interface ClientMetadataPolicy {
  production: boolean;
  clientAuthSigningAlgs: string[];
  fhirBases: string[];
}

/** oidc-provider's routes that write client metadata from an RFC 7591/7592 request. */
const DYNAMIC_WRITE_ROUTES = new Set(['registration', 'client_update']);

function routeOf(ctx: unknown): string | undefined {
  return (ctx as { oidc?: { route?: unknown } } | undefined)?.oidc?.route as string | undefined;
}

export type ClientMetadataValidator = (ctx: unknown, key: string, value: unknown, metadata: Record<string, unknown>) => void;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function fail(description: string): never {
  throw new errors.InvalidClientMetadata(description);
}

function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

function stringArray(field: string, value: unknown): string[] {
  if (!Array.isArray(value)) fail(`${field} must be an array of strings`);
  value.forEach((v, i) => {
    if (typeof v !== 'string' || !v) fail(`${field}[${i}] must be a non-empty string`);
  });
  return value as string[];
}

function sameList(actual: unknown, expected: readonly string[]): boolean {
  return Array.isArray(actual) && actual.length === expected.length && expected.every((v) => actual.includes(v));
}

export function normaliseFhirBase(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

/** https, or http on a loopback host outside production; never a fragment. */
function checkServiceUrl(field: string, value: unknown, production: boolean, allowLoopbackHttp = true): URL {
  if (typeof value !== 'string') fail(`${field} must be a string URL`);
  const url = URL.parse(value);
  if (!url) fail(`${field} must be an absolute URL`);
  if (url.hash || value.includes('#')) fail(`${field} must not contain a fragment`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && allowLoopbackHttp && !production && LOOPBACK_HOSTS.has(url.hostname)) return url;
  fail(`${field} must use https${allowLoopbackHttp && !production ? ' (http only for localhost or 127.0.0.1 outside production)' : ''}`);
}

function checkKindAgainstOAuth(kind: SmartClientKind, m: Record<string, unknown>): void {
  const rules = KIND_RULES[kind];
  const method = m.token_endpoint_auth_method;
  if (typeof method !== 'string' || !rules.authMethods.includes(method)) {
    fail(
      `token_endpoint_auth_method must be ${rules.authMethods.map((a) => `"${a}"`).join(' or ')} for ${kind} clients (got ${quote(method)})`,
    );
  }
  const grants = m.grant_types;
  const responses = m.response_types;
  if (!Array.isArray(grants)) fail('grant_types must be an array');
  if (!Array.isArray(responses)) fail('response_types must be an array');
  const redirects = m.redirect_uris;
  switch (rules.flow) {
    case 'app':
      if (!grants.includes('authorization_code') || grants.some((g) => g !== 'authorization_code' && g !== 'refresh_token')) {
        fail(`grant_types for ${kind} clients must be authorization_code, optionally with refresh_token (got ${quote(grants)})`);
      }
      if (!sameList(responses, ['code'])) fail(`response_types for ${kind} clients must be ["code"] (got ${quote(responses)})`);
      break;
    case 'client_credentials':
      if (!sameList(grants, ['client_credentials']))
        fail(`grant_types for ${kind} clients must be exactly ["client_credentials"] (got ${quote(grants)})`);
      if (responses.length) fail(`response_types for ${kind} clients must be empty (got ${quote(responses)})`);
      if (Array.isArray(redirects) && redirects.length) fail(`redirect_uris must be empty for ${kind} clients`);
      break;
    case 'none':
      if (grants.length)
        fail(`grant_types for ${kind} clients must be empty: a resource server is never issued tokens (got ${quote(grants)})`);
      if (responses.length) fail(`response_types for ${kind} clients must be empty (got ${quote(responses)})`);
      if (Array.isArray(redirects) && redirects.length) fail(`redirect_uris must be empty for ${kind} clients`);
      break;
  }
}

function checkKeys(kind: SmartClientKind, m: Record<string, unknown>, policy: ClientMetadataPolicy): void {
  const { jwks, jwks_uri: jwksUri } = m;
  const keyed = m.token_endpoint_auth_method === 'private_key_jwt';
  if (jwks !== undefined && jwksUri !== undefined) fail('jwks and jwks_uri must not both be given; register one of them');
  if (keyed && jwks === undefined && jwksUri === undefined) {
    fail(`jwks or jwks_uri is required for ${kind} clients using private_key_jwt`);
  }
  if (!keyed && (jwks !== undefined || jwksUri !== undefined)) {
    fail(`jwks/jwks_uri are only used with private_key_jwt; token_endpoint_auth_method is ${quote(m.token_endpoint_auth_method)}`);
  }
  if (jwks !== undefined) {
    const problem = clientJwksProblem(jwks, policy.clientAuthSigningAlgs);
    if (problem) fail(problem);
  }
  if (jwksUri !== undefined) checkServiceUrl('jwks_uri', jwksUri, policy.production);
  const alg = m.token_endpoint_auth_signing_alg;
  if (alg !== undefined) {
    if (!keyed) fail('token_endpoint_auth_signing_alg is only used with private_key_jwt');
    if (typeof alg !== 'string' || !policy.clientAuthSigningAlgs.includes(alg)) {
      fail(`token_endpoint_auth_signing_alg must be one of ${policy.clientAuthSigningAlgs.join(', ')} (got ${quote(alg)})`);
    }
  }
}

/** RFC 8252: native public apps may use loopback http or a private-use scheme; everything else https. */
function checkRedirectUris(kind: SmartClientKind, m: Record<string, unknown>, production: boolean): void {
  if (m.redirect_uris === undefined) return;
  const uris = stringArray('redirect_uris', m.redirect_uris);
  const nativePublic = kind === 'public_app' && m.application_type === 'native';
  uris.forEach((uri, i) => {
    const field = `redirect_uris[${i}]`;
    const url = URL.parse(uri);
    if (!url) fail(`${field} must be an absolute URI`);
    if (url.hash || uri.includes('#')) fail(`${field} must not contain a fragment`);
    if (!production || url.protocol === 'https:') return;
    if (nativePublic && url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return;
    if (nativePublic && url.protocol !== 'http:') return;
    fail(
      `${field} must use https in production${kind === 'public_app' ? ' (native apps may use http on a loopback address or a private-use scheme)' : ''}`,
    );
  });
}

function checkScopes(kind: SmartClientKind, value: unknown, m: Record<string, unknown>): void {
  if (value === undefined) {
    if (kind === 'resource_server') {
      m.smart_scopes = [];
      return;
    }
    fail(`smart_scopes is required for ${kind} clients: list the scope patterns it may be granted (e.g. "patient/*.rs")`);
  }
  const scopes = stringArray('smart_scopes', value);
  if (kind === 'resource_server') {
    if (scopes.length) fail('smart_scopes must be empty for resource_server clients: they are never issued tokens');
    return;
  }
  if (!scopes.length) fail(`smart_scopes must list at least one scope for ${kind} clients`);
  scopes.forEach((scope, i) => {
    const field = `smart_scopes[${i}] ${quote(scope)}`;
    const parsed = parseScopePattern(scope);
    if ('problem' in parsed) fail(`${field} ${parsed.problem}`);
    if (parsed.kind === 'admin') {
      if (kind !== 'backend_service') fail(`${field} is not allowed: only backend_service clients may have administration scopes`);
      return;
    }
    if (kind === 'backend_service' && (parsed.kind !== 'resource' || parsed.context !== 'system')) {
      fail(`${field} is not allowed: backend_service clients may only have system/ scopes`);
    }
    if (kind === 'public_app' && parsed.kind === 'resource' && parsed.context === 'system') {
      fail(`${field} is not allowed: public_app clients may not have system/ scopes`);
    }
  });
  m.smart_scopes = [...new Set(scopes)];
}

function checkFhirServers(value: unknown, m: Record<string, unknown>, policy: ClientMetadataPolicy): void {
  const known = policy.fhirBases.map(normaliseFhirBase);
  if (value === undefined) {
    m.fhir_servers = known;
    return;
  }
  const servers = stringArray('fhir_servers', value);
  if (!servers.length) fail('fhir_servers must list at least one FHIR base URL (omit it to allow all configured servers)');
  const normalised = servers.map((s, i) => {
    const base = normaliseFhirBase(s);
    if (!known.includes(base))
      fail(`fhir_servers[${i}] ${quote(s)} is not a FHIR server of this authorization server (known: ${known.join(', ')})`);
    return base;
  });
  m.fhir_servers = [...new Set(normalised)];
}

export function createClientMetadataValidator(policy: ClientMetadataPolicy): ClientMetadataValidator {
  return (ctx, key, value, metadata) => {
    const kind = metadata.smart_client_kind;
    switch (key) {
      case 'smart_client_kind': {
        // Fail closed: a dynamic write gets here only after our registration policy bounded it
        // (clients/registration-http.ts); an initial access token minted without it registers nothing.
        const route = routeOf(ctx);
        if (route !== undefined && DYNAMIC_WRITE_ROUTES.has(route) && !registrationPolicyApplied(ctx)) {
          fail(
            'this registration is not bound to a registration policy; ask the operator for an initial access token from "smart-authz registration token"',
          );
        }
        if (value === undefined) fail(`smart_client_kind is required: one of ${SMART_CLIENT_KINDS.join(', ')}`);
        if (!isSmartClientKind(value)) fail(`smart_client_kind ${quote(value)} is not known: use one of ${SMART_CLIENT_KINDS.join(', ')}`);
        checkKindAgainstOAuth(value, metadata);
        checkKeys(value, metadata, policy);
        checkRedirectUris(value, metadata, policy.production);
        return;
      }
      case 'smart_scopes':
        // Runs after smart_client_kind, which has already failed unless the kind is valid.
        if (isSmartClientKind(kind)) checkScopes(kind, value, metadata);
        return;
      case 'fhir_servers':
        checkFhirServers(value, metadata, policy);
        return;
      case 'launch_url':
        if (value === undefined) return;
        if (isSmartClientKind(kind) && !KIND_RULES[kind].launchable)
          fail(`launch_url is only for apps launched from the EHR, not ${kind} clients`);
        checkServiceUrl('launch_url', value, policy.production);
        return;
      case 'purposes_of_use':
        if (value === undefined) return;
        stringArray('purposes_of_use', value).forEach((code, i) => {
          if (!isPurpose(code)) fail(`purposes_of_use[${i}] ${quote(code)} must be a v3-PurposeOfUse code like TREAT or HPAYMT`);
        });
        return;
      case 'default_purposes_of_use': {
        // What tokens assert when a request names no purpose: never an emergency (that needs a
        // person and a reason), and within purposes_of_use when the client registers those.
        if (value === undefined) return;
        const registered = Array.isArray(metadata.purposes_of_use) ? (metadata.purposes_of_use as string[]) : undefined;
        stringArray('default_purposes_of_use', value).forEach((code, i) => {
          if (!isPurpose(code)) fail(`default_purposes_of_use[${i}] ${quote(code)} must be a v3-PurposeOfUse code like TREAT or HPAYMT`);
          if (isEmergencyPurpose(code))
            fail(
              `default_purposes_of_use[${i}] ${quote(code)} is an emergency purpose: break the glass is asserted per request, never by default`,
            );
          if (registered && !listPermits(registered, code, true))
            fail(`default_purposes_of_use[${i}] ${quote(code)} is not among purposes_of_use`);
        });
        return;
      }
      case 'test_account':
        if (value !== undefined && typeof value !== 'boolean') fail('test_account must be true or false');
        return;
      case 'smart_remember_consent':
        // Absent means true: a patient's active consent spares them the page for the same app and
        // patient (smart/interaction/consent/consent-gate.ts); false asks every time.
        if (value !== undefined && typeof value !== 'boolean') fail('smart_remember_consent must be true or false');
        return;
      case 'smart_registration_ceiling':
        if (value !== undefined && !asCeiling(value))
          fail('smart_registration_ceiling must be {"kinds": [SMART client kinds], "scopes": [scope patterns]}');
        return;
      case 'jku_allowlist':
        if (value === undefined) return;
        stringArray('jku_allowlist', value).forEach((url, i) => checkServiceUrl(`jku_allowlist[${i}]`, url, policy.production, false));
        return;
      default:
        return;
    }
  };
}
