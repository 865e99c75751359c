/**
 * The six kinds of SMART client and the OAuth metadata each implies. A kind fixes how the client
 * authenticates and which grants it may use, so a registration cannot, say, give a backend service
 * an authorization-code flow or a public app client_credentials.
 */

export const SMART_CLIENT_KINDS = [
  'public_app',
  'confidential_symmetric',
  'confidential_asymmetric',
  'backend_service',
  'resource_server',
  'ehr_launcher',
] as const;

export type SmartClientKind = (typeof SMART_CLIENT_KINDS)[number];

/** `app`: authorization code (+ refresh); `client_credentials`: only that; `none`: no grants at all. */
export type KindFlow = 'app' | 'client_credentials' | 'none';

export interface KindRules {
  authMethods: readonly string[];
  flow: KindFlow;
  /** May hold a launch_url (the app is launched from the EHR). */
  launchable: boolean;
}

export const KIND_RULES: Readonly<Record<SmartClientKind, KindRules>> = {
  public_app: { authMethods: ['none'], flow: 'app', launchable: true },
  confidential_symmetric: { authMethods: ['client_secret_basic', 'client_secret_post'], flow: 'app', launchable: true },
  confidential_asymmetric: { authMethods: ['private_key_jwt'], flow: 'app', launchable: true },
  backend_service: { authMethods: ['private_key_jwt'], flow: 'client_credentials', launchable: false },
  resource_server: { authMethods: ['client_secret_basic', 'private_key_jwt'], flow: 'none', launchable: false },
  ehr_launcher: { authMethods: ['client_secret_basic', 'private_key_jwt'], flow: 'client_credentials', launchable: false },
};

export function isSmartClientKind(value: unknown): value is SmartClientKind {
  return typeof value === 'string' && (SMART_CLIENT_KINDS as readonly string[]).includes(value);
}

/** Auth methods that authenticate with a client secret (stored hashed). */
export function usesClientSecret(method: unknown): boolean {
  return method === 'client_secret_basic' || method === 'client_secret_post';
}

const FLOW_DEFAULTS: Readonly<Record<KindFlow, { grant_types: string[]; response_types: string[] }>> = {
  app: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] },
  client_credentials: { grant_types: ['client_credentials'], response_types: [] },
  none: { grant_types: [], response_types: [] },
};

/**
 * Fills the OAuth metadata a kind implies where the caller left it out; values the caller gave are
 * kept (validation then says precisely if they contradict the kind). Kinds that may authenticate
 * either way use private_key_jwt when keys are given, else client_secret_basic.
 */
export function applyKindDefaults(input: Record<string, unknown>): Record<string, unknown> {
  const out = { ...input };
  const kind = out.smart_client_kind;
  if (!isSmartClientKind(kind)) return out;
  const rules = KIND_RULES[kind];
  const defaults = FLOW_DEFAULTS[rules.flow];
  out.grant_types ??= [...defaults.grant_types];
  out.response_types ??= [...defaults.response_types];
  if (out.token_endpoint_auth_method === undefined) {
    const hasKeys = out.jwks !== undefined || out.jwks_uri !== undefined;
    out.token_endpoint_auth_method =
      rules.authMethods.length === 1
        ? rules.authMethods[0]
        : hasKeys && rules.authMethods.includes('private_key_jwt')
          ? 'private_key_jwt'
          : rules.authMethods[0];
  }
  if (rules.flow !== 'app') out.redirect_uris ??= [];
  if (kind === 'resource_server') out.smart_scopes ??= [];
  return out;
}

/** RFC 7591 §2: what a registration that leaves these out asks for. */
const RFC7591_DEFAULT_AUTH_METHOD = 'client_secret_basic';
const RFC7591_DEFAULT_GRANTS: readonly string[] = ['authorization_code'];

const APP_KIND_BY_AUTH_METHOD: Readonly<Record<string, SmartClientKind>> = {
  none: 'public_app',
  client_secret_basic: 'confidential_symmetric',
  client_secret_post: 'confidential_symmetric',
  private_key_jwt: 'confidential_asymmetric',
};

export type KindInference = { kind: SmartClientKind; basis: string } | { problem: string };

const HOW_TO_NAME_A_KIND =
  'send smart_client_kind, or token_endpoint_auth_method "none", "client_secret_basic", "client_secret_post" or "private_key_jwt" with grant_types ["authorization_code"] (optionally with "refresh_token") for an app, or "private_key_jwt" with grant_types ["client_credentials"] for a backend service';

/**
 * The SMART kind standard RFC 7591 / OpenID registration metadata names, for registrants (OpenID
 * dynamic-registration clients) that do not know `smart_client_kind`. Absent members take their
 * RFC 7591 defaults, so a bare registration is a confidential app with a secret, as the RFC says.
 * Only the four unambiguous shapes map to a kind; anything else (a resource server, an EHR
 * launcher, a mix of flows) must say which kind it is.
 */
export function inferKind(metadata: Record<string, unknown>): KindInference {
  const method = metadata.token_endpoint_auth_method ?? RFC7591_DEFAULT_AUTH_METHOD;
  const grants = metadata.grant_types ?? RFC7591_DEFAULT_GRANTS;
  const basis = `token_endpoint_auth_method ${JSON.stringify(method)} and grant_types ${JSON.stringify(grants)}`;
  const unknown = (): KindInference => ({
    problem: `smart_client_kind is missing and ${basis} name no single SMART client kind: ${HOW_TO_NAME_A_KIND}`,
  });
  if (typeof method !== 'string' || !Array.isArray(grants) || !grants.every((g) => typeof g === 'string')) return unknown();
  const grantSet = new Set(grants as string[]);
  const appFlow = grantSet.has('authorization_code') && [...grantSet].every((g) => g === 'authorization_code' || g === 'refresh_token');
  if (appFlow && Object.hasOwn(APP_KIND_BY_AUTH_METHOD, method)) return { kind: APP_KIND_BY_AUTH_METHOD[method]!, basis };
  if (method === 'private_key_jwt' && grantSet.size === 1 && grantSet.has('client_credentials')) return { kind: 'backend_service', basis };
  return unknown();
}
