import { isDeepStrictEqual } from 'node:util';
import { scimPatch, NoTarget, type ScimPatchOperation, type ScimResource } from 'scim-patch';
import { findAttribute, splitSchemaPrefix, topLevelAttributes } from '../../records/directory/scim/attribute-paths.js';
import { compileValueFilter, parseFilterText } from '../../records/directory/scim/filter.js';
import { invalidPath, invalidSyntax, invalidValue, mutability, noTarget, ScimError } from '../../domain/scim/errors.js';
import { isPlainObject, readBoolean } from '../../records/directory/scim/resource-input.js';
import type { AttributeDef, ResourceTypeDef, SchemaDef } from '../../records/directory/scim/schema-definitions.js';

/**
 * PATCH (RFC 7644 §3.5.2) on top of `scim-patch`, which applies add/replace/remove mechanics.
 * Before it runs, each operation is brought into a shape it handles correctly:
 *
 * - op names of any case ("Replace", Entra ID) and boolean strings ("False") are normalised;
 * - operations without `path` are split into one operation per attribute, so extension URNs and
 *   sub-attribute keys in the value are resolved by our schema rules, not by string splitting;
 * - paths are resolved case-insensitively to canonical names; unknown ones are `invalidPath`;
 * - value filters (`emails[type eq "work"]`) are evaluated by our filter engine (schema case
 *   rules), and the matching values are tagged so the library only has to find the tag;
 * - `remove` with a value on a multi-valued attribute (Entra's way of removing group members)
 *   removes the values whose given sub-attributes match, rather than needing exact equality;
 * - read-only attributes may only be "set" to what they already are (Okta repeats `id`).
 *
 * The result is a whole resource that the caller validates like a PUT body.
 */

export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const MAX_OPERATIONS = 1000;

const MARK = '__patch_target';

type OpName = 'add' | 'replace' | 'remove';

interface Operation {
  op: OpName;
  path?: string;
  value?: unknown;
}

interface ParsedPath {
  schema: SchemaDef;
  extension: boolean;
  attr: AttributeDef;
  filter?: string;
  sub?: AttributeDef;
  /** Canonical spelling for messages. */
  text: string;
}

const PATH_SHAPE = /^([A-Za-z$][\w$-]*)(?:\[(.*)\])?(?:\.([A-Za-z$][\w$-]*))?$/s;

function parsePath(rt: ResourceTypeDef, path: string): ParsedPath | 'schemas' {
  const { schema, extension, rest } = splitSchemaPrefix(rt, path.trim());
  if (!extension && rest.toLowerCase() === 'schemas') return 'schemas';
  const m = PATH_SHAPE.exec(rest);
  const attr = m ? findAttribute(topLevelAttributes(rt, schema), m[1]!) : undefined;
  if (!m || !attr) throw invalidPath(`path does not name an attribute of ${rt.name}${extension ? ` in ${schema.id}` : ''}`);
  const filter = m[2];
  const sub = m[3] !== undefined ? findAttribute(attr.subAttributes, m[3]) : undefined;
  if (m[3] !== undefined && !sub) throw invalidPath(`${attr.name} has no sub-attribute ${JSON.stringify(m[3])}`);
  if (filter !== undefined && (attr.type !== 'complex' || !attr.multiValued))
    throw invalidPath(`${attr.name} is not a multi-valued complex attribute, so it takes no value filter`);
  const text = `${extension ? `${schema.id}:` : ''}${attr.name}${filter !== undefined ? '[…]' : ''}${sub ? `.${sub.name}` : ''}`;
  return { schema, extension, attr, ...(filter !== undefined ? { filter } : {}), ...(sub ? { sub } : {}), text };
}

function readOperations(body: unknown): Operation[] {
  if (!isPlainObject(body)) throw invalidSyntax('the request body must be a PatchOp message (a JSON object)');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_SCHEMA.toLowerCase())) {
    throw invalidSyntax(`schemas must contain ${PATCH_SCHEMA}`);
  }
  const key = Object.keys(body).find((k) => k.toLowerCase() === 'operations');
  const ops = key ? body[key] : undefined;
  if (!Array.isArray(ops) || !ops.length) throw invalidSyntax('Operations must be a non-empty array');
  if (ops.length > MAX_OPERATIONS) throw invalidSyntax(`at most ${MAX_OPERATIONS} operations per request`);
  return ops.map((raw, i) => {
    if (!isPlainObject(raw)) throw invalidSyntax(`Operations[${i}] must be an object`);
    const fields = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.toLowerCase(), v]));
    const op = typeof fields.op === 'string' ? fields.op.toLowerCase() : '';
    if (op !== 'add' && op !== 'replace' && op !== 'remove') throw invalidSyntax(`Operations[${i}].op must be add, replace or remove`);
    if (fields.path !== undefined && (typeof fields.path !== 'string' || !fields.path.trim()))
      throw invalidPath(`Operations[${i}].path must be a non-empty string`);
    if (op !== 'remove' && fields.value === undefined) throw invalidSyntax(`Operations[${i}] (${op}) needs a value`);
    if (op === 'remove' && fields.path === undefined) throw noTarget(`Operations[${i}] (remove) needs a path`);
    return {
      op,
      ...(fields.path !== undefined ? { path: fields.path as string } : {}),
      ...(fields.value !== undefined ? { value: fields.value } : {}),
    };
  });
}

/** `{op, value: {a: 1, "urn:…:User": {b: 2}}}` → one operation per attribute, each with a path. */
function withPaths(rt: ResourceTypeDef, op: Operation): Operation[] {
  if (op.path !== undefined) return [op];
  if (!isPlainObject(op.value)) throw invalidValue(`an ${op.op} without path needs an object of attributes as its value`);
  return Object.entries(op.value).flatMap(([key, value]) => {
    const ext = rt.extensions.find((s) => s.id.toLowerCase() === key.toLowerCase());
    if (ext && isPlainObject(value)) return Object.entries(value).map(([sub, v]) => ({ op: op.op, path: `${ext.id}:${sub}`, value: v }));
    return [{ op: op.op, path: key, value }];
  });
}

function canonicalItem(def: AttributeDef, value: unknown): unknown {
  if (typeof value === 'string' && findAttribute(def.subAttributes, 'value')) return { value };
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const sub = findAttribute(def.subAttributes, k);
      if (!sub) return [k, v];
      return [sub.name, sub.type === 'boolean' ? (readBoolean(v) ?? v) : v];
    }),
  );
}

function canonicalValue(def: AttributeDef, value: unknown, item: boolean): unknown {
  if (def.type === 'complex') {
    if (!item && def.multiValued && Array.isArray(value)) return value.map((v) => canonicalItem(def, v));
    return canonicalItem(def, value);
  }
  if (def.type === 'boolean') return readBoolean(value) ?? value;
  return value;
}

/** Remove-with-value: does `item` carry every sub-attribute the client listed, with those values? */
function matchesGiven(def: AttributeDef, item: unknown, given: unknown): boolean {
  if (!isPlainObject(item) || !isPlainObject(given)) return isDeepStrictEqual(item, given);
  return Object.entries(given).every(([k, v]) => {
    const sub = findAttribute(def.subAttributes, k);
    const key = sub?.name ?? k;
    if (sub && !sub.caseExact && typeof v === 'string' && typeof item[key] === 'string')
      return v.toLowerCase() === (item[key] as string).toLowerCase();
    return isDeepStrictEqual(item[key], v);
  });
}

function holderFor(doc: Record<string, unknown>, p: ParsedPath, create: boolean): Record<string, unknown> | undefined {
  if (!p.extension) return doc;
  const existing = doc[p.schema.id];
  if (isPlainObject(existing)) return existing;
  if (!create) return undefined;
  const made: Record<string, unknown> = {};
  doc[p.schema.id] = made;
  return made;
}

function currentValue(holder: Record<string, unknown> | undefined, p: ParsedPath): unknown {
  const v = holder?.[p.attr.name];
  if (!p.sub) return v;
  return isPlainObject(v) ? v[p.sub.name] : undefined;
}

function checkMutability(
  doc: Record<string, unknown>,
  rt: ResourceTypeDef,
  op: Operation,
  p: ParsedPath,
  value: unknown,
): 'apply' | 'skip' {
  const target = p.sub ?? p.attr;
  if (p.attr.mutability === 'readOnly' || target.mutability === 'readOnly') {
    if (op.op !== 'remove' && p.filter === undefined && isDeepStrictEqual(currentValue(holderFor(doc, p, false), p), value)) return 'skip';
    throw mutability(`${p.text} is read-only`);
  }
  if (p.sub && target.mutability === 'immutable')
    throw mutability(`${p.text} cannot be changed once set (replace the whole value instead)`);
  if (op.op === 'remove' && target.mutability === 'writeOnly') throw mutability(`${p.text} cannot be removed; set a new value instead`);
  if (op.op === 'remove' && p.extension && rt.name === 'User' && p.attr.name === 'locked')
    throw mutability(`${p.text} cannot be removed; set it to false to lift a lock-out`);
  return 'apply';
}

function unmark(holder: Record<string, unknown> | undefined, name: string): void {
  const items = holder?.[name];
  if (Array.isArray(items)) for (const item of items) if (isPlainObject(item)) delete item[MARK];
}

function libraryFailure(err: unknown, op: Operation, p: ParsedPath): ScimError {
  if (err instanceof ScimError) return err;
  if (err instanceof NoTarget) return noTarget(`${op.op} ${p.text}: no value matched the filter`);
  const kind = (err as Error)?.constructor?.name ?? 'Error';
  return invalidValue(`${op.op} ${p.text} could not be applied (${kind.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()})`);
}

/** `addresses[type eq "work"]` with nothing matching: a new value made of the equality and the given sub-attributes. */
function addFromEquality(holder: Record<string, unknown>, p: ParsedPath, value: unknown, op: Operation): void {
  let ast: ReturnType<typeof parseFilterText> | undefined;
  try {
    ast = parseFilterText(p.filter!);
  } catch {
    ast = undefined;
  }
  const sub = ast && ast.op === 'eq' ? findAttribute(p.attr.subAttributes, ast.attrPath) : undefined;
  if (!ast || ast.op !== 'eq' || !sub || !isPlainObject(value)) throw noTarget(`${op.op} ${p.text}: no value matched the filter`);
  const items = Array.isArray(holder[p.attr.name]) ? (holder[p.attr.name] as unknown[]) : [];
  holder[p.attr.name] = [...items, { ...value, [sub.name]: ast.compValue }];
}

function applyOne(doc: Record<string, unknown>, rt: ResourceTypeDef, op: Operation): void {
  const parsed = parsePath(rt, op.path!);
  if (parsed === 'schemas') return; // computed from the attributes present
  const p = parsed;
  const def = p.sub ?? p.attr;
  let value = op.op === 'remove' ? op.value : canonicalValue(def, op.value, p.sub === undefined && p.filter !== undefined);
  if (checkMutability(doc, rt, op, p, value) === 'skip') return;

  const holder = holderFor(doc, p, op.op !== 'remove');
  if (!holder) return;
  let path = `${p.attr.name}${p.sub ? `.${p.sub.name}` : ''}`;
  const items = holder[p.attr.name];

  if (p.filter !== undefined) {
    let test: (item: Record<string, unknown>) => boolean;
    try {
      test = compileValueFilter(p.filter, rt, p.attr, p.attr.name);
    } catch (err) {
      throw invalidPath(`the value filter in ${p.text} is not valid: ${(err as ScimError).detail ?? 'syntax error'}`);
    }
    const matched = Array.isArray(items) ? items.filter((i) => isPlainObject(i) && test(i)) : [];
    if (!matched.length && op.op === 'remove') return;
    if (matched.length) {
      for (const item of matched) (item as Record<string, unknown>)[MARK] = 1;
      path = `${p.attr.name}[${MARK} eq 1]${p.sub ? `.${p.sub.name}` : ''}`;
    } else if (p.sub) {
      // No match: the library creates the value for add (and replace, which RFC 7644 lets act as
      // add on a missing target) when the filter is a single equality, else reports noTarget.
      path = `${p.attr.name}[${p.filter}].${p.sub.name}`;
    } else {
      addFromEquality(holder, p, value, op);
      return;
    }
  } else if (op.op === 'remove' && value !== undefined) {
    if (!p.attr.multiValued || p.sub || !Array.isArray(items)) {
      value = undefined; // a single value is removed whole, whatever value came along
    } else {
      const given = (Array.isArray(value) ? value : [value]).map((v) => canonicalItem(p.attr, v));
      const matched = items.filter((item) => given.some((g) => matchesGiven(p.attr, item, g)));
      if (!matched.length) return;
      for (const item of matched) if (isPlainObject(item)) item[MARK] = 1;
      if (p.attr.type === 'complex') {
        path = `${p.attr.name}[${MARK} eq 1]`;
        value = undefined;
      } else {
        value = matched;
      }
    }
  }

  const operation = (value === undefined ? { op: op.op, path } : { op: op.op, path, value }) as ScimPatchOperation;
  try {
    scimPatch(holder as unknown as ScimResource, [operation], { mutateDocument: true, treatMissingAsAdd: true });
  } catch (err) {
    throw libraryFailure(err, op, p);
  } finally {
    unmark(holder, p.attr.name);
  }
}

/** Items left without their `value` (after `remove emails[…].value`) are dropped; one primary at most. */
function tidy(doc: Record<string, unknown>, rt: ResourceTypeDef, primariesBefore: Map<string, string[]>): void {
  for (const schema of [rt.schema, ...rt.extensions]) {
    const holder = schema === rt.schema ? doc : doc[schema.id];
    if (!isPlainObject(holder)) continue;
    for (const def of schema.attributes) {
      const items = holder[def.name];
      if (!def.multiValued || def.type !== 'complex' || !Array.isArray(items)) continue;
      const kept = findAttribute(def.subAttributes, 'value')
        ? items.filter((i) => !isPlainObject(i) || (i.value !== undefined && i.value !== null))
        : items;
      const primaries = kept.filter((i) => isPlainObject(i) && readBoolean(i.primary) === true) as Array<Record<string, unknown>>;
      if (primaries.length > 1) {
        // RFC 7644 §3.5.2: a value newly made primary takes over; the others stop being primary.
        const before = primariesBefore.get(`${schema.id}:${def.name}`) ?? [];
        const fresh = primaries.filter((i) => !before.includes(JSON.stringify(i.value)));
        const winner = fresh[fresh.length - 1] ?? primaries[primaries.length - 1];
        for (const i of primaries) if (i !== winner) i.primary = false;
      }
      if (kept.length) holder[def.name] = kept;
      else delete holder[def.name];
    }
  }
}

function primaries(doc: Record<string, unknown>, rt: ResourceTypeDef): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const schema of [rt.schema, ...rt.extensions]) {
    const holder = schema === rt.schema ? doc : doc[schema.id];
    if (!isPlainObject(holder)) continue;
    for (const def of schema.attributes) {
      const items = holder[def.name];
      if (Array.isArray(items))
        out.set(
          `${schema.id}:${def.name}`,
          items.filter((i) => isPlainObject(i) && i.primary === true).map((i) => JSON.stringify((i as Record<string, unknown>).value)),
        );
    }
  }
  return out;
}

/** Applies a PatchOp message to a resource (not modified) and returns the patched copy. */
export function applyPatch(resource: Record<string, unknown>, body: unknown, rt: ResourceTypeDef): Record<string, unknown> {
  const operations = readOperations(body).flatMap((op) => withPaths(rt, op));
  const doc = structuredClone(resource);
  const before = primaries(doc, rt);
  for (const op of operations) applyOne(doc, rt, op);
  tidy(doc, rt, before);
  return doc;
}
