/**
 * Why a client's JWK Set could not be had. Messages start with `jwks_uri <origin+path>` and never
 * carry the query string, credentials, resolved addresses or response bodies: they are logged and
 * may surface as an error cause.
 *
 * `transient` failures (DNS, network, timeout, 5xx, 408/429, a redirect, an unusable body), which
 * a host that is briefly down or in maintenance produces, let a recent cached copy be served
 * instead. The others are answers the host or our policy gave on purpose (a 404, a private
 * address, plain http in production) and are not papered over with stale keys.
 */
export type JwksFetchFailure =
  | 'invalid-url'
  | 'insecure-scheme'
  | 'private-address'
  | 'dns'
  | 'network'
  | 'timeout'
  | 'redirect'
  | 'http-status'
  | 'too-large'
  | 'not-jwks';

const PERMANENT: ReadonlySet<JwksFetchFailure> = new Set(['invalid-url', 'insecure-scheme', 'private-address']);

export class JwksFetchError extends Error {
  override readonly name = 'JwksFetchError';

  readonly transient: boolean;

  constructor(
    readonly failure: JwksFetchFailure,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const { status } = options;
    this.transient =
      !PERMANENT.has(failure) && !(failure === 'http-status' && status !== undefined && status < 500 && status !== 408 && status !== 429);
  }
}

/** The part of a jwks_uri that is safe to print: no credentials, query or fragment. */
export function describeJwksUri(url: URL): string {
  return `jwks_uri ${url.origin}${url.pathname}`;
}
