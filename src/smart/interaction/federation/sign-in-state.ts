import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';
import type { FederationRefusal } from '../../../records/audit/events/federation-events.js';
import type { UpstreamIdentity } from './upstream-identity.js';

/**
 * The server-side memory of a federated sign-in, in two single-use steps:
 *
 * 1. `start`: the `state`, `nonce` and PKCE verifier of one trip to the upstream, bound to the
 *    interaction it started from and the provider it went to, for ten minutes. The callback
 *    takes it (GETDEL): a replayed or unknown `state` finds nothing.
 * 2. `handOver`: what the callback verified, for the interaction page to take within two minutes.
 *    The callback cannot read the interaction (its cookie is scoped to `/interaction/<uid>`), so
 *    the page does, and checks it is the one the sign-in was bound to.
 *
 * Keys hold a digest of the random value, so keys listed from Redis are not usable values.
 */

export interface StartedSignIn {
  uid: string;
  provider: string;
  nonce: string;
  verifier: string;
  /** The app that asked, for the audit trail. */
  clientId?: string;
  /** The app's `max_age`, passed upstream and checked against the upstream `auth_time`. */
  maxAge?: number;
}

export type CallbackOutcome =
  | { kind: 'verified'; identity: UpstreamIdentity }
  | { kind: 'failed'; reason: Extract<FederationRefusal, 'upstream_error' | 'invalid_response'>; upstreamError?: string };

export type HandedOver = { uid: string; provider: string; clientId?: string } & CallbackOutcome;

const STATE_TTL_SECONDS = 600;
const HAND_OVER_TTL_SECONDS = 120;

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

export class FederationStates {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyspace: Keyspace,
  ) {}

  /** Starts a trip upstream; the returned values go into the authorization request. */
  async start(input: Omit<StartedSignIn, 'nonce' | 'verifier'>): Promise<{ state: string; nonce: string; verifier: string }> {
    const state = client.randomState();
    const started: StartedSignIn = { ...input, nonce: client.randomNonce(), verifier: client.randomPKCECodeVerifier() };
    await this.redis.set(this.keyspace.federationState(digest(state)), JSON.stringify(started), 'EX', STATE_TTL_SECONDS);
    return { state, nonce: started.nonce, verifier: started.verifier };
  }

  /** The sign-in a `state` belongs to, once: undefined when unknown, expired or already taken. */
  async take(state: string): Promise<StartedSignIn | undefined> {
    if (!state || state.length > 512) return undefined;
    return parse<StartedSignIn>(await this.redis.getdel(this.keyspace.federationState(digest(state))));
  }

  /** Keeps the callback's outcome for the interaction page; returns the one-time value that names it. */
  async handOver(outcome: HandedOver): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    await this.redis.set(this.keyspace.federationResult(digest(id)), JSON.stringify(outcome), 'EX', HAND_OVER_TTL_SECONDS);
    return id;
  }

  /** The handed-over outcome, once. */
  async takeHandOver(id: string): Promise<HandedOver | undefined> {
    if (!id || id.length > 128) return undefined;
    return parse<HandedOver>(await this.redis.getdel(this.keyspace.federationResult(digest(id))));
  }
}

function parse<T>(json: string | null): T | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}
