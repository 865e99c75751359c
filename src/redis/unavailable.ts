/**
 * Which Redis errors mean "the store cannot answer right now" (a 503 the client may retry), as
 * opposed to a bug or a bad request (a 500 or a 4xx). Matched by name and message because ioredis
 * reports most of them as plain Errors or as Redis error replies.
 */

/** Thrown by the circuit breaker instead of sending a command to a Redis that stopped answering. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

const NAMES = new Set(['StoreUnavailableError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError']);

const MESSAGES = [
  /^Command timed out/,
  /^Connection is closed/,
  /^Stream isn't writeable/,
  /^Reached the max retries per request limit/,
  /^Failed to refresh slots cache/,
  /^None of startup nodes is available/,
  /^Cluster isn't ready/,
  /^Too many Cluster redirections/,
  /^All sentinels are unreachable/,
  // Redis error replies: the cluster, a replica or a loading server refusing for now.
  /^(CLUSTERDOWN|TRYAGAIN|LOADING|READONLY|MASTERDOWN|NOREPLICAS|BUSY)\b/,
];

export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (NAMES.has(err.name)) return true;
  if (MESSAGES.some((re) => re.test(err.message))) return true;
  // oidc-provider and our own code sometimes wrap the store's error.
  return err.cause !== undefined && err.cause !== err && isStoreUnavailable(err.cause);
}

/** How long a client should wait before retrying a 503 caused by the store. */
export const STORE_RETRY_AFTER_SECONDS = 5;
