import { invalidValue } from '../../domain/scim/errors.js';
import { readResource } from './scim/resource-input.js';
import { GROUP_RESOURCE } from './scim/schema-definitions.js';
import { SMART_GROUP_SCHEMA, type SmartGroupExtension } from './model.js';

/**
 * A Group as a client sent it. Members are users of this directory (nested groups are not
 * supported); they are kept apart from the resource because membership lives in Redis sets.
 */

export interface ParsedGroup {
  group: Record<string, unknown>;
  /** Member user ids, de-duplicated, in the order given. */
  members: string[];
}

export function parseGroupInput(input: unknown): ParsedGroup {
  // Members are read here rather than by the schema reader: a large group must not trip the
  // per-attribute value limit meant for emails and the like (requests are bounded by the body limit).
  let rawMembers: unknown;
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const key = Object.keys(input).find((k) => k.toLowerCase() === 'members');
    if (key) {
      rawMembers = (input as Record<string, unknown>)[key];
      input = Object.fromEntries(Object.entries(input).filter(([k]) => k !== key));
    }
  }
  const { resource } = readResource(input, GROUP_RESOURCE);
  const displayName = resource.displayName as string;
  if (!displayName.trim()) throw invalidValue('displayName must not be empty');
  const ext = resource[SMART_GROUP_SCHEMA] as SmartGroupExtension | undefined;
  ext?.roles?.forEach((r, i) => {
    if (!URL.canParse(r.system))
      throw invalidValue(`${SMART_GROUP_SCHEMA}:roles[${i}].system must be an absolute URI naming the code system`);
  });
  return { group: resource, members: readMembers(rawMembers) };
}

function readMembers(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  const items = Array.isArray(raw) ? raw : [raw];
  const ids = items.map((item, i) => {
    const m = typeof item === 'string' ? { value: item } : item;
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw invalidValue(`members[${i}] must be an object with a value`);
    const entries = Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
    if (typeof entries.value !== 'string' || !entries.value) throw invalidValue(`members[${i}].value must be the id of a user`);
    if (entries.type !== undefined && entries.type !== null && String(entries.type).toLowerCase() !== 'user') {
      throw invalidValue(`members[${i}].type must be User: groups cannot contain groups here`);
    }
    return entries.value;
  });
  return [...new Set(ids)];
}
