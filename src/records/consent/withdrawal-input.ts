import type { StoredResource } from './consent-store.js';
import { FhirError, isPlainObject } from '../../domain/fhir/errors.js';

/**
 * What a client may change through PUT or PATCH: the status, to `inactive`, and nothing else. Any
 * other change is refused (422) rather than half applied: the Consent is a record of what a
 * person decided, and only that person (or an administrator) ending it may change it.
 */

/** Elements the server owns; a PUT body may carry them in any state. */
const SERVER_OWNED = new Set(['meta', 'text', 'status', 'id']);

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isPlainObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function withoutServerOwned(resource: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(resource).filter(([k]) => !SERVER_OWNED.has(k)));
}

function onlyInactive(): FhirError {
  return new FhirError(422, 'business-rule', 'only a change of status to "inactive" (withdrawal) is accepted');
}

/** Checks a PUT body: the same Consent with status `inactive`. */
export function checkPutBody(body: unknown, id: string, current: StoredResource): void {
  if (!isPlainObject(body) || body.resourceType !== 'Consent') throw new FhirError(400, 'invalid', 'the body must be a Consent resource');
  if (body.id !== id) throw new FhirError(400, 'invalid', 'the Consent in the body must carry the id of the URL');
  if (body.status !== 'inactive') throw onlyInactive();
  if (canonical(withoutServerOwned(body)) !== canonical(withoutServerOwned(current as unknown as Record<string, unknown>)))
    throw onlyInactive();
}

/** RFC 6901 JSON Pointer, or undefined when it points at nothing. */
function pointer(doc: unknown, path: string): { found: boolean; value?: unknown } {
  if (path === '') return { found: true, value: doc };
  if (!path.startsWith('/')) throw new FhirError(400, 'invalid', `the JSON Pointer ${JSON.stringify(path)} must start with "/"`);
  let node: unknown = doc;
  for (const raw of path.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(token) && Number(token) < node.length) node = node[Number(token)];
    else if (isPlainObject(node) && Object.hasOwn(node, token)) node = node[token];
    else return { found: false };
  }
  return { found: true, value: node };
}

/**
 * Checks a JSON Patch (RFC 6902): `test` operations (all must hold against the current Consent)
 * and exactly one `replace` of `/status` with `inactive`.
 */
export function checkPatch(body: unknown, current: StoredResource): void {
  if (!Array.isArray(body) || body.length === 0) throw new FhirError(400, 'invalid', 'the body must be a non-empty JSON Patch array');
  let replaces = 0;
  for (const op of body) {
    if (!isPlainObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string')
      throw new FhirError(400, 'invalid', 'each JSON Patch operation needs "op" and "path"');
    if (op.op === 'test') {
      if (!Object.hasOwn(op, 'value')) throw new FhirError(400, 'invalid', 'a test operation needs a value');
      const target = pointer(current, op.path);
      if (!target.found || canonical(target.value) !== canonical(op.value))
        throw new FhirError(422, 'conflict', `the test of ${op.path} failed`);
      continue;
    }
    if (op.op !== 'replace' || op.path !== '/status' || op.value !== 'inactive') throw onlyInactive();
    replaces++;
  }
  if (replaces !== 1) throw onlyInactive();
}
