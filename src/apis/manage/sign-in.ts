import { createHash, randomBytes } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import type { JWKS } from 'oidc-provider';
import { ACR } from '../../domain/authn/assurance.js';
import { ROUTES } from '../../oauth/paths.js';
import type { InProcessRequest, InProcessResponse } from './in-process-http.js';
import { MANAGE_CLIENT_ID, manageRedirectUri } from '../../oauth/clients/manage-client.js';

/**
 * The management page's OpenID Connect sign-in against this server: authorization code with PKCE
 * S256, `state` and `nonce`, all three kept in a short-lived signed cookie between the redirect
 * and the callback; the code is exchanged in-process and the id_token verified with this server's
 * own signing keys before anyone is taken to be signed in.
 */

/** What the browser carries (signed, httpOnly) from the redirect to the callback. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  /** Epoch seconds. */
  exp: number;
  /** The page to return to after signing in (one of the management pages; see MANAGE_RETURN_PAGES). */
  returnTo?: string;
  /**
   * A re-authentication (epoch seconds it was asked for): the id_token must say the person signed
   * in at or after this moment, not that an older sign-in session was reused.
   */
  freshSince?: number;
}

export interface SignedInUser {
  /** The account id (the id_token `sub`). */
  sub: string;
  /** When the person last authenticated (id_token `auth_time`, epoch seconds). */
  authTime?: number;
  /** How (id_token `amr`). */
  amr?: string[];
}

/** Ask the person to sign in again, even with a sign-in session (before their second factors change). */
export interface Reauthentication {
  /** They have a second factor: the sign-in must include it (acr_values AAL2), not a password alone. */
  secondFactor: boolean;
}

export class SignInError extends Error {
  override name = 'SignInError';
}

/** Long enough to sign in, short enough that a stale tab does not resume an old attempt. */
export const PENDING_SECONDS = 600;

const ID_TOKEN_ALGS = ['RS256', 'ES384'];
const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'key_ops', 'n', 'e', 'crv', 'x', 'y'];

function random(): string {
  return randomBytes(32).toString('base64url');
}

/** The public half of the provider's signing keys: what /.well-known/jwks.json serves. */
export function publicJwks(jwks: JWKS): { keys: JWK[] } {
  return {
    keys: jwks.keys.map((k) => Object.fromEntries(Object.entries(k).filter(([name]) => PUBLIC_MEMBERS.includes(name))) as JWK),
  };
}

export function beginSignIn(
  issuer: string,
  now: number = Date.now(),
  reauth?: Reauthentication,
): { pending: PendingSignIn; authorizePath: string } {
  const nowSeconds = Math.floor(now / 1000);
  const pending: PendingSignIn = {
    state: random(),
    nonce: random(),
    verifier: random(),
    exp: nowSeconds + PENDING_SECONDS,
    ...(reauth ? { freshSince: nowSeconds } : {}),
  };
  const query = new URLSearchParams({
    client_id: MANAGE_CLIENT_ID,
    response_type: 'code',
    redirect_uri: manageRedirectUri(issuer),
    scope: 'openid',
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: createHash('sha256').update(pending.verifier).digest('base64url'),
    code_challenge_method: 'S256',
    // prompt=login: the password (and the second factor the acr asks for) again, whatever session there is.
    ...(reauth ? { prompt: 'login' } : {}),
    ...(reauth?.secondFactor ? { acr_values: ACR.aal2 } : {}),
  });
  return { pending, authorizePath: `${ROUTES.authorization}?${query.toString()}` };
}

export interface CompleteDeps {
  issuer: string;
  jwks: JWKS;
  send: (req: InProcessRequest) => Promise<InProcessResponse>;
}

/** Exchanges the code at the token endpoint and verifies the id_token it answers with. */
export async function completeSignIn(deps: CompleteDeps, pending: PendingSignIn, code: string): Promise<SignedInUser> {
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: manageRedirectUri(deps.issuer),
    code_verifier: pending.verifier,
    client_id: MANAGE_CLIENT_ID,
  });
  const res = await deps.send({
    method: 'POST',
    path: ROUTES.token,
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form.toString(),
  });
  let body: { id_token?: unknown; error?: unknown };
  try {
    body = JSON.parse(res.body) as typeof body;
  } catch {
    throw new SignInError(`the token endpoint answered ${res.status} without JSON`);
  }
  if (res.status !== 200 || typeof body.id_token !== 'string') {
    throw new SignInError(
      `the token endpoint refused the code (${res.status} ${typeof body.error === 'string' ? body.error : 'no error code'})`,
    );
  }
  const { payload } = await jwtVerify(body.id_token, createLocalJWKSet(publicJwks(deps.jwks)), {
    issuer: deps.issuer,
    audience: MANAGE_CLIENT_ID,
    algorithms: ID_TOKEN_ALGS,
    clockTolerance: 5,
  }).catch((err: unknown) => {
    throw new SignInError(`the id_token did not verify: ${(err as Error).message}`);
  });
  if (payload.nonce !== pending.nonce) throw new SignInError('the id_token nonce does not match this sign-in');
  if (typeof payload.sub !== 'string' || !payload.sub) throw new SignInError('the id_token names no subject');
  const authTime = typeof payload.auth_time === 'number' ? payload.auth_time : undefined;
  if (pending.freshSince !== undefined && (authTime === undefined || authTime < pending.freshSince - 5)) {
    throw new SignInError('the id_token does not say the person signed in again');
  }
  const amr = Array.isArray(payload.amr) ? payload.amr.filter((m): m is string => typeof m === 'string') : undefined;
  return { sub: payload.sub, ...(authTime !== undefined ? { authTime } : {}), ...(amr ? { amr } : {}) };
}
