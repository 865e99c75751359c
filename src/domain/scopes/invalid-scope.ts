import { errors } from 'oidc-provider';

/**
 * RFC 6749 §5.2 and §4.1.2.1 error responses are `error`, `error_description` and `error_uri` (plus
 * `state`); oidc-provider adds a `scope` member whenever it is given one, even an empty one, so
 * none is given: the description names the scopes.
 */
export function invalidScope(description: string): InstanceType<typeof errors.InvalidScope> {
  return new errors.InvalidScope(description, undefined as unknown as string);
}
