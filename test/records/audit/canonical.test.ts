import canonicalizeModule from 'canonicalize';
import { canonicalJson } from '../../../src/records/audit/chain.js';
import { introspectionRecord, renderIntrospection } from '../../../src/records/audit/forms/introspection.js';
import type { FoundToken } from '../../../src/oauth/introspection/token-lookup.js';

/**
 * The chain hashes canonical JSON (RFC 8785). Ours is written for the hot path and caches frozen
 * subtrees; it must give exactly what a reference implementation (the `canonicalize` package) does.
 */

type Canonicalize = (input: unknown) => string | undefined;
const loaded = canonicalizeModule as unknown as Canonicalize | { default: Canonicalize };
const reference: Canonicalize = typeof loaded === 'function' ? loaded : loaded.default;

const token = (extra: Partial<FoundToken> = {}): FoundToken => ({
  kind: 'AccessToken',
  format: 'opaque',
  id: 'A'.repeat(43),
  clientId: 'app',
  accountId: 'acc-1',
  grantId: 'g-1',
  scope: 'openid fhirUser patient/*.rs',
  aud: 'http://localhost:8080/fhir',
  exp: 2_000_000_000,
  extra: { patient: 'pat-1', fhirUser: 'http://localhost:8080/fhir/Patient/pat-1' },
  ...extra,
});

test.each([
  [
    'numbers, escapes, unicode, nesting',
    { b: [1, 1.5, -0, 1e21, 1e-7, 0.1 + 0.2], a: 'é\u2028"\\\n\u0001😀', c: { z: null, y: true, x: [{}, []] }, '\u00e9': 1, A: 2 },
  ],
  [
    'an active introspection record',
    introspectionRecord('http://localhost:3000', { callerId: 'rs', ip: '127.0.0.1', token: token(), active: true, value: 'A'.repeat(43) }),
  ],
  [
    'an active introspection event (shared frozen parts)',
    renderIntrospection(
      introspectionRecord('http://localhost:3000', {
        callerId: 'rs',
        ip: '127.0.0.1',
        token: token(),
        active: true,
        value: 'A'.repeat(43),
      }),
    ),
  ],
  [
    'an inactive one for an unknown token',
    renderIntrospection(
      introspectionRecord('https://as.example.org', { callerId: 'rs', ip: '::1', token: undefined, active: false, value: 'B'.repeat(43) }),
    ),
  ],
  [
    'a JWT one',
    renderIntrospection(
      introspectionRecord('http://localhost:3000', {
        callerId: 'rs',
        ip: '10.0.0.1',
        token: token({ format: 'jwt', id: 'jti-123' }),
        active: true,
        value: 'x.y.z',
      }),
    ),
  ],
])('%s', (_name, value) => {
  // Twice: the second call reads frozen subtrees from the cache.
  expect(canonicalJson(value)).toBe(reference(value));
  expect(canonicalJson(value)).toBe(reference(value));
});

test('undefined members are left out, undefined array items become null; NaN has no form', () => {
  expect(canonicalJson({ a: undefined, b: [undefined, 1] })).toBe('{"b":[null,1]}');
  expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
});
