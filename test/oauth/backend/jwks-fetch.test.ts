import { exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { JwksFetchError } from '../../../src/oauth/backend/jwks-fetch-error.js';
import type { JwksFetchFailure } from '../../../src/oauth/backend/jwks-fetch-error.js';
import { TestClock, fetcherFor, fixedLookup, serveJson, startKeyHost } from './jwks-support.js';
import { selfSignedCertificate } from '../../support/certificate.js';
import type { KeyHost } from './jwks-support.js';

async function publicJwk(kid: string): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES384', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' };
}

async function failureOf(promise: Promise<unknown>): Promise<JwksFetchError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(JwksFetchError);
    return err as JwksFetchError;
  }
  throw new Error('expected a JwksFetchError');
}

async function expectFailure(promise: Promise<unknown>, failure: JwksFetchFailure, message: string | RegExp): Promise<void> {
  const err = await failureOf(promise);
  expect(err.failure).toBe(failure);
  expect(err.message).toMatch(message);
}

const hosts: KeyHost[] = [];
async function keyHost(...args: Parameters<typeof startKeyHost>): Promise<KeyHost> {
  const host = await startKeyHost(...args);
  hosts.push(host);
  return host;
}
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
});

let keyA: JWK;
let keyB: JWK;
beforeAll(async () => {
  keyA = await publicJwk('key-a');
  keyB = await publicJwk('key-b');
});

describe('fetching', () => {
  test('returns the JWK Set and reports the fetch', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=600' }));
    const { fetcher, events } = fetcherFor(new TestClock());

    const jwks = await fetcher.getJwks(`${host.origin}/jwks?tenant=1`);

    expect(jwks.keys).toEqual([keyA]);
    expect(events).toEqual([{ type: 'fetched', url: `${host.origin}/jwks`, keys: 1, ttlSeconds: 600 }]);
  });

  test('accepts a JWK Set served without a JSON content type', async () => {
    const host = await keyHost((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(JSON.stringify({ keys: [keyA] }));
    });
    const { fetcher } = fetcherFor(new TestClock());
    expect((await fetcher.getJwks(`${host.origin}/jwks`)).keys).toHaveLength(1);
  });

  test('hands out a frozen set, so one caller cannot change what the next one sees', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher } = fetcherFor(new TestClock());
    const jwks = await fetcher.getJwks(`${host.origin}/jwks`);
    expect(() => {
      (jwks.keys[0] as Record<string, unknown>).kid = 'evil';
    }).toThrow(TypeError);
    expect((await fetcher.getJwks(`${host.origin}/jwks`)).keys[0]?.kid).toBe('key-a');
  });

  test('concurrent callers share one request', async () => {
    const host = await keyHost((req, res) => setTimeout(() => serveJson({ keys: [keyA] })(req, res), 150));
    const { fetcher } = fetcherFor(new TestClock());

    const results = await Promise.all(Array.from({ length: 5 }, () => fetcher.getJwks(`${host.origin}/jwks`)));

    expect(host.hits).toBe(1);
    for (const jwks of results) expect(jwks).toBe(results[0]);
  });
});

describe('caching', () => {
  test('honours max-age: no request while fresh, one after it expires', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'public, max-age=120' }));
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock);
    const url = `${host.origin}/jwks`;

    await fetcher.getJwks(url);
    clock.advanceSeconds(119);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(1);

    clock.advanceSeconds(2);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(2);
  });

  test('caps a huge max-age at maxTtlSeconds', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=31536000' }));
    const clock = new TestClock();
    const { fetcher, events } = fetcherFor(clock);
    const url = `${host.origin}/jwks`;

    await fetcher.getJwks(url);
    expect(events[0]).toMatchObject({ type: 'fetched', ttlSeconds: 86_400 });
    clock.advanceSeconds(86_399);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(1);
    clock.advanceSeconds(2);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(2);
  });

  test('keeps a no-store set for the minimum lifetime, not for zero', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'no-store' }));
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock, { minTtlSeconds: 60 });
    const url = `${host.origin}/jwks`;

    await fetcher.getJwks(url);
    clock.advanceSeconds(59);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(1);
    clock.advanceSeconds(2);
    await fetcher.getJwks(url);
    expect(host.hits).toBe(2);
  });

  test('uses the default lifetime when the response says nothing', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher, events } = fetcherFor(new TestClock(), { defaultTtlSeconds: 300 });
    await fetcher.getJwks(`${host.origin}/jwks`);
    expect(events[0]).toMatchObject({ ttlSeconds: 300 });
  });

  test('forgets the least recently fetched URL beyond maxEntries', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=3600' }));
    const { fetcher } = fetcherFor(new TestClock(), { maxEntries: 2 });

    await fetcher.getJwks(`${host.origin}/one`);
    await fetcher.getJwks(`${host.origin}/two`);
    await fetcher.getJwks(`${host.origin}/three`);
    expect(host.hits).toBe(3);

    await fetcher.getJwks(`${host.origin}/three`);
    await fetcher.getJwks(`${host.origin}/two`);
    expect(host.hits).toBe(3);
    await fetcher.getJwks(`${host.origin}/one`);
    expect(host.hits).toBe(4);
  });
});

describe('unknown kid', () => {
  test('refetches once, then not again within the minimum interval', async () => {
    let served = [keyA];
    const host = await keyHost((req, res) => serveJson({ keys: served }, { 'cache-control': 'max-age=3600' })(req, res));
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock, { minRefetchIntervalSeconds: 30 });
    const url = `${host.origin}/jwks`;

    expect(await fetcher.findKey(url, 'key-a')).toEqual(keyA);
    expect(host.hits).toBe(1);

    // The client rotates; a first-time fetch a moment ago already used up the interval.
    served = [keyA, keyB];
    clock.advanceSeconds(10);
    expect(await fetcher.findKey(url, 'key-b')).toBeUndefined();
    expect(host.hits).toBe(1);

    clock.advanceSeconds(21);
    expect(await fetcher.findKey(url, 'key-b')).toEqual(keyB);
    expect(host.hits).toBe(2);

    // Spraying random kids right after costs nothing at the client's host...
    clock.advanceSeconds(1);
    for (const kid of ['r1', 'r2', 'r3']) expect(await fetcher.findKey(url, kid)).toBeUndefined();
    expect(host.hits).toBe(2);

    // ...and at most one request per interval after that.
    clock.advanceSeconds(30);
    for (const kid of ['r4', 'r5']) expect(await fetcher.findKey(url, kid)).toBeUndefined();
    expect(host.hits).toBe(3);
  });

  test('a known kid is answered from cache', async () => {
    const host = await keyHost(serveJson({ keys: [keyA, keyB] }, { 'cache-control': 'max-age=3600' }));
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock);
    await fetcher.findKey(`${host.origin}/jwks`, 'key-a');
    clock.advanceSeconds(600);
    expect(await fetcher.findKey(`${host.origin}/jwks`, 'key-b')).toEqual(keyB);
    expect(host.hits).toBe(1);
  });

  test('forceRefresh obeys the same interval', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=3600' }));
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock);
    const url = `${host.origin}/jwks`;
    await fetcher.getJwks(url);
    await fetcher.getJwks(url, { forceRefresh: true });
    expect(host.hits).toBe(1);
    clock.advanceSeconds(30);
    await fetcher.getJwks(url, { forceRefresh: true });
    expect(host.hits).toBe(2);
  });
});

describe('when the key host fails', () => {
  test('serves the cached set while the host answers 503, retrying at most once per interval', async () => {
    let down = false;
    const host = await keyHost((req, res) => {
      if (down) {
        res.writeHead(503);
        res.end();
        return;
      }
      serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=60' })(req, res);
    });
    const clock = new TestClock();
    const { fetcher, events } = fetcherFor(clock, { maxStaleSeconds: 3600 });
    const url = `${host.origin}/jwks`;
    await fetcher.getJwks(url);

    down = true;
    clock.advanceSeconds(61);
    expect((await fetcher.getJwks(url)).keys).toEqual([keyA]);
    expect(host.hits).toBe(2);
    expect(events.at(-1)).toEqual({
      type: 'stale-served',
      url,
      error: `jwks_uri ${url}: HTTP 503`,
      secondsPastExpiry: 1,
    });

    clock.advanceSeconds(10);
    expect((await fetcher.findKey(url, 'key-a'))?.kid).toBe('key-a');
    expect(host.hits).toBe(2);

    clock.advanceSeconds(3600);
    await expectFailure(fetcher.getJwks(url), 'http-status', `jwks_uri ${url}: HTTP 503`);
    expect(host.hits).toBe(3);
  });

  test('serves the cached set while the host is unreachable', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=60' }));
    const clock = new TestClock();
    const { fetcher, events } = fetcherFor(clock);
    const url = `${host.origin}/jwks`;
    await fetcher.getJwks(url);

    await host.close();
    clock.advanceSeconds(120);
    expect((await fetcher.getJwks(url)).keys).toEqual([keyA]);
    expect(events.at(-1)).toMatchObject({ type: 'stale-served', error: `jwks_uri ${url}: request failed (ECONNREFUSED)` });
  });

  test('fails with a precise error when nothing is cached', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const url = `${host.origin}/jwks`;
    await host.close();
    const { fetcher, events } = fetcherFor(new TestClock());
    await expectFailure(fetcher.getJwks(url), 'network', `jwks_uri ${url}: request failed (ECONNREFUSED)`);
    expect(events).toEqual([{ type: 'failed', url, error: `jwks_uri ${url}: request failed (ECONNREFUSED)` }]);
  });

  test('does not hide a 404 behind stale keys', async () => {
    let gone = false;
    const host = await keyHost((req, res) => {
      if (gone) {
        res.writeHead(404);
        res.end();
        return;
      }
      serveJson({ keys: [keyA] }, { 'cache-control': 'max-age=60' })(req, res);
    });
    const clock = new TestClock();
    const { fetcher } = fetcherFor(clock);
    const url = `${host.origin}/jwks`;
    await fetcher.getJwks(url);

    gone = true;
    clock.advanceSeconds(61);
    await expectFailure(fetcher.getJwks(url), 'http-status', 'HTTP 404');
    clock.advanceSeconds(1);
    await expectFailure(fetcher.getJwks(url), 'http-status', 'HTTP 404');
    expect(host.hits).toBe(2);
  });
});

describe('refusals', () => {
  test('plain http in production, before any request', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher } = fetcherFor(new TestClock(), { production: true });
    await expectFailure(fetcher.getJwks(`${host.origin}/jwks`), 'insecure-scheme', `jwks_uri ${host.origin}/jwks: must use https`);
    expect(host.hits).toBe(0);
  });

  test('schemes other than http(s), credentials and unparseable URLs', async () => {
    const { fetcher } = fetcherFor(new TestClock());
    await expectFailure(fetcher.getJwks('file:///etc/passwd'), 'insecure-scheme', 'must use http or https');
    const err = await failureOf(fetcher.getJwks('http://user:s3cret@127.0.0.1:1/jwks'));
    expect(err.message).toBe('jwks_uri http://127.0.0.1:1/jwks: must not contain credentials');
    await expectFailure(fetcher.getJwks('not a url'), 'invalid-url', 'jwks_uri is not a valid URL');
  });

  test('a name resolving to loopback when private networks are not allowed', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher } = fetcherFor(new TestClock(), {
      allowPrivateNetworks: false,
      lookup: fixedLookup({ 'jwks.test': ['127.0.0.1'] }),
    });
    await expectFailure(
      fetcher.getJwks(`http://jwks.test:${host.port}/jwks`),
      'private-address',
      `jwks_uri http://jwks.test:${host.port}/jwks: host resolves to a private address`,
    );
    expect(host.hits).toBe(0);
  });

  test('a name with one private address among several', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher } = fetcherFor(new TestClock(), {
      allowPrivateNetworks: false,
      lookup: fixedLookup({ 'jwks.test': ['127.0.0.1', '::ffff:10.1.2.3'] }),
    });
    await expectFailure(fetcher.getJwks(`http://jwks.test:${host.port}/jwks`), 'private-address', 'private address');
    expect(host.hits).toBe(0);
  });

  test('a name that resolves to no address', async () => {
    const { fetcher } = fetcherFor(new TestClock(), { allowPrivateNetworks: false, lookup: fixedLookup({}) });
    await expectFailure(fetcher.getJwks('http://nowhere.test/jwks'), 'dns', 'jwks_uri http://nowhere.test/jwks: host does not resolve');
  });

  test('literal loopback addresses, v4 and v6', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }));
    const { fetcher } = fetcherFor(new TestClock(), { allowPrivateNetworks: false });
    for (const origin of [`http://127.0.0.1:${host.port}`, `http://[::1]:${host.port}`, `http://[::ffff:7f00:1]:${host.port}`]) {
      await expectFailure(fetcher.getJwks(`${origin}/jwks`), 'private-address', `jwks_uri ${origin}/jwks: host is a private address`);
    }
    await expectFailure(fetcher.getJwks(`http://[::ffff:127.0.0.1]:${host.port}/jwks`), 'private-address', 'host is a private address');
    expect(host.hits).toBe(0);
  });

  test('metadata and private literals fail before any connection or DNS lookup', async () => {
    const lookup = (): never => {
      throw new Error('no lookup expected');
    };
    const { fetcher } = fetcherFor(new TestClock(), { allowPrivateNetworks: false, lookup, timeoutMs: 3000 });
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/jwks', 'http://0x7f.1/jwks']) {
      const started = performance.now();
      await expectFailure(fetcher.getJwks(url), 'private-address', 'host is a private address');
      // Far below the timeout: refused up front, not after an attempt to connect.
      expect(performance.now() - started).toBeLessThan(500);
    }
  });

  test('redirects, without following them', async () => {
    const target = await keyHost(serveJson({ keys: [keyA] }));
    const host = await keyHost((_req, res) => {
      res.writeHead(302, { location: `${target.origin}/jwks` });
      res.end();
    });
    const { fetcher } = fetcherFor(new TestClock());
    await expectFailure(
      fetcher.getJwks(`${host.origin}/jwks`),
      'redirect',
      `jwks_uri ${host.origin}/jwks: HTTP 302; redirects are not followed`,
    );
    expect(target.hits).toBe(0);
  });

  test('a body above maxBytes, declared or streamed', async () => {
    const padding = 'x'.repeat(70 * 1024);
    const declared = await keyHost(serveJson({ keys: [keyA], padding }));
    const streamed = await keyHost((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[],"padding":"');
      const chunk = 'y'.repeat(8 * 1024);
      const timer = setInterval(() => {
        if (!res.write(chunk) || res.destroyed) clearInterval(timer);
      }, 5);
      res.on('close', () => clearInterval(timer));
    });
    const { fetcher } = fetcherFor(new TestClock());
    for (const host of [declared, streamed]) {
      await expectFailure(
        fetcher.getJwks(`${host.origin}/jwks`),
        'too-large',
        `jwks_uri ${host.origin}/jwks: response exceeds 65536 bytes`,
      );
    }
  });

  test('a host that never answers, after timeoutMs', async () => {
    const host = await keyHost(() => {});
    const { fetcher } = fetcherFor(new TestClock(), { timeoutMs: 300 });
    const started = performance.now();
    await expectFailure(fetcher.getJwks(`${host.origin}/jwks`), 'timeout', `jwks_uri ${host.origin}/jwks: timed out after 300 ms`);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1500);
  });

  test('bodies that are not JSON, or not a JWK Set', async () => {
    const html = await keyHost((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>maintenance</html>');
    });
    const { fetcher } = fetcherFor(new TestClock());
    await expectFailure(fetcher.getJwks(`${html.origin}/jwks`), 'not-jwks', 'is not JSON');

    for (const body of [{ key: [keyA] }, { keys: keyA }, { keys: [{ kid: 'no-kty' }] }, [keyA], { keys: ['x'] }]) {
      const host = await keyHost(serveJson(body));
      await expectFailure(fetcher.getJwks(`${host.origin}/jwks`), 'not-jwks', `jwks_uri ${host.origin}/jwks: response is not a JWK Set`);
    }
  });
});

describe('https', () => {
  let tls: { key: string; cert: string };
  beforeAll(() => {
    tls = selfSignedCertificate('jwks.test');
  });

  test('production fetch over TLS, connecting to the address the lookup vetted', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }), tls);
    const { fetcher } = fetcherFor(new TestClock(), {
      production: true,
      lookup: fixedLookup({ 'jwks.test': ['127.0.0.1'] }),
      tls: { ca: tls.cert },
    });
    expect((await fetcher.getJwks(`https://jwks.test:${host.port}/jwks`)).keys).toEqual([keyA]);
    expect(host.hits).toBe(1);
  });

  test('certificates are verified', async () => {
    const host = await keyHost(serveJson({ keys: [keyA] }), tls);
    const { fetcher } = fetcherFor(new TestClock(), { production: true, lookup: fixedLookup({ 'jwks.test': ['127.0.0.1'] }) });
    await expectFailure(fetcher.getJwks(`https://jwks.test:${host.port}/jwks`), 'network', /request failed \(\w+\)/);

    const wrongName = fetcherFor(new TestClock(), {
      production: true,
      lookup: fixedLookup({ 'other.test': ['127.0.0.1'] }),
      tls: { ca: tls.cert },
    }).fetcher;
    await expectFailure(wrongName.getJwks(`https://other.test:${host.port}/jwks`), 'network', 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
