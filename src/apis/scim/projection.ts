import { extensionNamed, resolveAttributePath } from '../../records/directory/scim/attribute-paths.js';
import { isPlainObject } from '../../records/directory/scim/resource-input.js';
import type { ResourceTypeDef } from '../../records/directory/scim/schema-definitions.js';

/**
 * `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9). `schemas` and attributes
 * returned "always" (id) are always kept; attributes returned "never" (password) are never stored
 * in a resource in the first place. Names that match nothing are ignored, as the RFC allows.
 */

export interface Projection {
  attributes?: string[];
  excludedAttributes?: string[];
}

/** Selected parts: per top-level key (attribute name or extension URN), everything or some sub-keys. */
type Selection = Map<string, true | Map<string, true | Set<string>> | Set<string>>;

export function parseAttributeList(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','));
  const names = list.map((s) => s.trim()).filter(Boolean);
  return names.length ? names : undefined;
}

function select(rt: ResourceTypeDef, names: string[]): Selection {
  const sel: Selection = new Map();
  for (const name of names) {
    const ext = extensionNamed(rt, name);
    if (ext) {
      sel.set(ext.id, true);
      continue;
    }
    const found = resolveAttributePath(rt, name);
    if (!found) continue;
    if (!found.extension) {
      const current = sel.get(found.attr.name);
      if (current === true) continue;
      if (!found.sub) sel.set(found.attr.name, true);
      else sel.set(found.attr.name, new Set([...((current as Set<string>) ?? []), found.sub.name]));
      continue;
    }
    let extSel = sel.get(found.schema.id);
    if (extSel === true) continue;
    if (!(extSel instanceof Map)) {
      extSel = new Map();
      sel.set(found.schema.id, extSel);
    }
    const current = extSel.get(found.attr.name);
    if (current === true) continue;
    if (!found.sub) extSel.set(found.attr.name, true);
    else extSel.set(found.attr.name, new Set([...((current as Set<string>) ?? []), found.sub.name]));
  }
  return sel;
}

function pick(value: unknown, subs: Set<string>): unknown {
  const one = (v: unknown) => (isPlainObject(v) ? Object.fromEntries(Object.entries(v).filter(([k]) => subs.has(k))) : v);
  return Array.isArray(value) ? value.map(one) : one(value);
}

function omit(value: unknown, subs: Set<string>): unknown {
  const one = (v: unknown) => (isPlainObject(v) ? Object.fromEntries(Object.entries(v).filter(([k]) => !subs.has(k))) : v);
  return Array.isArray(value) ? value.map(one) : one(value);
}

function alwaysReturned(rt: ResourceTypeDef, key: string): boolean {
  return key === 'schemas' || resolveAttributePath(rt, key)?.attr.returned === 'always';
}

export function project<T extends Record<string, unknown>>(resource: T, rt: ResourceTypeDef, p: Projection): T {
  let out: Record<string, unknown> = resource;
  if (p.attributes) {
    const sel = select(rt, p.attributes);
    const kept: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(out)) {
      const s = sel.get(key);
      if (alwaysReturned(rt, key) || s === true) kept[key] = value;
      else if (s instanceof Set) kept[key] = pick(value, s);
      else if (s instanceof Map && isPlainObject(value)) {
        const inner: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) {
          const si = s.get(k);
          if (si === true) inner[k] = v;
          else if (si instanceof Set) inner[k] = pick(v, si);
        }
        if (Object.keys(inner).length) kept[key] = inner;
      }
    }
    out = kept;
  }
  if (p.excludedAttributes) {
    const sel = select(rt, p.excludedAttributes);
    const kept: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(out)) {
      const s = sel.get(key);
      if (alwaysReturned(rt, key) || s === undefined) kept[key] = value;
      else if (s instanceof Set) kept[key] = omit(value, s);
      else if (s instanceof Map && isPlainObject(value)) {
        const inner: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) {
          const si = s.get(k);
          if (si === undefined) inner[k] = v;
          else if (si instanceof Set) inner[k] = omit(v, si);
        }
        if (Object.keys(inner).length) kept[key] = inner;
      }
    }
    out = kept;
  }
  return out as T;
}
