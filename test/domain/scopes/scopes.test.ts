import { parseScopePattern } from '../../../src/oauth/clients/scope-patterns.js';
import { downscope, resourceTypesOf, scopeAllows } from '../../../src/domain/scopes/scopes.js';
import { formatScope, parseScope, type ParsedScope, type ScopeContext } from '../../../src/domain/scopes/scope-syntax.js';

describe('parseScope', () => {
  test.each([
    ['patient/Observation.rs', 'patient', 'Observation', 'rs', 'v2'],
    ['user/*.cruds', 'user', '*', 'cruds', 'v2'],
    ['system/Patient.c', 'system', 'Patient', 'c', 'v2'],
    ['system/*.read', 'system', '*', 'rs', 'v1'],
    ['patient/Observation.write', 'patient', 'Observation', 'cud', 'v1'],
    ['user/Patient.*', 'user', 'Patient', 'cruds', 'v1'],
  ])('%s is a resource scope', (raw, context, resourceType, letters, syntax) => {
    expect(parseScope(raw)).toEqual({ kind: 'resource', context, resourceType, permissions: new Set(letters), syntax, raw });
  });

  test('a query is kept as written and as sorted, decoded pairs', () => {
    const p = parseScope('patient/Observation.rs?code=http://loinc.org%7C1234-5&category=laboratory&code=a');
    expect(p).toMatchObject({
      kind: 'resource',
      query: {
        text: 'code=http://loinc.org%7C1234-5&category=laboratory&code=a',
        pairs: [
          ['category', 'laboratory'],
          ['code', 'a'],
          ['code', 'http://loinc.org|1234-5'],
        ],
      },
    });
  });

  test.each([
    'openid',
    'fhirUser',
    'profile',
    'launch',
    'launch/patient',
    'launch/encounter',
    'offline_access',
    'online_access',
    'launch/imagingstudy',
  ])('%s is a context scope', (raw) => {
    expect(parseScope(raw)).toEqual({ kind: 'context', name: raw, raw });
  });

  test('launch/<type>?role= carries the role', () => {
    const raw = 'launch/diagnosticreport?role=https://example.org/roles/primary';
    expect(parseScope(raw)).toEqual({ kind: 'context', name: 'launch/diagnosticreport', role: 'https://example.org/roles/primary', raw });
  });

  test.each([
    '__introspect',
    'https://ehr.example.org/scopes/dark-mode',
    'email',
    'foo/bar',
    'http://smarthealthit.org/fhir/scopes/patient/*.r',
  ])('%s is some other scope', (raw) => {
    expect(parseScope(raw)).toEqual({ kind: 'other', raw });
  });

  test.each([
    ['patient/Observation.xyz', /has permissions "xyz"/],
    ['patient/Observation.rsc', /has permissions "rsc"; use read, write or \* \(v1\) or an in-order subset of cruds/],
    ['patient/Observation.sr', /has permissions "sr"/],
    ['patient/Observation.rr', /has permissions "rr"/],
    ['patient/Observation.', /has permissions ""/],
    ['patient/Observation.rd.read', /has permissions "rd.read"/],
    ['patient/.rs', /resource type is missing/],
    ['patient/Observation', /permissions after the resource type are missing/],
    ['foo/Observation.rs', /context "foo" must be patient, user or system/],
    ['system/observation.rs', /resource type "observation" must be a FHIR resource type/],
    ['system/O.rs', /resource type "O"/],
    ['system/Obs-ervation.rs', /resource type "Obs-ervation"/],
    ['patient/Observation.rs?', /empty query/],
    ['patient/Observation.rs?category', /query part "category"; each must be name=value$/],
    ['patient/Observation.rs?category=', /query part "category="/],
    ['patient/Observation.rs?=lab', /query part "=lab"/],
    ['patient/Observation.rs?cat$gory=lab', /invalid search parameter name "cat\$gory"/],
    ['patient/Observation.rs?category=%E0%A4%A', /broken percent-encoding/],
    ['launch/Patient', /lower case letters, e\.g\. launch\/patient/],
    ['launch/', /type after launch\/ is missing/],
    ['launch?role=x', /only launch\/<type> scopes may carry \?role=/],
    ['launch/patient?role=', /single non-empty \?role=/],
    ['launch/patient?role=a&role=b', /single non-empty \?role=/],
    ['launch/patient?foo=a', /single non-empty \?role=/],
    ['patient/*.rs openid', /^contains whitespace$/],
    ['', /^is empty$/],
  ])('%s is invalid', (raw, problem) => {
    const p = parseScope(raw);
    expect(p.kind).toBe('invalid');
    expect(p.kind === 'invalid' && p.problem).toMatch(problem);
  });

  test('v1 keywords are never read letter by letter', () => {
    // ".read" would be "r" + an unknown letter if parsed as v2; it must mean exactly r+s.
    expect(parseScope('patient/*.read')).toMatchObject({ permissions: new Set(['r', 's']) });
    expect(parseScope('patient/*.rd')).toMatchObject({ permissions: new Set(['r', 'd']), syntax: 'v2' });
  });
});

describe('formatScope', () => {
  const p = (s: string): ParsedScope => parseScope(s);

  test.each([
    ['system/*.read', undefined, 'system/*.read'],
    ['system/*.read', 'v2', 'system/*.rs'],
    ['system/*.rs', 'v1', 'system/*.read'],
    ['user/Patient.cruds', 'v1', 'user/Patient.*'],
    ['user/Patient.cud', 'v1', 'user/Patient.write'],
    ['user/Patient.r', 'v1', 'user/Patient.r'],
    ['system/Observation.rs?b=2&a=1', 'v2', 'system/Observation.rs?b=2&a=1'],
    ['openid', 'v2', 'openid'],
    ['__x', undefined, '__x'],
  ] as const)('%s as %s is %s', (raw, syntax, out) => {
    expect(formatScope(p(raw), syntax)).toBe(out);
  });
});

describe('scopeAllows', () => {
  const allows = (allowed: string, requested: string): string | undefined => scopeAllows(parseScope(allowed), parseScope(requested))?.raw;

  test.each([
    ['system/*.rs', 'system/Observation.rs', 'system/Observation.rs'],
    ['system/*.rs', 'system/Observation.cruds', 'system/Observation.rs'],
    ['system/*.rs', 'system/*.read', 'system/*.read'],
    ['system/*.rs', 'system/Observation.write', undefined],
    ['system/*.rs', 'patient/Observation.rs', undefined],
    ['system/Patient.rs', 'system/Observation.rs', undefined],
    ['system/Observation.r', 'system/*.rs', 'system/Observation.r'],
    ['system/*.read', 'system/Observation.s', 'system/Observation.s'],
    ['system/Observation.rs?category=laboratory', 'system/Observation.rs', 'system/Observation.rs?category=laboratory'],
    ['system/Observation.rs', 'system/Observation.rs?category=vital-signs', 'system/Observation.rs?category=vital-signs'],
    ['system/Observation.rs?category=laboratory', 'system/Observation.r?category=laboratory', 'system/Observation.r?category=laboratory'],
    ['system/Observation.rs?a=1&b=2', 'system/Observation.r?b=2&a=1', 'system/Observation.r?b=2&a=1'],
    ['system/Observation.rs?category=laboratory', 'system/Observation.rs?category=vital-signs', undefined],
    ['openid', 'openid', 'openid'],
    ['openid', 'fhirUser', undefined],
    ['__x', '__x', '__x'],
    ['system/*.rs', 'system/Observation.rsc', undefined],
  ])('allowed %s, requested %s gives %s', (allowed, requested, out) => {
    expect(allows(allowed, requested)).toBe(out);
  });

  test('a v1 request narrowed to something v1 cannot say falls back to v2', () => {
    expect(scopeAllows(parseScope('patient/*.r'), parseScope('patient/Observation.read'))).toMatchObject({
      syntax: 'v2',
      raw: 'patient/Observation.r',
    });
  });
});

describe('downscope', () => {
  type Row = [string, string[], string[], ScopeContext[], string[], string[]];
  // [name, allowed, requested, contexts, granted, refused scopes]
  const rows: Row[] = [
    ['exact grant under a wildcard', ['system/*.rs'], ['system/Observation.rs'], ['system'], ['system/Observation.rs'], []],
    ['permissions are cut down', ['system/*.rs'], ['system/Patient.cruds'], ['system'], ['system/Patient.rs'], []],
    ['v1 stays v1', ['system/*.rs'], ['system/*.read'], ['system'], ['system/*.read'], []],
    ['no permission left', ['system/*.rs'], ['system/Observation.write'], ['system'], [], ['system/Observation.write']],
    ['wrong context', ['system/*.rs'], ['patient/Observation.rs'], ['system'], [], ['patient/Observation.rs']],
    [
      'allowed query imposed',
      ['system/Observation.rs?category=laboratory'],
      ['system/Observation.rs'],
      ['system'],
      ['system/Observation.rs?category=laboratory'],
      [],
    ],
    [
      'requested query kept',
      ['system/Observation.rs'],
      ['system/Observation.rs?category=vital-signs'],
      ['system'],
      ['system/Observation.rs?category=vital-signs'],
      [],
    ],
    ['v1 pattern, v2 request', ['system/*.read'], ['system/Observation.s'], ['system'], ['system/Observation.s'], []],
    ['v1 request under v2 pattern', ['user/*.cruds'], ['user/Patient.*'], ['user'], ['user/Patient.*'], []],
    ['out-of-order permissions', ['system/*.rs'], ['system/Observation.rsc'], ['system'], [], ['system/Observation.rsc']],
    ['lower-case type', ['system/*.rs'], ['system/observation.rs'], ['system'], [], ['system/observation.rs']],
    [
      'duplicates',
      ['system/*.rs'],
      ['system/Observation.rs', 'system/Observation.rs', 'system/Observation.rsc', 'system/Observation.rsc'],
      ['system'],
      ['system/Observation.rs'],
      ['system/Observation.rsc'],
    ],
    [
      'duplicates after cutting down',
      ['system/*.rs'],
      ['system/Observation.rs', 'system/Observation.cruds'],
      ['system'],
      ['system/Observation.rs'],
      [],
    ],
    ['union of patterns', ['system/Observation.r', 'system/*.s'], ['system/Observation.rs'], ['system'], ['system/Observation.rs'], []],
    [
      'union of v1 request parts renders v1',
      ['system/Observation.r', 'system/*.s'],
      ['system/Observation.read'],
      ['system'],
      ['system/Observation.read'],
      [],
    ],
    [
      'wildcard request meets typed patterns',
      ['patient/Observation.rs', 'patient/Patient.r'],
      ['patient/*.read'],
      ['patient'],
      ['patient/Observation.read', 'patient/Patient.r'],
      [],
    ],
    [
      'covered part dropped',
      ['patient/*.rs', 'patient/Observation.r'],
      ['patient/Observation.rs'],
      ['patient'],
      ['patient/Observation.rs'],
      [],
    ],
    [
      'constrained and unconstrained parts both kept',
      ['patient/Observation.rs?category=laboratory', 'patient/Observation.r'],
      ['patient/Observation.rs'],
      ['patient'],
      ['patient/Observation.rs?category=laboratory', 'patient/Observation.r'],
      [],
    ],
    [
      'constrained part covered by a wider unconstrained one',
      ['patient/Observation.r?category=laboratory', 'patient/Observation.rs'],
      ['patient/Observation.rs'],
      ['patient'],
      ['patient/Observation.rs'],
      [],
    ],
    [
      'conflicting queries',
      ['patient/Observation.rs?category=laboratory'],
      ['patient/Observation.rs?category=vital-signs'],
      ['patient'],
      [],
      ['patient/Observation.rs?category=vital-signs'],
    ],
    [
      'context scopes need an exact pattern',
      ['openid', 'launch/patient', 'patient/*.rs'],
      ['openid', 'fhirUser', 'launch/patient', 'launch'],
      ['patient'],
      ['openid', 'launch/patient'],
      ['fhirUser', 'launch'],
    ],
    ['extension scopes need an exact pattern', ['__introspect'], ['__introspect', '__other'], [], ['__introspect'], ['__other']],
    [
      'without a list of known types any well-formed type is trusted',
      ['patient/*.cruds'],
      ['patient/Observation.rs', 'patient/Bogus.rs', 'patient/Observation.dus'],
      ['patient', 'user'],
      ['patient/Observation.rs', 'patient/Bogus.rs'],
      ['patient/Observation.dus'],
    ],
    ['no contexts at all', ['system/*.rs'], ['system/*.rs'], [], [], ['system/*.rs']],
  ];

  test.each(rows)('%s', (_name, allowed, requested, contexts, granted, refused) => {
    const result = downscope(requested, allowed, { contexts });
    expect(result.granted).toEqual(granted);
    expect(result.refused.map((r) => r.scope)).toEqual(refused);
  });

  test('unknown resource types are refused when the server says which it knows (GR-03)', () => {
    const result = downscope(
      ['patient/Observation.rs', 'patient/Bogus.rs', 'patient/Observation.dus', 'patient/*.r'],
      ['patient/*.cruds'],
      {
        contexts: ['patient'],
        resourceTypes: ['Observation', 'Patient'],
      },
    );
    expect(result.granted).toEqual(['patient/Observation.rs', 'patient/*.r']);
    expect(result.refused).toEqual([
      { scope: 'patient/Bogus.rs', reason: 'names the resource type "Bogus", which this server does not know' },
      { scope: 'patient/Observation.dus', reason: expect.stringMatching(/^has permissions "dus"/) },
    ]);
  });

  test('keeps the order of the request and of its query', () => {
    const result = downscope(
      ['system/Patient.rs', 'system/Observation.rs?code=x&category=laboratory', 'system/Encounter.r'],
      ['system/*.cruds'],
      { contexts: ['system'] },
    );
    expect(result.granted).toEqual(['system/Patient.rs', 'system/Observation.rs?code=x&category=laboratory', 'system/Encounter.r']);
  });

  test('keepV1Syntax: false prints every grant in v2', () => {
    expect(
      downscope(['system/*.read', 'system/Patient.*'], ['system/*.cruds'], { contexts: ['system'], keepV1Syntax: false }).granted,
    ).toEqual(['system/*.rs', 'system/Patient.cruds']);
  });

  test('refusals say why', () => {
    const { refused } = downscope(
      ['patient/Observation.rs', 'system/Observation.rsc', 'system/Observation.write', 'fhirUser'],
      ['system/*.rs'],
      { contexts: ['system'] },
    );
    expect(refused).toEqual([
      { scope: 'patient/Observation.rs', reason: 'is a patient/ scope; this client may only be granted system/ scopes' },
      {
        scope: 'system/Observation.rsc',
        reason: 'has permissions "rsc"; use read, write or * (v1) or an in-order subset of cruds such as rs (v2)',
      },
      { scope: 'system/Observation.write', reason: 'is not permitted by any scope this client may be granted' },
      { scope: 'fhirUser', reason: 'is not among the scopes this client may be granted' },
    ]);
  });

  test('invalid allowed patterns permit nothing', () => {
    expect(
      downscope(['system/Observation.rs'], ['system/Observation.sr', 'system/observation.rs'], { contexts: ['system'] }).granted,
    ).toEqual([]);
  });
});

describe('downscope never widens (randomised)', () => {
  // A fixed seed keeps failures reproducible; the alphabet is small so collisions are frequent.
  function prng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const random = prng(20240611);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const contexts = ['patient', 'user', 'system'] as const;
  const types = ['Observation', 'Patient', '*'];
  const suffixes = ['read', 'write', '*', 'r', 's', 'rs', 'cud', 'cruds', 'c', 'ud', 'rd', 'sr', 'x'];
  const queries = [
    '',
    '',
    '',
    '?category=laboratory',
    '?category=vital-signs',
    '?code=x&category=laboratory',
    '?category=laboratory&code=x',
  ];
  const randomScope = (): string => `${pick(contexts)}/${pick(types)}.${pick(suffixes)}${pick(queries)}`;

  // Grants merge permissions from several patterns (allowed r + s gives rs), so the claim is made
  // per permission: each one-permission slice of a grant is something one pattern permits as is.
  const slices = (g: string): ParsedScope[] => {
    const scope = parseScope(g);
    if (scope.kind !== 'resource') return [scope];
    return [...scope.permissions].map((letter) => parseScope(formatScope({ ...scope, permissions: new Set([letter]) }, 'v2')));
  };
  const permitsAsIs = (pattern: string, slice: ParsedScope): boolean => {
    const common = scopeAllows(parseScope(pattern), slice);
    return common !== undefined && common.raw === slice.raw;
  };

  test('every permission granted is permitted by the request and by some allowed pattern, unchanged', () => {
    let grants = 0;
    for (let round = 0; round < 200; round++) {
      const allowed = Array.from({ length: 1 + Math.floor(random() * 4) }, randomScope);
      const requested = Array.from({ length: 1 + Math.floor(random() * 4) }, randomScope);
      const granted = downscope(requested, allowed, { contexts: ['patient', 'system'] }).granted;
      grants += granted.length;
      for (const g of granted) {
        expect(parseScope(g).kind).toBe('resource');
        expect(g.startsWith('user/')).toBe(false);
        for (const slice of slices(g)) {
          const context = { round, allowed, requested, g, slice: slice.raw };
          expect({ ...context, byAllowed: allowed.some((a) => permitsAsIs(a, slice)) }).toEqual({ ...context, byAllowed: true });
          expect({ ...context, byRequest: requested.some((r) => permitsAsIs(r, slice)) }).toEqual({ ...context, byRequest: true });
        }
      }
    }
    // Guards against a generator that never produces anything grantable.
    expect(grants).toBeGreaterThan(40);
  });

  test('a grant from a single pattern is permitted by that pattern unchanged', () => {
    for (let round = 0; round < 200; round++) {
      const allowed = randomScope();
      for (const g of downscope([randomScope()], [allowed], { contexts: ['patient', 'user', 'system'] }).granted) {
        expect({ allowed, g, same: scopeAllows(parseScope(allowed), parseScope(g))?.raw }).toEqual({ allowed, g, same: g });
      }
    }
  });
});

describe('resourceTypesOf', () => {
  test('lists types once, wildcard first, ignoring other scopes', () => {
    expect(
      resourceTypesOf(['openid', 'patient/Patient.rs', 'patient/Observation.read', 'user/Observation.c', 'patient/*.s', 'patient/bad.rs']),
    ).toEqual(['*', 'Observation', 'Patient']);
  });
});

describe('registration view (src/oauth/clients/scope-patterns.ts)', () => {
  test.each([
    ['system/*.read', { kind: 'resource', context: 'system', resourceType: '*', permissions: 'read' }],
    [
      'patient/Observation.rs?category=laboratory',
      { kind: 'resource', context: 'patient', resourceType: 'Observation', permissions: 'rs', query: 'category=laboratory' },
    ],
    ['launch/imagingstudy', { kind: 'non-resource', scope: 'launch/imagingstudy' }],
    ['openid', { kind: 'non-resource', scope: 'openid' }],
  ])('%s', (scope, parsed) => {
    expect(parseScopePattern(scope)).toEqual(parsed);
  });

  test('extension scopes are not registrable', () => {
    expect(parseScopePattern('__introspect')).toEqual({
      problem: expect.stringMatching(/^is neither one of openid, .* nor a resource scope like/),
    });
  });

  test('problems come from the one parser', () => {
    expect(parseScopePattern('system/Observation.rsc')).toEqual({
      problem: (parseScope('system/Observation.rsc') as { problem: string }).problem,
    });
  });
});
