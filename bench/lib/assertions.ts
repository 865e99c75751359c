// Client assertions as a backend service signs them (RFC 7523, SMART Backend Services): made by
// the load generator before a measured run, one per request, since each jti is single-use.
import { randomUUID, sign } from 'node:crypto';
import { BACKEND_CLIENTS, BACKEND_SCOPE, ISSUER, type ClientKey } from './fixture.js';

const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');

export function assertion(key: ClientKey): string {
  const now = Math.floor(Date.now() / 1000);
  const clientId = BACKEND_CLIENTS[key.alg];
  const input = `${b64({ alg: key.alg, kid: key.kid, typ: 'JWT' })}.${b64({ iss: clientId, sub: clientId, aud: ISSUER, iat: now, exp: now + 240, jti: randomUUID() })}`;
  const signature = sign(
    'sha384',
    Buffer.from(input),
    key.alg === 'ES384' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey,
  );
  return `${input}.${signature.toString('base64url')}`;
}

/** The form body of a client_credentials token request carrying `signed`. */
export function backendBody(signed: string): string {
  return new URLSearchParams({
    grant_type: 'client_credentials',
    scope: BACKEND_SCOPE,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: signed,
  }).toString();
}
