import { jest } from '@jest/globals';
import Provider from 'oidc-provider';
import supertest from 'supertest';
import { JwksFetchError } from '../../../src/oauth/backend/jwks-fetch-error.js';
import { createProviderFetch } from '../../../src/oauth/backend/provider-fetch.js';
import type { JwksFetcher } from '../../../src/oauth/backend/jwks-fetch.js';
import { backendKey, signAssertion } from '../../support/backend-client.js';
import type { BackendKey } from '../../support/backend-client.js';
import { TestClock, fetcherFor, serveJson, startKeyHost } from './jwks-support.js';
import type { KeyHost } from './jwks-support.js';

/**
 * oidc-provider's own client key store, driven through its `fetch` option: the Response we build
 * must satisfy it, and its refreshes must land on our cache, rate limit and stale rules.
 * oidc-provider keeps a client's keys per Client instance for at least 60 s of real time, so each
 * step that needs it to ask again uses a new Provider sharing the same fetcher.
 */

const ISSUER = 'http://localhost:3000';
const TOKEN_URL = `${ISSUER}/token`;
const CLIENT_ID = 'bulk-export';

// oidc-provider warns about its development-only keys and in-memory adapter; irrelevant here.
beforeAll(() => void jest.spyOn(console, 'warn').mockImplementation(() => {}));
afterAll(() => jest.restoreAllMocks());

let host: KeyHost;
let served: BackendKey[];
let down = false;
let keyA: BackendKey;
let keyB: BackendKey;

beforeAll(async () => {
  keyA = await backendKey('ES384');
  keyB = await backendKey('RS384');
  served = [keyA];
  host = await startKeyHost((req, res) => {
    if (down) {
      res.writeHead(503);
      res.end();
      return;
    }
    serveJson({ keys: served.map((k) => k.publicJwk) }, { 'cache-control': 'max-age=300' })(req, res);
  });
});
afterAll(() => host.close());

function providerUsing(fetcher: JwksFetcher, extra: Record<string, unknown> = {}): Provider {
  return new Provider(ISSUER, {
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks_uri: `${host.origin}/jwks`,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
    enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384'] },
    ttl: { ClientCredentials: 300 },
    fetch: createProviderFetch(fetcher),
    ...extra,
  });
}

async function tokenRequest(provider: Provider, key: BackendKey) {
  return supertest(provider.callback())
    .post('/token')
    .set('Host', 'localhost:3000')
    .type('form')
    .send({
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await signAssertion(key, CLIENT_ID, TOKEN_URL),
    });
}

test('private_key_jwt with a jwks_uri client: fetch once, rotate under the rate limit, survive an outage', async () => {
  const clock = new TestClock();
  const { fetcher, events } = fetcherFor(clock, { minRefetchIntervalSeconds: 30, maxStaleSeconds: 3600 });

  // The Response we build is what oidc-provider reads the client's keys from.
  const first = await tokenRequest(providerUsing(fetcher), keyA);
  expect(first.status).toBe(200);
  expect(first.body.token_type).toBe('Bearer');
  expect(host.hits).toBe(1);

  // Rotation: a new kid right after a fetch is not fetched again within the interval...
  served = [keyA, keyB];
  const tooSoon = await tokenRequest(providerUsing(fetcher), keyB);
  expect(tooSoon.status).toBe(401);
  expect(tooSoon.body.error).toBe('invalid_client');
  expect(host.hits).toBe(1);

  // ...and is, once the interval has passed.
  clock.advanceSeconds(31);
  const rotated = await tokenRequest(providerUsing(fetcher), keyB);
  expect(rotated.status).toBe(200);
  expect(host.hits).toBe(2);

  // The key host goes down past the set's lifetime: the last good set is still used.
  down = true;
  clock.advanceSeconds(400);
  const duringOutage = await tokenRequest(providerUsing(fetcher), keyB);
  expect(duringOutage.status).toBe(200);
  expect(host.hits).toBe(3);
  expect(events.at(-1)).toMatchObject({ type: 'stale-served', error: expect.stringContaining('HTTP 503') });
  down = false;
});

test('works when oidc-provider streams the body under a size limit', async () => {
  served = [keyA];
  const { fetcher } = fetcherFor(new TestClock());
  const provider = providerUsing(fetcher, { fetchResponseBodyLimits: { jwks_uri: 64 * 1024 } });
  expect((await tokenRequest(provider, keyA)).status).toBe(200);
});

test('a key host refused by policy fails client authentication, with our error as the cause', async () => {
  const { fetcher } = fetcherFor(new TestClock(), { allowPrivateNetworks: false });
  const provider = providerUsing(fetcher);
  const causes: unknown[] = [];
  provider.on('grant.error', (_ctx: unknown, err: unknown) => {
    for (let e = err; e instanceof Error; e = e.cause) causes.push(e);
  });
  const hitsBefore = host.hits;

  const res = await tokenRequest(provider, keyA);

  expect(res.status).toBe(401);
  expect(res.body.error).toBe('invalid_client');
  expect(host.hits).toBe(hitsBefore);
  expect(causes.find((e) => e instanceof JwksFetchError)).toMatchObject({
    failure: 'private-address',
    message: `jwks_uri ${host.origin}/jwks: host is a private address`,
  });
});

test('requests other than a jwks_uri GET go to the fallback untouched', async () => {
  const seen: Array<[string, RequestInit | undefined]> = [];
  const fallback = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    seen.push([String(input), init]);
    return new Response('ok', { status: 200 });
  };
  const { fetcher } = fetcherFor(new TestClock());
  const providerFetch = createProviderFetch(fetcher, { fallback });
  const init: RequestInit = { method: 'POST', redirect: 'manual', body: 'logout_token=x' };

  const res = await providerFetch('https://rp.example/backchannel', init);

  expect(await res.text()).toBe('ok');
  expect(seen).toEqual([['https://rp.example/backchannel', init]]);
});
