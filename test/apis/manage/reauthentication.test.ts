import { importJWK, SignJWT, type JWK } from 'jose';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { ACR } from '../../../src/domain/authn/assurance.js';
import { MANAGE_CLIENT_ID } from '../../../src/oauth/clients/manage-client.js';
import { beginSignIn, completeSignIn, SignInError } from '../../../src/apis/manage/sign-in.js';
import { isRecentEnough, RECENT_SIGN_IN_SECONDS } from '../../../src/apis/manage/recent-sign-in.js';

/**
 * The management page's re-authentication, unit by unit: what it asks the authorization endpoint
 * for, and that an id_token reusing an older sign-in does not pass for a new one (the whole flow
 * runs in account-security.test.ts). The id_tokens are signed with the test app's own keys.
 */

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

/** The token endpoint answering with an id_token saying these things, signed by this server's RS256 key. */
async function tokenEndpointSaying(claims: Record<string, unknown>) {
  const jwks = await t.keystore.providerJwks();
  const key = jwks.keys.find((k) => k.kty === 'RSA') as JWK & { kid: string };
  const idToken = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: key.kid })
    .setIssuer(t.config.issuer)
    .setAudience(MANAGE_CLIENT_ID)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(await importJWK(key, 'RS256'));
  return {
    deps: { issuer: t.config.issuer, jwks, send: async () => ({ status: 200, headers: {}, body: JSON.stringify({ id_token: idToken }) }) },
  };
}

describe('re-authentication', () => {
  test('asks for prompt=login, and acr_values AAL2 only for a person with a second factor', () => {
    const plain = new URL(beginSignIn(t.config.issuer).authorizePath, t.config.issuer);
    expect(plain.searchParams.has('prompt')).toBe(false);
    const again = beginSignIn(t.config.issuer, Date.now(), { secondFactor: false });
    const url = new URL(again.authorizePath, t.config.issuer);
    expect(url.searchParams.get('prompt')).toBe('login');
    expect(url.searchParams.has('acr_values')).toBe(false);
    expect(again.pending.freshSince).toBe(Math.floor(Date.now() / 1000));
    const withFactor = new URL(beginSignIn(t.config.issuer, Date.now(), { secondFactor: true }).authorizePath, t.config.issuer);
    expect(withFactor.searchParams.get('acr_values')).toBe(ACR.aal2);
  });

  test('an id_token whose auth_time is before the re-authentication was asked for is refused', async () => {
    const { pending } = beginSignIn(t.config.issuer, Date.now(), { secondFactor: true });
    const now = Math.floor(Date.now() / 1000);
    const old = await tokenEndpointSaying({ sub: 'u1', nonce: pending.nonce, auth_time: now - 3600, amr: ['pwd', 'otp', 'mfa'] });
    await expect(completeSignIn(old.deps, pending, 'code')).rejects.toThrow(SignInError);
    const none = await tokenEndpointSaying({ sub: 'u1', nonce: pending.nonce });
    await expect(completeSignIn(none.deps, pending, 'code')).rejects.toThrow(SignInError);
    const fresh = await tokenEndpointSaying({ sub: 'u1', nonce: pending.nonce, auth_time: now, amr: ['pwd', 'otp', 'mfa'] });
    expect(await completeSignIn(fresh.deps, pending, 'code')).toEqual({ sub: 'u1', authTime: now, amr: ['pwd', 'otp', 'mfa'] });
  });

  test('recent enough: within ten minutes of authenticating, with the second factor when the person has one', () => {
    const now = 1_000_000;
    const session = { sid: 's', sub: 'u', exp: now + 3600 };
    expect(isRecentEnough({ ...session, authTime: now - 60, amr: ['pwd'] }, false, now)).toBe(true);
    expect(isRecentEnough({ ...session, authTime: now - 60, amr: ['pwd'] }, true, now)).toBe(false);
    expect(isRecentEnough({ ...session, authTime: now - 60, amr: ['pwd', 'otp', 'mfa'] }, true, now)).toBe(true);
    expect(isRecentEnough({ ...session, authTime: now - RECENT_SIGN_IN_SECONDS - 1, amr: ['pwd', 'otp', 'mfa'] }, true, now)).toBe(false);
    expect(isRecentEnough(session, false, now)).toBe(false);
  });
});
