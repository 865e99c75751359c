import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Adapter } from 'oidc-provider';
import type { RedisClient } from '../../platform/redis/connection.js';
import type { Keyspace } from '../../platform/redis/keyspace.js';
import { verifyClientSecret } from '../clients/secrets.js';
import { claimOnce } from '../../platform/storage/claim-once.js';
import { assertionProblem, jtiMemorySeconds } from '../backend/assertion-rules.js';
import type { ClientCache } from '../clients/client-cache.js';
import { CLOCK_TOLERANCE_SECONDS } from '../backend/client-assertion-hook.js';
import type { JwksFetcher } from '../backend/jwks-fetch.js';

export type ClientRecord = Record<string, unknown> & { client_id: string };

/** An authentication failure; `problem` names the rule for the 401's error_description. */
export class CallerAuthError extends Error {
  constructor(readonly problem: string) {
    super(problem);
  }
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * Client authentication for our own endpoints (introspection and JWT revocation), with the same
 * rules oidc-provider applies at /token: client_secret_basic/post against the stored SHA-256
 * hash, or a SMART private_key_jwt assertion. Client records are cached behind the invalidation
 * feed (oauth/clients/client-cache.ts): a rotated secret or a removed client stops working on
 * every instance as soon as the change is announced. Parsed inline key sets are cached per client
 * record; `jwks_uri` sets come from the fetcher's cache.
 */
export class CallerAuthenticator {
  private readonly keySets = new WeakMap<ClientRecord, JWTVerifyGetKey>();

  constructor(
    private readonly deps: {
      clientAdapter: Adapter;
      /** Records read through `clientAdapter`, kept until a client write is announced. */
      records: ClientCache<ClientRecord>;
      redis: RedisClient;
      keyspace: Keyspace;
      fetcher: JwksFetcher;
      issuer: string;
      algorithms: string[];
    },
  ) {}

  client(id: string): Promise<ClientRecord | undefined> {
    return this.deps.records.get(id, async (key) => (await this.deps.clientAdapter.find(key)) as ClientRecord | undefined);
  }

  /** Authenticates the caller of `endpointUrl` from the Authorization header and form fields. */
  async authenticate(authorization: string | undefined, form: URLSearchParams, endpointUrl: string): Promise<ClientRecord> {
    const basic = /^Basic\s+(.+)$/i.exec(authorization ?? '');
    const assertion = form.get('client_assertion');
    const postedSecret = form.get('client_secret');
    const mechanisms = [basic, assertion, postedSecret].filter((m) => m !== null && m !== undefined).length;
    if (mechanisms === 0) throw new CallerAuthError('client authentication is required (client_secret_basic or private_key_jwt)');
    if (mechanisms > 1) throw new CallerAuthError('use exactly one client authentication mechanism');

    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new CallerAuthError('malformed Basic credentials');
      // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
      const id = safeDecode(decoded.slice(0, colon));
      const secret = safeDecode(decoded.slice(colon + 1));
      return this.bySecret(id, secret, 'client_secret_basic');
    }
    if (postedSecret !== null) return this.bySecret(form.get('client_id') ?? '', postedSecret, 'client_secret_post');
    if (form.get('client_assertion_type') !== JWT_BEARER) throw new CallerAuthError(`client_assertion_type must be ${JWT_BEARER}`);
    return this.byAssertion(assertion!, form.get('client_id'), endpointUrl);
  }

  private async bySecret(id: string, secret: string, method: string): Promise<ClientRecord> {
    const client = id ? await this.client(id) : undefined;
    // Same work whether or not the client exists, so timing does not reveal client ids.
    const ok = verifyClientSecret(client?.client_secret ?? 'sha256$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', secret);
    if (!client || !ok) throw new CallerAuthError('invalid client credentials');
    if (client.token_endpoint_auth_method !== method)
      throw new CallerAuthError(`this client is registered for ${String(client.token_endpoint_auth_method)}`);
    return client;
  }

  private async byAssertion(assertion: string, clientIdParam: string | null, endpointUrl: string): Promise<ClientRecord> {
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(assertion);
    } catch {
      throw new CallerAuthError('client_assertion is not a JWT');
    }
    const id = typeof claims.iss === 'string' ? claims.iss : '';
    if (clientIdParam !== null && clientIdParam !== id) throw new CallerAuthError('client_id does not match the assertion iss');
    const client = id ? await this.client(id) : undefined;
    if (!client) throw new CallerAuthError('unknown client');
    if (client.token_endpoint_auth_method !== 'private_key_jwt')
      throw new CallerAuthError(`this client is registered for ${String(client.token_endpoint_auth_method)}`);
    const algorithms =
      typeof client.token_endpoint_auth_signing_alg === 'string' ? [client.token_endpoint_auth_signing_alg] : this.deps.algorithms;

    let verified: { payload: Record<string, unknown>; protectedHeader: Record<string, unknown> };
    try {
      verified = (await jwtVerify(assertion, await this.keySet(client), {
        algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      })) as typeof verified;
    } catch (err) {
      throw new CallerAuthError(describeJoseError(err, algorithms));
    }
    const now = Math.floor(Date.now() / 1000);
    const problem = assertionProblem({
      claims: verified.payload,
      header: verified.protectedHeader,
      client: {
        clientId: client.client_id,
        jwksUri: client.jwks_uri as string | undefined,
        jkuAllowlist: client.jku_allowlist as string[] | undefined,
      },
      audiences: [`${this.deps.issuer}/token`, this.deps.issuer, endpointUrl],
      now,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    if (problem) throw new CallerAuthError(problem);
    const exp = verified.payload.exp as number;
    const first = await claimOnce(
      this.deps.redis,
      this.deps.keyspace,
      'client-assertion',
      `${client.client_id}\n${verified.payload.jti as string}`,
      jtiMemorySeconds(exp, now, CLOCK_TOLERANCE_SECONDS),
    );
    if (!first) throw new CallerAuthError('client assertion tokens must only be used once');
    return client;
  }

  private async keySet(client: ClientRecord): Promise<JWTVerifyGetKey> {
    if (typeof client.jwks_uri === 'string') {
      const uri = client.jwks_uri;
      const fetcher = this.deps.fetcher;
      // Unknown kid: the fetcher re-fetches once (rate limited) before we give up.
      return async (header) => {
        const key = header.kid ? await fetcher.findKey(uri, header.kid) : undefined;
        if (!key) throw new CallerAuthError("no key in the client's registered key set matches the assertion (kid/alg)");
        return createLocalJWKSet({ keys: [key] })(header, undefined as never);
      };
    }
    let set = this.keySets.get(client);
    if (!set) {
      set = createLocalJWKSet((client.jwks ?? { keys: [] }) as JSONWebKeySet);
      this.keySets.set(client, set);
    }
    return set;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function describeJoseError(err: unknown, algorithms: string[]): string {
  if (err instanceof CallerAuthError) return err.problem;
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return `the signing algorithm is not allowed (allowed: ${algorithms.join(', ')})`;
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return "no key in the client's registered key set matches the assertion (kid/alg)";
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the client assertion signature is invalid';
    case 'ERR_JWT_EXPIRED':
      return 'the client assertion has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `the client assertion claim check failed: ${(err as Error).message}`;
    default:
      return 'the client assertion could not be verified';
  }
}
