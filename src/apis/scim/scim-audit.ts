import type { AuditEvent } from '../../records/audit/audit-event.js';
import { directoryChanged, passwordChanged, type Actor, type ChangeKind } from '../../records/audit/events/admin-events.js';

/**
 * SCIM changes: one event per change, and a password-change event when the request set a
 * password (PUT/POST with `password`, or a PATCH operation on it). Only the fact is recorded.
 */

function isPasswordPath(path: unknown): boolean {
  return typeof path === 'string' && /^(urn:ietf:params:scim:schemas:core:2\.0:User:)?password$/i.test(path.trim());
}

function hasPasswordKey(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.keys(value).some((k) => isPasswordPath(k));
}

export function setsPassword(change: ChangeKind, body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  if (change !== 'patch') return hasPasswordKey(body);
  const ops = (body as { Operations?: unknown }).Operations;
  if (!Array.isArray(ops)) return false;
  return ops.some((op) => {
    if (typeof op !== 'object' || op === null) return false;
    const { op: kind, path, value } = op as { op?: unknown; path?: unknown; value?: unknown };
    if (typeof kind !== 'string' || !/^(add|replace)$/i.test(kind)) return false;
    return path === undefined ? hasPasswordKey(value) : isPasswordPath(path);
  });
}

export function scimChangeEvents(
  issuer: string,
  actor: Actor,
  input: { resource: 'User' | 'Group'; change: ChangeKind; id: string; name?: string; body?: unknown },
): AuditEvent[] {
  const scope = { issuer, now: new Date() };
  const passwordSet = input.resource === 'User' && input.change !== 'delete' && setsPassword(input.change, input.body);
  const events = [
    directoryChanged(scope, {
      actor,
      resource: input.resource,
      change: input.change,
      id: input.id,
      ...(input.name ? { name: input.name } : {}),
      ...(passwordSet ? { passwordSet } : {}),
    }),
  ];
  if (passwordSet) events.push(passwordChanged(scope, { actor, userId: input.id, ...(input.name ? { userName: input.name } : {}) }));
  return events;
}
