import { buildConsent, buildProvenance, type ConsentDecision } from '../../../src/records/consent/consent-resource.js';
import { ConsentInputError } from '../../../src/records/consent/errors.js';
import { escapeXhtml } from '../../../src/records/consent/narrative.js';
import type { Consent } from '../../../src/domain/fhir/types.js';
import { consentProblems } from './consent-shape.js';

const ISSUER = 'https://as.example.org';
const NOW = new Date('2026-03-01T10:00:00.250Z');
const HOSTILE = '<script>alert(1)</script><img src=x onerror=1>';

function decision(overrides: Partial<ConsentDecision> = {}): ConsentDecision {
  return {
    kind: 'permit',
    patientId: 'pat-1',
    performer: { reference: 'Patient/pat-1', display: 'Pat One' },
    clientId: 'growth-chart',
    clientName: 'Growth Chart',
    scopes: ['openid', 'launch/patient', 'patient/Observation.rs', 'patient/Patient.r'],
    periodSeconds: 3600,
    ...overrides,
  };
}

const build = (d: ConsentDecision) => buildConsent(d, NOW, { issuer: ISSUER });

describe('buildConsent: a permit', () => {
  const c = build(decision({ clearance: 'N' }));

  test('is a structurally valid R4 Consent', () => {
    expect(consentProblems(c as unknown as Record<string, unknown>)).toEqual([]);
  });

  test('active, opt-in, patient-privacy, LOINC 59284-0 + IDSCL, policy URI under the issuer', () => {
    expect(c.status).toBe('active');
    expect(c.scope.coding[0]).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' });
    expect(c.category.map((x) => x.coding[0]!.code)).toEqual(['59284-0', 'IDSCL']);
    expect(c.category[1]!.coding[0]!.system).toBe('http://terminology.hl7.org/CodeSystem/v3-ActCode');
    expect(c.policyRule!.coding[0]).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' });
    expect(c.policy).toEqual([{ uri: `${ISSUER}/policies/smart-app-access` }]);
    expect(c.patient).toEqual({ reference: 'Patient/pat-1' });
    expect(c.performer).toEqual([{ reference: 'Patient/pat-1', display: 'Pat One' }]);
    expect(c.dateTime).toBe('2026-03-01T10:00:00Z');
    expect(c.verification).toEqual([
      { verified: true, verifiedWith: { reference: 'Patient/pat-1' }, verificationDate: '2026-03-01T10:00:00Z' },
    ]);
  });

  test('provision: permit for the grant lifetime, the app as information recipient, access only for read scopes', () => {
    const p = c.provision!;
    expect(p.type).toBe('permit');
    expect(p.period).toEqual({ start: '2026-03-01T10:00:00Z', end: '2026-03-01T11:00:00Z' });
    expect(p.actor).toEqual([
      {
        role: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP', display: 'information recipient' },
          ],
        },
        reference: {
          reference: 'Device/growth-chart',
          type: 'Device',
          identifier: { system: `${ISSUER}/clients`, value: 'growth-chart' },
          display: 'Growth Chart (client_id=growth-chart)',
        },
      },
    ]);
    expect(p.action!.map((a) => a.coding[0]!.code)).toEqual(['access']);
  });

  test('class, purpose and securityLabel are Codings (no coding arrays)', () => {
    const p = c.provision!;
    expect(p.class).toEqual([
      { system: 'http://hl7.org/fhir/resource-types', code: 'Observation' },
      { system: 'http://hl7.org/fhir/resource-types', code: 'Patient' },
    ]);
    expect(p.purpose).toEqual([
      { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'PATRQT', display: 'patient requested' },
    ]);
    for (const x of [...p.class!, ...p.purpose!, ...p.provision![0]!.securityLabel!]) expect(x).not.toHaveProperty('coding');
  });

  test('data above the clearance is denied in a nested provision', () => {
    expect(c.provision!.provision).toEqual([
      {
        type: 'deny',
        securityLabel: [
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R', display: 'restricted' },
          { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'V', display: 'very restricted' },
        ],
      },
    ]);
    expect(build(decision({ clearance: 'M' })).provision!.provision![0]!.securityLabel!.map((l) => l.code)).toEqual(['N', 'R', 'V']);
    expect(build(decision({ clearance: 'V' })).provision!.provision).toBeUndefined();
    expect(build(decision()).provision!.provision).toBeUndefined();
  });

  test('write scopes add the correct action; a wildcard type means no class, and the text says so', () => {
    const w = build(decision({ scopes: ['patient/*.cruds'] }));
    expect(w.provision!.action!.map((a) => a.coding[0]!.code)).toEqual(['access', 'correct']);
    expect(w.provision!.class).toBeUndefined();
    expect(w.text!.div).toContain('Resource types: all');
    expect(consentProblems(w as unknown as Record<string, unknown>)).toEqual([]);
  });

  test('purposes: given ones, else PATRQT for a patient or caregiver, none for a practitioner', () => {
    expect(build(decision({ purposes: ['TREAT', 'ETREAT'] })).provision!.purpose!.map((p) => p.code)).toEqual(['TREAT', 'ETREAT']);
    expect(build(decision({ performer: { reference: 'RelatedPerson/rp-1' } })).provision!.purpose!.map((p) => p.code)).toEqual(['PATRQT']);
    const byDoctor = build(decision({ performer: { reference: 'https://fhir.example.org/r4/Practitioner/dr-1' } }));
    expect(byDoctor.provision!.purpose).toBeUndefined();
    expect(byDoctor.performer).toEqual([{ reference: 'Practitioner/dr-1' }]);
    // verifiedWith only names a Patient or RelatedPerson (R4).
    expect(byDoctor.verification![0]).not.toHaveProperty('verifiedWith');
  });

  test('a client id that is not a FHIR id is referenced by identifier only', () => {
    const c2 = build(decision({ clientId: 'https://apps.example/app one' }));
    expect(c2.provision!.actor![0]!.reference).toEqual({
      type: 'Device',
      identifier: { system: `${ISSUER}/clients`, value: 'https://apps.example/app one' },
      display: 'Growth Chart (client_id=https://apps.example/app one)',
    });
    expect(consentProblems(c2 as unknown as Record<string, unknown>)).toEqual([]);
  });

  test.each([
    ['a performer that cannot consent', { performer: { reference: 'Device/x' } }],
    ['a patient that is not a Patient', { patientId: 'Practitioner/1' }],
    ['no period', { periodSeconds: 0 }],
    ['a purpose that is not a code', { purposes: ['treat me'] }],
  ])('refuses %s', (_name, overrides) => {
    expect(() => build(decision(overrides as Partial<ConsentDecision>))).toThrow(ConsentInputError);
  });
});

describe('buildConsent: a refusal', () => {
  const c = build(decision({ kind: 'deny', scopes: ['patient/Observation.rs', 'patient/Condition.rs'], clearance: 'N' }));

  test('is a structurally valid R4 Consent: rejected, opt-out, deny provision with the app as actor', () => {
    expect(consentProblems(c as unknown as Record<string, unknown>)).toEqual([]);
    expect(c.status).toBe('rejected');
    expect(c.policyRule!.coding[0]!.code).toBe('OPTOUT');
    expect(c.provision!.type).toBe('deny');
    expect(c.provision!.period).toEqual({ start: '2026-03-01T10:00:00Z' });
    expect(c.provision!.actor![0]!.reference.identifier!.value).toBe('growth-chart');
    expect(c.provision!.class!.map((x) => x.code)).toEqual(['Condition', 'Observation']);
    // Nothing is permitted, so there is nothing to carve a clearance exception out of.
    expect(c.provision!.provision).toBeUndefined();
  });
});

describe('narrative', () => {
  test('a hostile client name (and scope) cannot put markup into text.div', () => {
    const c = build(decision({ clientName: HOSTILE, kind: 'deny', scopes: ['patient/Observation.rs', '<b>x</b>'] }));
    const div = c.text!.div;
    expect(c.text!.status).toBe('generated');
    expect(div).not.toMatch(/<script|<img|onerror=1>/i);
    expect(div).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=1&gt;');
    // Only the fixed markup remains: every tag is one of ours.
    const tags = [...div.matchAll(/<\/?([a-zA-Z]+)[^>]*>/g)].map((m) => m[1]);
    expect(new Set(tags)).toEqual(new Set(['div', 'p', 'b']));
    expect(div.match(/<[^>]*\s[a-z]+=/g)).toEqual(['<div xmlns=']);
  });

  test('escapeXhtml escapes markup and quotes and drops characters XML cannot hold', () => {
    expect(escapeXhtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    expect(escapeXhtml('a\u0000b\u0007c\ud800d\u{1F600}')).toBe('abcd\u{1F600}');
  });
});

describe('buildProvenance', () => {
  test('targets the Consent version, with the activity and the agent', () => {
    const c: Consent = { ...build(decision()), id: 'c-1', meta: { versionId: '2', lastUpdated: '2026-03-01T10:00:00Z' } };
    const p = buildProvenance(c, 'UPDATE', { reference: 'Patient/pat-1' }, NOW);
    expect(p).toEqual({
      resourceType: 'Provenance',
      // One Provenance per Consent version; the id says which (GET /fhir/Provenance/<id>).
      id: 'c-1-2',
      target: [{ reference: 'Consent/c-1/_history/2' }],
      recorded: '2026-03-01T10:00:00Z',
      activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE', display: 'revise' }] },
      agent: [
        {
          type: {
            coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author', display: 'Author' }],
          },
          who: { reference: 'Patient/pat-1' },
        },
      ],
    });
  });
});
