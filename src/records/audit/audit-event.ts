import { z } from 'zod';

/**
 * The FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html) as TypeScript types and a zod
 * schema that checks its structure: cardinalities, required elements, the required-binding code
 * sets (action, outcome, network type) and the sev-1 invariant. It does not check terminology of
 * extensible bindings (type, subtype, roles): those belong to the builders in ./events.
 *
 * Elements this server never writes (extensions, contained, text) are still accepted on the way
 * in, so an event that another tool produced with them round-trips through the trail unchanged.
 */

export interface Coding {
  system?: string;
  version?: string;
  code?: string;
  display?: string;
  userSelected?: boolean;
}

export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}

export interface Identifier {
  use?: 'usual' | 'official' | 'temp' | 'secondary' | 'old';
  type?: CodeableConcept;
  system?: string;
  value?: string;
}

export interface Reference {
  reference?: string;
  type?: string;
  identifier?: Identifier;
  display?: string;
}

export type AuditEventAction = 'C' | 'R' | 'U' | 'D' | 'E';
export type AuditEventOutcome = '0' | '4' | '8' | '12';

export interface AuditEventAgent {
  type?: CodeableConcept;
  role?: CodeableConcept[];
  who?: Reference;
  altId?: string;
  name?: string;
  requestor: boolean;
  location?: Reference;
  policy?: string[];
  media?: Coding;
  network?: { address?: string; type?: '1' | '2' | '3' | '4' | '5' };
  purposeOfUse?: CodeableConcept[];
}

export interface AuditEventEntityDetail {
  type: string;
  valueString?: string;
  valueBase64Binary?: string;
}

export interface AuditEventEntity {
  what?: Reference;
  type?: Coding;
  role?: Coding;
  lifecycle?: Coding;
  securityLabel?: Coding[];
  name?: string;
  description?: string;
  query?: string;
  detail?: AuditEventEntityDetail[];
}

export interface AuditEvent {
  resourceType: 'AuditEvent';
  id?: string;
  meta?: { versionId?: string; lastUpdated?: string; profile?: string[]; security?: Coding[]; tag?: Coding[] };
  type: Coding;
  subtype?: Coding[];
  action?: AuditEventAction;
  period?: { start?: string; end?: string };
  /** FHIR instant: date, time to the second or finer, and a zone. */
  recorded: string;
  outcome?: AuditEventOutcome;
  outcomeDesc?: string;
  purposeOfEvent?: CodeableConcept[];
  agent: AuditEventAgent[];
  source: { site?: string; observer: Reference; type?: Coding[] };
  entity?: AuditEventEntity[];
}

// --- zod schema (structure only; see the file comment) ---------------------------------------

/** FHIR id: 1-64 of [A-Za-z0-9-.]. */
export const fhirIdPattern = /^[A-Za-z0-9\-.]{1,64}$/;
/** FHIR instant (R4 regex, simplified to the same language). */
const instantPattern =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$/;
const dateTimePattern =
  /^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$/;
const base64Pattern = /^(\s*([0-9a-zA-Z+/=]){4}\s*)+$/;

/** FHIR string: non-empty, no leading/trailing-only whitespace requirement here, bounded for safety. */
const str = z.string().min(1).max(10_000);
const uri = z.string().min(1).max(4096).regex(/^\S*$/, 'must not contain whitespace');

export const codingSchema = z
  .object({
    system: uri.optional(),
    version: str.optional(),
    code: z
      .string()
      .min(1)
      .max(1000)
      .regex(/^\S+( \S+)*$/, 'invalid code')
      .optional(),
    display: str.optional(),
    userSelected: z.boolean().optional(),
  })
  .passthrough();

export const codeableConceptSchema = z.object({ coding: z.array(codingSchema).min(1).optional(), text: str.optional() }).passthrough();

const identifierSchema = z
  .object({
    use: z.enum(['usual', 'official', 'temp', 'secondary', 'old']).optional(),
    type: codeableConceptSchema.optional(),
    system: uri.optional(),
    value: str.optional(),
  })
  .passthrough();

export const referenceSchema = z
  .object({ reference: str.optional(), type: uri.optional(), identifier: identifierSchema.optional(), display: str.optional() })
  .passthrough();

const agentSchema = z
  .object({
    type: codeableConceptSchema.optional(),
    role: z.array(codeableConceptSchema).min(1).optional(),
    who: referenceSchema.optional(),
    altId: str.optional(),
    name: str.optional(),
    requestor: z.boolean(),
    location: referenceSchema.optional(),
    policy: z.array(uri).min(1).optional(),
    media: codingSchema.optional(),
    network: z
      .object({ address: str.optional(), type: z.enum(['1', '2', '3', '4', '5']).optional() })
      .passthrough()
      .optional(),
    purposeOfUse: z.array(codeableConceptSchema).min(1).optional(),
  })
  .passthrough();

const entitySchema = z
  .object({
    what: referenceSchema.optional(),
    type: codingSchema.optional(),
    role: codingSchema.optional(),
    lifecycle: codingSchema.optional(),
    securityLabel: z.array(codingSchema).min(1).optional(),
    name: str.optional(),
    description: str.optional(),
    query: z.string().regex(base64Pattern, 'must be base64').optional(),
    detail: z
      .array(
        z
          .object({ type: str, valueString: str.optional(), valueBase64Binary: z.string().regex(base64Pattern).optional() })
          .passthrough()
          // value[x] is 1..1 with a choice of two types.
          .refine(
            (d) => (d.valueString === undefined) !== (d.valueBase64Binary === undefined),
            'needs exactly one of valueString or valueBase64Binary',
          ),
      )
      .min(1)
      .optional(),
  })
  .passthrough()
  // sev-1: "Either a name or a query (NOT both)".
  .refine((e) => e.name === undefined || e.query === undefined, { message: 'sev-1: either a name or a query (not both)' });

export const auditEventSchema = z
  .object({
    resourceType: z.literal('AuditEvent'),
    id: z.string().regex(fhirIdPattern).optional(),
    meta: z.object({}).passthrough().optional(),
    type: codingSchema,
    subtype: z.array(codingSchema).min(1).optional(),
    action: z.enum(['C', 'R', 'U', 'D', 'E']).optional(),
    period: z
      .object({ start: z.string().regex(dateTimePattern).optional(), end: z.string().regex(dateTimePattern).optional() })
      .passthrough()
      .optional(),
    recorded: z.string().regex(instantPattern, 'must be a FHIR instant'),
    outcome: z.enum(['0', '4', '8', '12']).optional(),
    outcomeDesc: str.optional(),
    purposeOfEvent: z.array(codeableConceptSchema).min(1).optional(),
    agent: z.array(agentSchema).min(1),
    source: z.object({ site: str.optional(), observer: referenceSchema, type: z.array(codingSchema).min(1).optional() }).passthrough(),
    entity: z.array(entitySchema).min(1).optional(),
  })
  .passthrough();

/** Structural problems of an event, as `path: message` lines (empty when valid). */
export function auditEventProblems(event: unknown): string[] {
  const result = auditEventSchema.safeParse(event);
  if (result.success) return [];
  return result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}
