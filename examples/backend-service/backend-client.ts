import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, type JWK } from 'jose';

/**
 * A SMART Backend Services client: it signs a short-lived client assertion (RFC 7523, ES384 or
 * RS384) with its private key and exchanges it at the token endpoint for a `system/` access token.
 * The assertion's `aud` is the token endpoint URL, as SMART requires.
 */

export interface BackendClientOptions {
  issuer: string;
  clientId: string;
  /** The client's private JWK (with `kid`); the server holds the public half. */
  privateJwk: JWK;
  scope: string;
  fetch?: typeof fetch;
}

export interface SystemToken {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
}

export async function discoverTokenEndpoint(issuer: string, doFetch: typeof fetch = fetch): Promise<string> {
  const res = await doFetch(`${issuer.replace(/\/+$/, '')}/.well-known/smart-configuration`, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new Error(`SMART discovery at ${issuer} answered ${res.status}`);
  const doc = (await res.json()) as { token_endpoint?: unknown };
  if (typeof doc.token_endpoint !== 'string') throw new Error('SMART discovery has no token_endpoint');
  return doc.token_endpoint;
}

export async function signAssertion(clientId: string, privateJwk: JWK, tokenEndpoint: string): Promise<string> {
  const alg = privateJwk.alg ?? (privateJwk.kty === 'EC' ? 'ES384' : 'RS384');
  if (!privateJwk.kid) throw new Error('the private JWK needs a kid (the server picks the public key by it)');
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', kid: privateJwk.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenEndpoint)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('4m')
    .sign(await importJWK(privateJwk, alg));
}

export async function getSystemToken(opts: BackendClientOptions): Promise<SystemToken> {
  const doFetch = opts.fetch ?? fetch;
  const tokenEndpoint = await discoverTokenEndpoint(opts.issuer, doFetch);
  const res = await doFetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope: opts.scope,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await signAssertion(opts.clientId, opts.privateJwk, tokenEndpoint),
    }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`token request refused (${res.status}): ${String(body.error)}: ${String(body.error_description ?? '')}`);
  return body as unknown as SystemToken;
}
