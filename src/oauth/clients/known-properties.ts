import { SMART_CLIENT_PROPERTIES } from './smart-metadata.js';

/**
 * Client metadata names a definition may use. oidc-provider silently drops names it does not know,
 * so a typo such as `fhir_server` would quietly widen a client to every FHIR server; definitions
 * from the clients file and the CLI are checked against this list instead.
 */
export const KNOWN_CLIENT_PROPERTIES: ReadonlySet<string> = new Set<string>([
  // RFC 7591 / OIDC Dynamic Client Registration, as oidc-provider recognises them
  'application_type',
  'client_id',
  'client_id_issued_at',
  'client_name',
  'client_secret',
  'client_secret_expires_at',
  'client_uri',
  'contacts',
  'default_acr_values',
  'default_max_age',
  'grant_types',
  'id_token_signed_response_alg',
  'initiate_login_uri',
  'jwks',
  'jwks_uri',
  'logo_uri',
  'policy_uri',
  'post_logout_redirect_uris',
  'redirect_uris',
  'require_auth_time',
  'response_modes',
  'response_types',
  'scope',
  'sector_identifier_uri',
  'subject_type',
  'token_endpoint_auth_method',
  'token_endpoint_auth_signing_alg',
  'tos_uri',
  'introspection_signed_response_alg',
  'userinfo_signed_response_alg',
  'dpop_bound_access_tokens',
  'require_pushed_authorization_requests',
  'software_id',
  'software_version',
  ...SMART_CLIENT_PROPERTIES,
]);
