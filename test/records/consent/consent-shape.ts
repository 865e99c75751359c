/**
 * A structural check of the R4 Consent elements this server writes (R4 4.0.1 StructureDefinition:
 * cardinalities, types, invariant ppc-1, code systems). Returns the problems found, so a test
 * failure names every one of them.
 */

type Json = Record<string, unknown>;

const STATUSES = ['draft', 'proposed', 'active', 'rejected', 'inactive', 'entered-in-error'];
const ACTIONS = ['collect', 'access', 'use', 'disclose', 'correct'];
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const CONFIDENTIALITY = ['U', 'L', 'M', 'N', 'R', 'V'];

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function consentProblems(c: Json): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  const isCoding = (v: unknown, system?: string, codes?: string[]): boolean =>
    isObject(v) &&
    !('coding' in v) &&
    typeof v.system === 'string' &&
    typeof v.code === 'string' &&
    (!system || v.system === system) &&
    (!codes || codes.includes(v.code as string));
  const isConcept = (v: unknown, system?: string, codes?: string[]): boolean =>
    isObject(v) &&
    Array.isArray(v.coding) &&
    v.coding.length > 0 &&
    v.coding.every((x) => isCoding(x)) &&
    (!system || v.coding.some((x) => isCoding(x, system, codes)));
  const isReference = (v: unknown): boolean => isObject(v) && (typeof v.reference === 'string' || isObject(v.identifier));

  need(c.resourceType === 'Consent', 'resourceType is Consent');
  need(typeof c.status === 'string' && STATUSES.includes(c.status), 'status is an R4 Consent.status code');
  need(
    isConcept(c.scope, 'http://terminology.hl7.org/CodeSystem/consentscope', ['patient-privacy']),
    'scope is consentscope#patient-privacy',
  );
  need(Array.isArray(c.category) && c.category.length >= 1 && c.category.every((x) => isConcept(x)), 'category 1..* CodeableConcept');
  need(Array.isArray(c.category) && c.category.some((x) => isConcept(x, 'http://loinc.org', ['59284-0'])), 'category has LOINC 59284-0');
  need(
    isReference(c.patient) && /^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(String((c.patient as Json).reference)),
    'patient is a Patient reference (ppc-2)',
  );
  need(typeof c.dateTime === 'string' && INSTANT.test(c.dateTime), 'dateTime');
  need(Array.isArray(c.performer) && c.performer.length > 0 && c.performer.every(isReference), 'performer');
  const hasPolicy =
    Array.isArray(c.policy) &&
    c.policy.length > 0 &&
    c.policy.every((p) => isObject(p) && (typeof p.uri === 'string' || typeof p.authority === 'string'));
  need(hasPolicy || isConcept(c.policyRule), 'policy or policyRule (ppc-1)');
  if (c.policyRule !== undefined)
    need(
      isConcept(c.policyRule, 'http://terminology.hl7.org/CodeSystem/v3-ActCode', ['OPTIN', 'OPTOUT']),
      'policyRule is v3-ActCode OPTIN/OPTOUT',
    );
  if (c.verification !== undefined) {
    need(
      Array.isArray(c.verification) && c.verification.every((v) => isObject(v) && typeof v.verified === 'boolean'),
      'verification.verified 1..1 boolean',
    );
  }
  if (isObject(c.text)) {
    need(
      c.text.status === 'generated' &&
        typeof c.text.div === 'string' &&
        c.text.div.startsWith('<div xmlns="http://www.w3.org/1999/xhtml">'),
      'text is a generated XHTML div',
    );
  }
  const checkProvision = (p: unknown, path: string) => {
    if (!isObject(p)) return need(false, `${path} is an object`);
    need(p.type === 'permit' || p.type === 'deny', `${path}.type permit|deny`);
    if (p.period !== undefined) need(isObject(p.period) && typeof p.period.start === 'string', `${path}.period.start`);
    for (const [i, a] of ((p.actor as unknown[]) ?? []).entries()) {
      need(
        isObject(a) &&
          isConcept(a.role, 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', ['IRCP']) &&
          isReference(a.reference),
        `${path}.actor[${i}] role IRCP + reference`,
      );
    }
    for (const a of (p.action as unknown[]) ?? [])
      need(isConcept(a, 'http://terminology.hl7.org/CodeSystem/consentaction', ACTIONS), `${path}.action consentaction`);
    for (const x of (p.class as unknown[]) ?? [])
      need(isCoding(x, 'http://hl7.org/fhir/resource-types'), `${path}.class is a Coding of resource-types`);
    for (const x of (p.purpose as unknown[]) ?? [])
      need(isCoding(x, 'http://terminology.hl7.org/CodeSystem/v3-ActReason'), `${path}.purpose is a Coding of v3-ActReason`);
    for (const x of (p.securityLabel as unknown[]) ?? [])
      need(
        isCoding(x, 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', CONFIDENTIALITY),
        `${path}.securityLabel is a Coding of v3-Confidentiality`,
      );
    for (const [i, n] of ((p.provision as unknown[]) ?? []).entries()) checkProvision(n, `${path}.provision[${i}]`);
  };
  if (c.provision !== undefined) checkProvision(c.provision, 'provision');
  return problems;
}
