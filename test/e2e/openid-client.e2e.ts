import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { calculateJwkThumbprint, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import * as client from 'openid-client';
import type { Browser } from 'playwright-core';
import { getSystemToken, signAssertion } from '../../examples/backend-service/backend-client.js';
import { launchChromium } from './support/browser.js';
import { BrowserSession, authorizeAtRelyingParty } from './support/flows.js';
import { startStack, type Stack } from './support/stack.js';

/**
 * OpenID Connect and OAuth conformance as a certified relying party sees it: `openid-client` (v6)
 * drives the code flow with PKCE (the person signs in and consents in Chromium), validates the
 * id_token, calls userinfo, refreshes and revokes; and runs the SMART Backend Services
 * client_credentials grant with a private_key_jwt assertion. Plain http on localhost needs
 * openid-client's allowInsecureRequests; https-stack.e2e.ts repeats the code flow over TLS.
 */

const RP_ID = 'e2e-rp';
const BACKEND_ID = 'e2e-backend';
let stack: Stack;
let browser: Browser;
let backendKey: { privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey']; publicJwk: JWK; privateJwk: JWK; kid: string };
const insecure = { execute: [client.allowInsecureRequests] };

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  backendKey = {
    privateKey,
    kid,
    publicJwk: { ...publicJwk, kid, alg: 'ES384', use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES384' },
  };
  [stack, browser] = await Promise.all([
    startStack({
      clients: (app) => [
        {
          client_id: RP_ID,
          client_name: 'openid-client relying party',
          smart_client_kind: 'public_app',
          redirect_uris: [`${app}/rp-callback`],
          smart_scopes: ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs'],
        },
        {
          client_id: BACKEND_ID,
          client_name: 'openid-client backend service',
          smart_client_kind: 'backend_service',
          jwks: { keys: [backendKey.publicJwk] },
          token_endpoint_auth_signing_alg: 'ES384',
          smart_scopes: ['system/*.rs'],
        },
      ],
    }),
    launchChromium(),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

async function fhirRead(token: string, path: string): Promise<number> {
  const res = await fetch(`${stack.rs.base}/${path}`, { headers: { Authorization: `Bearer ${token}` } });
  await res.body?.cancel();
  return res.status;
}

describe('openid-client: authorization code flow with PKCE', () => {
  test('code flow, id_token validation, userinfo, refresh and revocation', async () => {
    const config = await client.discovery(new URL(stack.issuer), RP_ID, undefined, client.None(), insecure);
    expect(config.serverMetadata().code_challenge_methods_supported).toEqual(['S256']);

    const redirectUri = `${stack.app.origin}/rp-callback`;
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid fhirUser launch/patient offline_access patient/*.rs',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      aud: stack.rs.base,
    });

    const s = await BrowserSession.open(browser);
    try {
      const callback = await authorizeAtRelyingParty(s, url.href, redirectUri, { userName: 'pat.jones', password: 'demo-pat-jones-2026' });
      s.expectClean();

      const tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      expect(tokens.refresh_token).toEqual(expect.any(String));
      expect(tokens.patient).toBe('pat-jones');

      // openid-client checked iss, aud, exp, iat and nonce; the signature is checked here against
      // the published JWKS as any relying party may.
      const claims = tokens.claims()!;
      expect(claims).toMatchObject({ iss: stack.issuer, aud: RP_ID, nonce });
      expect(claims.fhirUser).toBe(`${stack.rs.base}/Patient/pat-jones`);
      const verified = await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!)), {
        issuer: stack.issuer,
        audience: RP_ID,
      });
      expect(verified.payload.sub).toBe(claims.sub);

      // Userinfo with the SMART access token (bound to the FHIR server): openid-client checks the
      // answer's sub against the id_token's.
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      expect(userinfo).toEqual({ sub: claims.sub, fhirUser: `${stack.rs.base}/Patient/pat-jones` });

      expect(await fhirRead(tokens.access_token, 'Patient/pat-jones')).toBe(200);

      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
      expect(refreshed.access_token).not.toBe(tokens.access_token);
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
      expect(refreshed.patient).toBe('pat-jones');
      expect(await fhirRead(refreshed.access_token, 'Patient/pat-jones')).toBe(200);

      // Revoking the refresh token ends the whole grant: its access token stops working at the
      // FHIR server (which introspects) and the refresh token cannot be used again.
      await client.tokenRevocation(config, refreshed.refresh_token!, { token_type_hint: 'refresh_token' });
      expect(await fhirRead(refreshed.access_token, 'Patient/pat-jones')).toBe(401);
      await expect(client.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      await s.close();
    }
  });
});

describe('openid-client: SMART Backend Services (client_credentials, private_key_jwt ES384)', () => {
  test('a system/ token from a signed assertion made with the library defaults (aud = the issuer)', async () => {
    const auth = client.PrivateKeyJwt({ key: backendKey.privateKey, kid: backendKey.kid });
    const config = await client.discovery(new URL(stack.issuer), BACKEND_ID, { token_endpoint_auth_signing_alg: 'ES384' }, auth, insecure);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'system/Patient.rs system/Observation.rs' });
    expect(tokens.scope?.split(' ').sort()).toEqual(['system/Observation.rs', 'system/Patient.rs']);
    expect(tokens.expires_in).toBeLessThanOrEqual(300);
    expect(tokens.refresh_token).toBeUndefined();
    expect(await fhirRead(tokens.access_token, 'Patient?name=jones')).toBe(200);
    expect(await fhirRead(tokens.access_token, 'Encounter/enc-1')).toBe(403);
  });

  test('the backend-service example gets a token and the example FHIR server honours it', async () => {
    const token = await getSystemToken({
      issuer: stack.issuer,
      clientId: BACKEND_ID,
      privateJwk: backendKey.privateJwk,
      scope: 'system/Patient.rs',
    });
    expect(token.scope).toBe('system/Patient.rs');
    const res = await fetch(`${stack.rs.base}/Patient?name=jones`, { headers: { Authorization: `Bearer ${token.access_token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ resourceType: 'Bundle', total: 2 });
  });
});

describe('the example resource server enforces what introspection says', () => {
  async function systemToken(scope: string): Promise<string> {
    return (await getSystemToken({ issuer: stack.issuer, clientId: BACKEND_ID, privateJwk: backendKey.privateJwk, scope })).access_token;
  }

  async function outcome(token: string | undefined, path: string): Promise<{ status: number; code?: string; challenge: string | null }> {
    const res = await fetch(`${stack.rs.base}/${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    const body = (await res.json()) as { resourceType: string; issue?: { code: string }[] };
    if (res.status >= 400) expect(body.resourceType).toBe('OperationOutcome');
    return { status: res.status, ...(body.issue ? { code: body.issue[0]!.code } : {}), challenge: res.headers.get('www-authenticate') };
  }

  test('401 without a token or with an unknown one; 403 outside the scopes; v1 and v2 read vs search', async () => {
    expect(await outcome(undefined, 'Patient/pat-jones')).toEqual({ status: 401, code: 'login', challenge: 'Bearer' });
    expect(await outcome('not-a-token', 'Patient/pat-jones')).toEqual({
      status: 401,
      code: 'login',
      challenge: 'Bearer error="invalid_token"',
    });

    const readOnly = await systemToken('system/Patient.r');
    expect((await outcome(readOnly, 'Patient/alex-rivera')).status).toBe(200);
    expect(await outcome(readOnly, 'Patient?name=rivera')).toEqual({
      status: 403,
      code: 'forbidden',
      challenge: 'Bearer error="insufficient_scope"',
    });

    const searchOnly = await systemToken('system/Patient.s');
    expect((await outcome(searchOnly, 'Patient?name=rivera')).status).toBe(200);
    expect((await outcome(searchOnly, 'Patient/alex-rivera')).status).toBe(403);

    const v1 = await systemToken('system/Patient.read');
    expect((await outcome(v1, 'Patient/alex-rivera')).status).toBe(200);
    expect((await outcome(v1, 'Patient?birthdate=1972')).status).toBe(200);
    expect((await outcome(v1, 'Encounter/enc-1')).status).toBe(403);

    const wildcard = await systemToken('system/*.rs');
    expect((await outcome(wildcard, 'Encounter?patient=pat-jones')).status).toBe(200);
    expect((await outcome(wildcard, 'Patient/nobody')).status).toBe(404);
    expect((await outcome(wildcard, 'Patient?colour=blue')).status).toBe(400);

    // Revoked: the very next request is refused (nothing is cached).
    const revoke = await fetch(`${stack.issuer}/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: wildcard,
        client_id: BACKEND_ID,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await signAssertion(BACKEND_ID, backendKey.privateJwk, `${stack.issuer}/revoke`),
      }),
    });
    expect(revoke.status).toBe(200);
    expect((await outcome(wildcard, 'Encounter?patient=pat-jones')).status).toBe(401);
  });
});
