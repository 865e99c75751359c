import { allPublic, isPublicAddress } from '../../../src/oauth/backend/address-policy.js';
import { freshLifetimeSeconds } from '../../../src/oauth/backend/cache-lifetime.js';
import { JwksFetchError } from '../../../src/oauth/backend/jwks-fetch-error.js';

describe('address policy', () => {
  test.each([
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '100.64.0.1',
    '100.127.255.254',
    '127.0.0.1',
    '127.255.255.255',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.1',
    '192.168.1.1',
    '198.18.0.1',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '::127.0.0.1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::a00:1',
    '100::1',
    '2001:db8::1',
    '2001::1',
    '2002:a00:1::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'FE80::abcd',
    'fec0::1',
    'ff02::1',
    'not-an-ip',
    '',
  ])('refuses %s', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  test.each([
    '8.8.8.8',
    '1.1.1.1',
    '100.63.255.255',
    '100.128.0.1',
    '172.15.255.255',
    '172.32.0.1',
    '192.169.0.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001::200e',
    '::ffff:8.8.8.8',
  ])('accepts %s', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  test('a host is refused when any of its addresses is', () => {
    expect(allPublic(['8.8.8.8', '1.1.1.1'])).toBe(true);
    expect(allPublic(['8.8.8.8', '10.0.0.1'])).toBe(false);
    expect(allPublic(['2606:4700:4700::1111', 'fd00::1'])).toBe(false);
    expect(allPublic([])).toBe(false);
  });
});

describe('fresh lifetime', () => {
  const limits = { minSeconds: 60, maxSeconds: 86_400, defaultSeconds: 300 };
  const now = Date.parse('2031-03-01T00:00:00Z');
  const lifetime = (headers: Record<string, string>): number => freshLifetimeSeconds((name) => headers[name], now, limits);

  test('max-age, reduced by Age', () => {
    expect(lifetime({ 'cache-control': 'max-age=600' })).toBe(600);
    expect(lifetime({ 'cache-control': 'public, MAX-AGE="900"' })).toBe(900);
    expect(lifetime({ 'cache-control': 'max-age=600', age: '100' })).toBe(500);
  });

  test('s-maxage wins over max-age', () => {
    expect(lifetime({ 'cache-control': 'max-age=600, s-maxage=1200' })).toBe(1200);
  });

  test('no-store and no-cache give the minimum', () => {
    expect(lifetime({ 'cache-control': 'no-store' })).toBe(60);
    expect(lifetime({ 'cache-control': 'no-cache, max-age=600' })).toBe(60);
  });

  test('clamped to [min, max]', () => {
    expect(lifetime({ 'cache-control': 'max-age=5' })).toBe(60);
    expect(lifetime({ 'cache-control': 'max-age=99999999' })).toBe(86_400);
  });

  test('Expires, against Date when present, else against now; bad Expires is already expired', () => {
    expect(lifetime({ expires: new Date(now + 3600_000).toUTCString() })).toBe(3600);
    const skewedDate = new Date(now - 7200_000).toUTCString();
    expect(lifetime({ expires: new Date(now - 7200_000 + 1800_000).toUTCString(), date: skewedDate })).toBe(1800);
    expect(lifetime({ expires: '0' })).toBe(60);
    expect(lifetime({ 'cache-control': 'max-age=120', expires: new Date(now + 3600_000).toUTCString() })).toBe(120);
  });

  test('default without any freshness information; a malformed max-age is ignored', () => {
    expect(lifetime({})).toBe(300);
    expect(lifetime({ 'cache-control': 'max-age=ten' })).toBe(300);
  });
});

describe('JwksFetchError.transient', () => {
  test.each([
    ['network', undefined, true],
    ['timeout', undefined, true],
    ['not-jwks', undefined, true],
    ['http-status', 500, true],
    ['http-status', 429, true],
    ['http-status', 404, false],
    ['http-status', 401, false],
    ['private-address', undefined, false],
    ['insecure-scheme', undefined, false],
  ] as const)('%s %s → %s', (failure, status, transient) => {
    expect(new JwksFetchError(failure, 'x', status === undefined ? {} : { status }).transient).toBe(transient);
  });
});
