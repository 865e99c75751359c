import { findAttribute, splitSchemaPrefix, topLevelAttributes } from './attribute-paths.js';
import { invalidSyntax, invalidValue } from '../../../domain/scim/errors.js';
import type { AttributeDef, ResourceTypeDef, SchemaDef } from './schema-definitions.js';

/**
 * Reads a resource a client sent (POST, PUT, or the result of a PATCH) into canonical form:
 * attribute names in their schema spelling, values of the declared type, read-only attributes
 * dropped (RFC 7643 §2.2: the server ignores them on input), write-only ones set aside. Unknown
 * attributes of the standard schemas are ignored, as provisioning clients send extras; unknown
 * attributes of our own strict extensions are refused. Values are never echoed in errors, so a
 * password sent in the wrong place cannot come back in a response or a log line.
 */

export const MAX_STRING = 2048;
export const MAX_VALUES = 100;

export interface ReadResource {
  resource: Record<string, unknown>;
  /** Write-only attributes as sent (the user's password), never part of `resource`. */
  writeOnly: Record<string, unknown>;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const BOOLEAN_TEXT: Record<string, boolean> = { true: true, false: false };

/** Booleans, and Entra ID's "True"/"False" strings. */
export function readBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') return BOOLEAN_TEXT[value.trim().toLowerCase()];
  return undefined;
}

function readSimple(def: AttributeDef, value: unknown, label: string): unknown {
  switch (def.type) {
    case 'boolean': {
      const b = readBoolean(value);
      if (b === undefined) throw invalidValue(`${label} must be a boolean`);
      return b;
    }
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalidValue(`${label} must be an integer`);
      return value;
    case 'decimal':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidValue(`${label} must be a number`);
      return value;
    case 'dateTime': {
      const ms = typeof value === 'string' ? Date.parse(value) : NaN;
      if (!Number.isFinite(ms)) throw invalidValue(`${label} must be an xsd:dateTime such as 2024-05-01T12:00:00Z`);
      return new Date(ms).toISOString();
    }
    default: {
      // Some clients send numeric strings (employee numbers) as JSON numbers.
      const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
      if (typeof text !== 'string') throw invalidValue(`${label} must be a string`);
      if (text.length > MAX_STRING) throw invalidValue(`${label} is longer than ${MAX_STRING} characters`);
      if (def.restrictValues && def.canonicalValues && !def.canonicalValues.includes(text)) {
        throw invalidValue(`${label} must be one of ${def.canonicalValues.join(', ')}`);
      }
      return text;
    }
  }
}

function readComplex(def: AttributeDef, value: unknown, label: string, strict: boolean): Record<string, unknown> | undefined {
  // Entra ID sends a manager as the bare id; a string stands for the `value` sub-attribute.
  if (typeof value === 'string' && findAttribute(def.subAttributes, 'value')) value = { value };
  if (!isPlainObject(value)) throw invalidValue(`${label} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(value)) {
    const sub = findAttribute(def.subAttributes, key);
    if (!sub) {
      if (strict) throw invalidValue(`${label} has no sub-attribute ${JSON.stringify(key)}`);
      continue;
    }
    if (sub.mutability === 'readOnly' || raw === null || raw === undefined) continue;
    out[sub.name] = readSimple(sub, raw, `${label}.${sub.name}`);
  }
  const ordered: Record<string, unknown> = {};
  for (const sub of def.subAttributes ?? []) {
    if (out[sub.name] !== undefined) ordered[sub.name] = out[sub.name];
    else if (sub.required) throw invalidValue(`${label}.${sub.name} is required`);
  }
  return Object.keys(ordered).length ? ordered : undefined;
}

function readSingle(def: AttributeDef, value: unknown, label: string, strict: boolean): unknown {
  return def.type === 'complex' ? readComplex(def, value, label, strict) : readSimple(def, value, label);
}

export function readAttribute(def: AttributeDef, value: unknown, label: string, strict: boolean): unknown {
  if (value === null || value === undefined) return undefined;
  if (!def.multiValued) return readSingle(def, value, label, strict);
  const items = Array.isArray(value) ? value : [value];
  if (items.length > MAX_VALUES) throw invalidValue(`${label} has more than ${MAX_VALUES} values`);
  const out = items.map((item, i) => readSingle(def, item, `${label}[${i}]`, strict)).filter((v) => v !== undefined);
  if (def.type === 'complex' && findAttribute(def.subAttributes, 'primary')) {
    if (out.filter((v) => (v as Record<string, unknown>).primary === true).length > 1) {
      throw invalidValue(`${label} may have at most one value with primary true`);
    }
  }
  return out.length ? out : undefined;
}

function readAttributes(
  rt: ResourceTypeDef,
  schema: SchemaDef,
  input: Record<string, unknown>,
  labelPrefix: string,
  into: ReadResource,
  target: Record<string, unknown>,
): void {
  const defs = topLevelAttributes(rt, schema);
  for (const [key, raw] of Object.entries(input)) {
    const def = findAttribute(defs, key);
    if (!def) {
      if (schema.strict) throw invalidValue(`${labelPrefix}${key} is not an attribute of ${schema.id}`);
      continue;
    }
    if (def.mutability === 'readOnly') continue;
    const label = `${labelPrefix}${def.name}`;
    if (def.mutability === 'writeOnly') {
      if (raw !== null && raw !== undefined) into.writeOnly[def.name] = raw;
      continue;
    }
    const value = readAttribute(def, raw, label, Boolean(schema.strict));
    if (value === undefined) delete target[def.name];
    else target[def.name] = value;
  }
}

/** `defaults` fill top-level attributes the input leaves unassigned (e.g. `active: true`). */
export function readResource(input: unknown, rt: ResourceTypeDef, defaults: Record<string, unknown> = {}): ReadResource {
  if (!isPlainObject(input)) throw invalidSyntax(`the request body must be a ${rt.name} resource (a JSON object)`);
  const out: ReadResource = { resource: {}, writeOnly: {} };
  const core: Record<string, unknown> = {};
  const flattened: Record<string, Record<string, unknown>> = {};
  for (const [key, raw] of Object.entries(input)) {
    if (key.toLowerCase() === 'schemas') continue;
    const ext = rt.extensions.find((s) => s.id.toLowerCase() === key.toLowerCase());
    if (ext) {
      if (raw === null || raw === undefined) continue;
      if (!isPlainObject(raw)) throw invalidValue(`${ext.id} must be an object`);
      Object.assign((flattened[ext.id] ??= {}), raw);
      continue;
    }
    // A URN-qualified attribute at the top level (`urn:…:enterprise:2.0:User:department`).
    const { schema, extension, rest } = splitSchemaPrefix(rt, key);
    if (extension) (flattened[schema.id] ??= {})[rest] = raw;
    else core[rest] = raw;
  }
  readAttributes(rt, rt.schema, core, '', out, out.resource);
  for (const ext of rt.extensions) {
    const given = flattened[ext.id];
    if (!given) continue;
    const target: Record<string, unknown> = {};
    readAttributes(rt, ext, given, `${ext.id}:`, out, target);
    if (Object.keys(target).length) out.resource[ext.id] = target;
  }
  for (const [name, value] of Object.entries(defaults)) if (out.resource[name] === undefined) out.resource[name] = value;
  for (const def of rt.schema.attributes) {
    if (def.required && out.resource[def.name] === undefined) throw invalidValue(`${def.name} is required`);
  }
  return { resource: inSchemaOrder(rt, out.resource), writeOnly: out.writeOnly };
}

/** Attributes in the order the schemas list them, so stored and returned resources read alike. */
function inSchemaOrder(rt: ResourceTypeDef, resource: Record<string, unknown>): Record<string, unknown> {
  const ordered: Record<string, unknown> = {
    schemas: [rt.schema.id, ...rt.extensions.filter((e) => resource[e.id] !== undefined).map((e) => e.id)],
  };
  for (const def of topLevelAttributes(rt, rt.schema)) {
    if (resource[def.name] !== undefined) ordered[def.name] = resource[def.name];
  }
  for (const ext of rt.extensions) {
    const value = resource[ext.id] as Record<string, unknown> | undefined;
    if (!value) continue;
    const inner: Record<string, unknown> = {};
    for (const def of ext.attributes) if (value[def.name] !== undefined) inner[def.name] = value[def.name];
    ordered[ext.id] = inner;
  }
  return ordered;
}
