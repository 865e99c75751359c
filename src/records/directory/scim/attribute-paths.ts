import { COMMON_ATTRIBUTES, type AttributeDef, type ResourceTypeDef, type SchemaDef } from './schema-definitions.js';

/**
 * Attribute paths (RFC 7644 §3.10): `userName`, `name.givenName`, and the same with a schema URN
 * in front, `urn:ietf:params:scim:schemas:core:2.0:User:userName` or
 * `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`. Attribute names are
 * case-insensitive; resolving gives the canonical spelling and the attribute's characteristics.
 */

export interface ResolvedAttribute {
  schema: SchemaDef;
  /** The value lives under `resource[schema.id]` rather than at the top level. */
  extension: boolean;
  attr: AttributeDef;
  sub?: AttributeDef;
  /** Canonical spelling, with the URN for extension attributes. */
  path: string;
}

export function findAttribute(defs: readonly AttributeDef[] | undefined, name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return defs?.find((d) => d.name.toLowerCase() === lower);
}

/** The schema a path starts with (core when it names none) and what follows its URN. */
export function splitSchemaPrefix(rt: ResourceTypeDef, path: string): { schema: SchemaDef; extension: boolean; rest: string } {
  const lower = path.toLowerCase();
  // Longest first: an extension URN may start with another schema's URN.
  const schemas = [rt.schema, ...rt.extensions].sort((a, b) => b.id.length - a.id.length);
  for (const schema of schemas) {
    const prefix = `${schema.id.toLowerCase()}:`;
    if (lower.startsWith(prefix)) return { schema, extension: schema !== rt.schema, rest: path.slice(prefix.length) };
  }
  return { schema: rt.schema, extension: false, rest: path };
}

/** The extension schema a bare URN names (e.g. in `attributes=`), if any. */
export function extensionNamed(rt: ResourceTypeDef, urn: string): SchemaDef | undefined {
  const lower = urn.toLowerCase();
  return rt.extensions.find((s) => s.id.toLowerCase() === lower);
}

export function topLevelAttributes(rt: ResourceTypeDef, schema: SchemaDef): AttributeDef[] {
  return schema === rt.schema ? [...COMMON_ATTRIBUTES, ...schema.attributes] : schema.attributes;
}

const NAME = /^[A-Za-z$][\w$-]*$/;

/** Resolves `attr` or `attr.sub` (with an optional schema URN); undefined when unknown. */
export function resolveAttributePath(rt: ResourceTypeDef, path: string): ResolvedAttribute | undefined {
  const { schema, extension, rest } = splitSchemaPrefix(rt, path);
  const [name, subName, ...more] = rest.split('.');
  if (!name || more.length || !NAME.test(name) || (subName !== undefined && !NAME.test(subName))) return undefined;
  const attr = findAttribute(topLevelAttributes(rt, schema), name);
  if (!attr) return undefined;
  const prefix = extension ? `${schema.id}:` : '';
  if (subName === undefined) return { schema, extension, attr, path: `${prefix}${attr.name}` };
  const sub = findAttribute(attr.subAttributes, subName);
  if (!sub) return undefined;
  return { schema, extension, attr, sub, path: `${prefix}${attr.name}.${sub.name}` };
}

/** The object holding a resolved attribute: the resource itself or its extension object. */
export function container(
  resource: Record<string, unknown>,
  resolved: Pick<ResolvedAttribute, 'schema' | 'extension'>,
): Record<string, unknown> | undefined {
  if (!resolved.extension) return resource;
  const ext = resource[resolved.schema.id];
  return ext && typeof ext === 'object' && !Array.isArray(ext) ? (ext as Record<string, unknown>) : undefined;
}

/** Every value at a path, multi-valued attributes flattened (`emails.value` → each address). */
export function valuesAt(resource: Record<string, unknown>, resolved: ResolvedAttribute): unknown[] {
  const holder = container(resource, resolved);
  const top = holder?.[resolved.attr.name];
  const items = top === undefined || top === null ? [] : Array.isArray(top) ? top : [top];
  if (!resolved.sub) return items;
  const sub = resolved.sub.name;
  return items.flatMap((item) => {
    if (!item || typeof item !== 'object') return [];
    const v = (item as Record<string, unknown>)[sub];
    return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
  });
}
