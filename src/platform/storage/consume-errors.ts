import { errors } from 'oidc-provider';

/**
 * The errors `consume` throws, worded as oidc-provider words them for the same situation found
 * sequentially (helpers/grant_source.js, actions/grants/refresh_token.js,
 * actions/authorization/respond.js), so clients and logs see one vocabulary.
 */

const labels: Record<string, string> = {
  AuthorizationCode: 'authorization code',
  RefreshToken: 'refresh token',
  DeviceCode: 'device code',
  BackchannelAuthenticationRequest: 'backchannel authentication request',
  PreAuthorizedCode: 'pre-authorized code',
};

const PAR_MESSAGE = 'request_uri is invalid, expired, or was already used';

function labelOf(model: string): string {
  return labels[model] ?? model;
}

/** Another request consumed the entry first. */
export function alreadyConsumed(model: string): Error {
  if (model === 'PushedAuthorizationRequest') return new errors.InvalidRequestUri(PAR_MESSAGE);
  if (model === 'RefreshToken') return new errors.InvalidGrant('refresh token already used');
  return new errors.InvalidGrant(`${labelOf(model)} already consumed`);
}

/** The entry vanished between oidc-provider's `find` and `consume` (expired, or revoked meanwhile). */
export function consumedEntryMissing(model: string): Error {
  if (model === 'PushedAuthorizationRequest') return new errors.InvalidRequestUri(PAR_MESSAGE);
  return new errors.InvalidGrant(`${labelOf(model)} not found`);
}
