import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, exportJWK, jwtVerify, type JWK } from 'jose';
import supertest from 'supertest';
import { ConfigError, loadConfig } from '../../../src/platform/config/load.js';
import { upstreamProviders } from '../../../src/smart/interaction/federation/upstream-provider.js';
import { federationProviderSchema } from '../../../src/platform/config/schema.js';
import { clientAuthentication, readSigningKey } from '../../../src/smart/interaction/federation/client-auth.js';
import { createUserStore } from '../../../src/records/directory/user-store.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { startUpstreamIdp, type UpstreamIdp } from '../../support/upstream-idp.js';
import { selfSignedCertificate } from '../../support/certificate.js';
import { browse, checkedValues, exchange, pageOf, pkcePair, postForm, unescapeHtml } from '../../support/smart-flow.js';
import { registerSmartApp } from '../../support/fixtures.js';

/*
 * private_key_jwt to the upstream: the key file (PEM with its certificate, or a JWK) read at
 * start-up, the assertion it signs, and a whole sign-in whose token request the upstream accepts
 * only with that assertion.
 */

const dir = mkdtempSync(join(tmpdir(), 'smart-authz-fed-keys-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

const provider = (extra: Record<string, unknown>) =>
  federationProviderSchema.parse({
    id: 'entra',
    displayName: 'Entra',
    issuer: 'https://login.example.com/tenant/v2.0',
    clientId: 'our-client',
    link: [{ claim: 'oid', attribute: 'externalId' }],
    ...extra,
  });

/** Runs a ClientAuth as openid-client would before a token request; returns the assertion it put in the body. */
async function assertionOf(auth: Awaited<ReturnType<typeof clientAuthentication>>): Promise<string> {
  const body = new URLSearchParams();
  const as = { issuer: 'https://login.example.com/tenant/v2.0', token_endpoint: 'https://login.example.com/tenant/oauth2/v2.0/token' };
  await auth(as, { client_id: 'our-client' }, body, new Headers());
  expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  return body.get('client_assertion')!;
}

describe('the key file', () => {
  test('a PEM with its certificate: ES256, named by the certificate thumbprints; the assertion is for the token endpoint', async () => {
    const cert = selfSignedCertificate('authz.example.org');
    const path = file('with-cert.pem', `${cert.key}\n${cert.cert}`);
    const key = readSigningKey(path, 'test');
    const der = new X509Certificate(cert.cert).raw;
    expect(key.alg).toBe('ES256');
    expect(key.x5t).toBe(createHash('sha1').update(der).digest('base64url'));
    expect(key.x5tS256).toBe(createHash('sha256').update(der).digest('base64url'));

    const assertion = await assertionOf(await clientAuthentication(provider({ privateKeyFile: path }), key));
    const header = decodeProtectedHeader(assertion);
    expect(header).toMatchObject({ alg: 'ES256', x5t: key.x5t, 'x5t#S256': key.x5tS256 });
    const { payload } = await jwtVerify(assertion, createPublicKey(cert.key), {
      audience: 'https://login.example.com/tenant/oauth2/v2.0/token',
      issuer: 'our-client',
      subject: 'our-client',
    });
    expect(payload.jti).toEqual(expect.any(String));
  });

  test('a JWK: its kid is used', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'our-key-1' };
    const key = readSigningKey(file('key.jwk', JSON.stringify(jwk)), 'test');
    expect(key).toMatchObject({ alg: 'RS256', kid: 'our-key-1' });
    const assertion = await assertionOf(await clientAuthentication(provider({ privateKeyFile: 'x' }), key));
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'RS256', kid: 'our-key-1' });
  });

  test.each([
    ['missing', join(dir, 'nope.pem'), /cannot be read \(ENOENT\)/],
    ['not a key', file('junk.pem', 'hello'), /is not a PEM or JWK private key/],
    [
      'a public key only',
      file('public.jwk', JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'a', y: 'b' })),
      /is not a PEM or JWK private key|holds no private key/,
    ],
  ])('%s: a ConfigError naming the setting', (_name, path, message) => {
    expect(() => readSigningKey(path, 'AUTHZ_FEDERATION_PROVIDERS (federation.providers.0.privateKeyFile)')).toThrow(ConfigError);
    expect(() => readSigningKey(path, 'AUTHZ_FEDERATION_PROVIDERS (federation.providers.0.privateKeyFile)')).toThrow(message);
  });

  test('the app does not start with an unusable key file (the providers are built with the app)', () => {
    const providers = file(
      'bad-providers.json',
      JSON.stringify([{ ...provider({ privateKeyFile: file('bad.pem', 'not a key') }), issuer: 'http://127.0.0.1:9/x' }]),
    );
    const config = loadConfig({ AUTHZ_FEDERATION_PROVIDERS: providers });
    expect(() => upstreamProviders(config.federation.providers, config.issuer)).toThrow(
      /^config error: AUTHZ_FEDERATION_PROVIDERS \(federation\.providers\.0\.privateKeyFile\) \S+ is not a PEM or JWK private key$/,
    );
  });
});

describe('a sign-in with private_key_jwt', () => {
  let idp: UpstreamIdp;
  let t: TestApp;
  beforeAll(async () => {
    const cert = selfSignedCertificate('authz.example.org');
    const publicJwk = (await exportJWK(createPublicKey(cert.key))) as JWK;
    idp = await startUpstreamIdp({ redirectUris: ['http://localhost:3000/federation/keyed/callback'], clientJwks: { keys: [publicJwk] } });
    const providers = file(
      'keyed.json',
      JSON.stringify([
        {
          id: 'keyed',
          displayName: 'Keyed IdP',
          issuer: idp.issuer,
          clientId: idp.clientId,
          privateKeyFile: file('keyed.pem', `${cert.key}${cert.cert}`),
          link: [{ claim: 'oid', attribute: 'externalId' }],
        },
      ]),
    );
    t = await createTestApp({ AUTHZ_FEDERATION_PROVIDERS: providers, AUTHZ_FHIR_SERVERS: 'http://localhost:8080/fhir' });
    await registerSmartApp(t, { id: 'app', redirectUri: 'https://app.example.org/cb', scopes: ['openid', 'fhirUser'] });
  });
  afterAll(async () => {
    await t.close();
    await idp.close();
  });

  test('the upstream accepts our assertion and the sign-in completes', async () => {
    const user = await createUserStore(t.config, t.redis, t.keyspace).create({ userName: 'keyed-user', externalId: 'oid-keyed' });
    idp.addUser({ sub: 'keyed-sub', claims: { oid: 'oid-keyed' } });
    idp.signInAs('keyed-sub');
    const agent = supertest.agent(t.app.callback());
    const { verifier, challenge } = pkcePair();
    const first = await agent.get('/authorize').query({
      client_id: 'app',
      response_type: 'code',
      redirect_uri: 'https://app.example.org/cb',
      scope: 'openid fhirUser',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: 'http://localhost:8080/fhir',
    });
    const page = pageOf(await browse(agent, first));
    const href = unescapeHtml(/href="([^"]+)">Sign in with Keyed IdP/.exec(page.res.text)![1]!);
    let location = (await agent.get(href).set('Accept', 'text/html')).headers.location!;
    const upstream = supertest.agent(idp.issuer);
    while (location.startsWith(idp.issuer)) {
      const url = new URL(location);
      location = new URL((await upstream.get(`${url.pathname}${url.search}`)).headers.location!, idp.issuer).href;
    }
    const back = new URL(location);
    const handed = await agent.get(`${back.pathname}${back.search}`).set('Accept', 'text/html');
    expect(handed.status).toBe(303);
    let stop = await browse(agent, handed);
    if (stop.kind === 'page' && stop.prompt === 'consent')
      stop = await browse(
        agent,
        await postForm(agent, stop.uid, 'consent', stop.res, { decision: 'allow', scope: checkedValues(stop.res.text, 'scope') }),
      );
    expect(stop.kind).toBe('app');
    const token = await exchange(t, (stop as { code: string }).code, verifier, {
      client_id: 'app',
      redirect_uri: 'https://app.example.org/cb',
    });
    expect(token.status).toBe(200);
    expect(JSON.parse(Buffer.from((token.body.id_token as string).split('.')[1]!, 'base64url').toString()).sub).toBe(user.id);
  });
});
