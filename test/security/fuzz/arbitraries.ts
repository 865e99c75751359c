/*
 * Generators of hostile input. Most inputs are a valid request with a few parts broken (so they
 * get past the first check and into the code behind it); the rest are noise.
 */
import fc from 'fast-check';

/** Values that have broken parsers before: empty, huge, numeric edge cases, prototype keys, encodings. */
const TRICKY = [
  '',
  ' ',
  '%',
  '%00',
  '%ZZ',
  '\u0000',
  '\uFEFF',
  '\uD800',
  '😀',
  'a'.repeat(5000),
  '[]',
  '{}',
  'null',
  'undefined',
  'true',
  '-1',
  '0',
  '1e309',
  '9007199254740993',
  'NaN',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '../../../etc/passwd',
  '<script>alert(1)</script>',
  "' OR '1'='1",
  '${7*7}',
  '{{7*7}}',
  'Bearer',
  'Basic',
  'http://',
  'https://evil.example/cb',
  'javascript:alert(1)',
  'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  'openid fhirUser',
  'patient/*.rs',
  'system/*.cruds',
  'scim',
  'user/Patient.r?_id=1',
  'launch/patient',
  'S256',
  'plain',
  'code',
  'token id_token',
  'fuzz-app',
  'fuzz-admin',
  'fuzz-rs',
  'Patient/123',
  '2024-01-01',
  'ge2024',
  'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
];

/** Any string a client could send as a value. */
export const hostile: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.webUrl() },
);

/** Header-legal text (Node refuses to send control characters). */
export const headerText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZabcxyz[\\]^_`{|}~\t'.split('')), maxLength: 60 }),
  fc.constantFrom(...TRICKY.filter((v) => /^[\t\x20-\x7e]*$/.test(v) && v.length < 200)),
);

/** A random base64url segment of JSON (or not). */
const segment = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
  fc
    .record({
      alg: fc.constantFrom('none', 'HS256', 'RS256', 'ES384', 'RS384', 'PS256', 'EdDSA', 'nope'),
      kid: fc.option(fc.string()),
      typ: fc.option(fc.string()),
    })
    .map((h) => Buffer.from(JSON.stringify(h)).toString('base64url')),
  fc
    .record({
      iss: hostile,
      sub: hostile,
      aud: fc.oneof(hostile, fc.array(hostile)),
      exp: fc.oneof(fc.integer(), fc.double(), hostile),
      jti: fc.option(hostile),
      iat: fc.option(fc.integer()),
    })
    .map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')),
  fc.base64String({ maxLength: 40 }),
  fc.string({ maxLength: 20 }),
);

/** Garbage that looks like a JWT at a glance: three (or two, or four) dotted segments. */
export const garbageJwt: fc.Arbitrary<string> = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('.'));

/** A placeholder the sender swaps for a freshly signed, valid client assertion. */
export const VALID_ASSERTION = '<<valid client assertion>>';

type Action = { kind: 'keep' } | { kind: 'drop' } | { kind: 'replace'; value: string } | { kind: 'twice'; value: string };

const action = (extra: fc.Arbitrary<string>): fc.Arbitrary<Action> =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constant<Action>({ kind: 'keep' }) },
    { weight: 1, arbitrary: fc.constant<Action>({ kind: 'drop' }) },
    { weight: 2, arbitrary: fc.oneof(hostile, extra).map<Action>((value) => ({ kind: 'replace', value })) },
    { weight: 1, arbitrary: fc.oneof(hostile, extra).map<Action>((value) => ({ kind: 'twice', value })) },
  );

export type Params = Array<[string, string]>;

/**
 * A valid parameter set with some parameters dropped, replaced, or repeated, and a few unknown or
 * oddly named ones added. `extra` are values worth trying for any parameter of this endpoint.
 */
export function mutatedParams(base: Record<string, string>, extra: fc.Arbitrary<string> = hostile): fc.Arbitrary<Params> {
  const keys = Object.keys(base);
  return fc
    .tuple(
      fc.tuple(...keys.map(() => action(extra))),
      fc.array(
        fc.tuple(fc.oneof(fc.constantFrom(...keys, '__proto__', 'constructor', 'a[b]', 'a[]', ''), fc.string({ maxLength: 12 })), hostile),
        { maxLength: 3 },
      ),
    )
    .map(([actions, added]) => {
      const out: Params = [];
      keys.forEach((k, i) => {
        const a = actions[i]!;
        if (a.kind === 'keep') out.push([k, base[k]!]);
        else if (a.kind === 'replace') out.push([k, a.value]);
        else if (a.kind === 'twice') out.push([k, base[k]!], [k, a.value]);
      });
      return [...out, ...added];
    });
}

/** Percent-encodes the UTF-8 bytes (lone surrogates become U+FFFD, as a browser would send them). */
export function pct(value: string): string {
  return [...Buffer.from(value, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}

export function encodeParams(params: Params): string {
  return params.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
}

/** A raw body: mostly the encoded parameters, sometimes bytes that are not urlencoded at all. */
export function formBody(params: fc.Arbitrary<Params>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: params.map(encodeParams) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.constantFrom('%', '=&=&', 'a=%E0%A4%A', 'scope=%FF%FE&client_id=%C0%AF', '&&&', 'a=1&a[b]=2&a[c][d]=3'),
      ),
    },
  );
}

/**
 * A JSON document derived from a valid one: members dropped, replaced by any JSON value, or
 * extra ones added, recursively one level down; or a different JSON value altogether.
 */
export function mutatedJson(template: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(template);
  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const member = (k: string) =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(template[k]) },
      { weight: 1, arbitrary: fc.constant(undefined) },
      { weight: 2, arbitrary: anyJson },
      { weight: 1, arbitrary: hostile },
      ...(template[k] && typeof template[k] === 'object' && !Array.isArray(template[k])
        ? [{ weight: 2, arbitrary: mutatedJson(template[k] as Record<string, unknown>) }]
        : []),
      ...(Array.isArray(template[k])
        ? [
            {
              weight: 2,
              arbitrary: fc.array(
                fc.oneof(
                  anyJson,
                  ...(template[k] as unknown[]).map((v) =>
                    v && typeof v === 'object' && !Array.isArray(v) ? mutatedJson(v as Record<string, unknown>) : fc.constant(v),
                  ),
                ),
                { maxLength: 3 },
              ),
            },
          ]
        : []),
    );
  const mutated = fc
    .tuple(
      fc.tuple(...keys.map(member)),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'schemas', 'id', 'meta')), anyJson, {
        maxKeys: 2,
      }),
    )
    .map(([values, added]) => {
      const out: Record<string, unknown> = {};
      keys.forEach((k, i) => {
        if (values[i] !== undefined) out[k] = values[i];
      });
      for (const [k, v] of Object.entries(added))
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      return out;
    });
  return fc.oneof({ weight: 8, arbitrary: mutated }, { weight: 1, arbitrary: anyJson });
}

/** A body as sent: usually JSON, sometimes malformed text. */
export function jsonBody(doc: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: doc.map((d) => JSON.stringify(d) ?? 'null') },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.constantFrom('{', '{"a":', '[1,', '{"__proto__":{"x":1}}', '1'.repeat(400), '"x"', '\uFEFF{}'),
      ),
    },
  );
}

/** Authorization header shapes: Bearer/Basic/DPoP with garbage, or garbage. */
export const authorizationHeader: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  garbageJwt.map((j) => `Bearer ${j}`),
  headerText.map((s) => `Bearer ${s}`),
  fc.tuple(headerText, headerText).map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`),
  headerText.map((s) => `Basic ${s}`),
  headerText.map((s) => `DPoP ${s}`),
  headerText,
);

/** Cookie header: this app's cookie names with random values, or noise. */
export const cookieHeader: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc
    .array(
      fc.tuple(
        fc.constantFrom(
          '_session',
          '_session.sig',
          '_interaction',
          '_interaction.sig',
          '_interaction_resume',
          '_interaction_resume.sig',
          '_session.legacy',
          'manage',
          'manage.sig',
          '__proto__',
          'x',
        ),
        headerText.map((s) => s.replace(/[;,]/g, '')),
      ),
      { maxLength: 5 },
    )
    .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('; ')),
  headerText,
);

export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/json',
    'application/scim+json',
    'application/fhir+json',
    'application/json-patch+json',
    'application/json; charset=utf-16',
    'application/x-www-form-urlencoded; charset=latin1',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/xml',
    '*/*',
    'application/',
  ),
  headerText,
);

export const acceptHeader: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('text/html', 'application/json', 'application/fhir+json', '*/*', 'text/html;q=0, */*;q=0', 'image/png'),
  headerText,
);

/** X-Forwarded-* and other headers a proxy or attacker sets. */
export const forwardedHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'X-Forwarded-For': fc.oneof(
      headerText,
      fc.ipV4(),
      fc.ipV6(),
      fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 4 }).map((a) => a.join(', ')),
    ),
    'X-Forwarded-Proto': fc.oneof(fc.constantFrom('http', 'https', 'https, http', 'gopher'), headerText),
    'X-Forwarded-Host': fc.oneof(fc.constantFrom('localhost:3000', 'evil.example', 'a:b:c', '[::1]:80'), headerText),
    'X-Request-Id': headerText,
    Origin: fc.oneof(fc.webUrl(), headerText),
    Host: fc.oneof(fc.constantFrom('localhost:3000', 'evil.example', '[::1]', 'a b'), headerText),
  },
  { requiredKeys: [] },
);
