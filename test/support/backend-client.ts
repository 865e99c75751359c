import { randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { TestApp } from './test-app.js';

export interface BackendKey {
  alg: 'RS384' | 'ES384' | 'RS256' | 'ES256';
  publicJwk: JWK;
  privateJwk: JWK;
  kid: string;
}

export async function backendKey(alg: BackendKey['alg']): Promise<BackendKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  return { alg, kid, publicJwk: { ...pub, kid, alg }, privateJwk: { ...(await exportJWK(privateKey)), kid, alg } };
}

export interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number | null;
  jti?: string | null;
  kid?: string | null;
  alg?: string;
  header?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

export async function signAssertion(key: BackendKey, clientId: string, audience: string, o: AssertionOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { iss: o.iss ?? clientId, sub: o.sub ?? clientId, aud: o.aud ?? audience, iat: now, ...o.extra };
  if (o.exp !== null) payload.exp = o.exp ?? now + 240;
  if (o.jti !== null) payload.jti = o.jti ?? randomUUID();
  const header: Record<string, unknown> = { alg: o.alg ?? key.alg, typ: 'JWT', ...o.header };
  if (o.kid !== null) header.kid = o.kid ?? key.kid;
  const jwt = new SignJWT(payload).setProtectedHeader(header as { alg: string });
  return jwt.sign(await importJWK(key.privateJwk, o.alg ?? key.alg));
}

export async function registerBackend(
  t: TestApp,
  clientId: string,
  keys: BackendKey[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  await t.registry.upsert({
    client_id: clientId,
    smart_client_kind: 'backend_service',
    jwks: { keys: keys.map((k) => k.publicJwk) },
    smart_scopes: ['system/*.rs'],
    ...extra,
  });
}

export function tokenRequest(t: TestApp, assertion: string, form: Record<string, string> = {}) {
  return t.request
    .post('/token')
    .type('form')
    .send({
      grant_type: 'client_credentials',
      scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      ...form,
    });
}
