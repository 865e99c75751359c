import { invalidPath, mutability } from '../../domain/scim/errors.js';
import { findAttribute } from '../../records/directory/scim/attribute-paths.js';
import { compileValueFilter } from '../../records/directory/scim/filter.js';
import { isPlainObject } from '../../records/directory/scim/resource-input.js';
import { SMART_USER_SCHEMA_DEF, USER_RESOURCE } from '../../records/directory/scim/schema-definitions.js';
import { SMART_USER_SCHEMA, type ScimUser } from '../../records/directory/model.js';
import type { SecondFactors } from '../../records/directory/factors/second-factors.js';
import type { AuditRecorder } from '../../records/audit/trail.js';
import type { Actor } from '../../records/audit/events/admin-events.js';
import { factorRemoved, factorsReset } from '../../records/audit/events/factor-events.js';
import { PATCH_SCHEMA } from './patch.js';

/**
 * The SMART extension's read-only `secondFactors` and `recoveryCodesLeft` (RFC 7643 §2.2,
 * mutability readOnly). An administrator resets them with PATCH `remove`: the whole attribute
 * removes every factor and recovery code, a value filter (`secondFactors[value eq "<id>"]`) or a
 * value list removes those factors. Nothing else writes them: add and replace are refused by the
 * PATCH engine like any read-only attribute, and a PUT or POST that sends them with other values is
 * refused here (leaving them out changes nothing, as RFC 7643 says read-only input is ignored).
 */

const ATTRIBUTE = findAttribute(SMART_USER_SCHEMA_DEF.attributes, 'secondFactors')!;
const PATH = new RegExp(`^${SMART_USER_SCHEMA.replace(/[.]/g, '\\.')}:secondFactors(?:\\[(.*)\\])?$`, 'is');
const HOW_TO_RESET = `remove them with PATCH {"op":"remove","path":"${SMART_USER_SCHEMA}:secondFactors"} (all) or …secondFactors[value eq "<id>"] (one)`;

/** One removal a PATCH asked for: every factor, or those a filter or value list picks. */
export type FactorRemoval = { all: true } | { all: false; picks: (factor: Record<string, unknown>) => boolean };

interface Operation {
  op?: unknown;
  path?: unknown;
  value?: unknown;
}

/** The operations of a PatchOp message; anything else is left for the PATCH engine to refuse. */
function operationsOf(body: unknown): { key: string; ops: unknown[] } | undefined {
  if (
    !isPlainObject(body) ||
    !Array.isArray(body.schemas) ||
    !body.schemas.some((x) => String(x).toLowerCase() === PATCH_SCHEMA.toLowerCase())
  )
    return undefined;
  const key = Object.keys(body).find((k) => k.toLowerCase() === 'operations');
  const ops = key ? body[key] : undefined;
  return key && Array.isArray(ops) ? { key, ops } : undefined;
}

function removalOf(op: unknown): FactorRemoval | undefined {
  if (!isPlainObject(op)) return undefined;
  const { op: name, path, value } = Object.fromEntries(Object.entries(op).map(([k, v]) => [k.toLowerCase(), v])) as Operation;
  if (typeof name !== 'string' || name.toLowerCase() !== 'remove' || typeof path !== 'string') return undefined;
  const m = PATH.exec(path.trim());
  if (!m) return undefined;
  const filter = m[1];
  if (filter !== undefined) {
    try {
      return { all: false, picks: compileValueFilter(filter, USER_RESOURCE, ATTRIBUTE, ATTRIBUTE.name) };
    } catch {
      throw invalidPath(`the value filter in ${SMART_USER_SCHEMA}:secondFactors[…] is not valid`);
    }
  }
  if (value === undefined || value === null) return { all: true };
  // Entra's way: remove with the values to remove.
  const ids = new Set(
    (Array.isArray(value) ? value : [value]).map((v) => (isPlainObject(v) ? v.value : v)).filter((v) => typeof v === 'string'),
  );
  return { all: false, picks: (factor) => ids.has(factor.value as string) };
}

/**
 * The factor removals of a PatchOp message, and the message without them (undefined when nothing
 * else is left). A filter that does not parse is refused here, before anything is written.
 */
export function factorRemovals(body: unknown): { removals: FactorRemoval[]; rest: unknown } {
  const found = operationsOf(body);
  if (!found) return { removals: [], rest: body };
  const removals: FactorRemoval[] = [];
  const others = found.ops.filter((op) => {
    const removal = removalOf(op);
    if (removal) removals.push(removal);
    return !removal;
  });
  if (!removals.length) return { removals, rest: body };
  return { removals, rest: others.length ? { ...(body as Record<string, unknown>), [found.key]: others } : undefined };
}

/** The ids of the user's factors the removals pick (`all` when one of them asks for everything). */
export function factorsToRemove(user: ScimUser, removals: FactorRemoval[]): 'all' | string[] {
  if (removals.some((r) => r.all)) return 'all';
  const factors = (user[SMART_USER_SCHEMA]?.secondFactors ?? []) as unknown as Array<Record<string, unknown>>;
  return factors.filter((f) => removals.some((r) => !r.all && r.picks(f))).map((f) => f.value as string);
}

/** The values a PUT or POST body gives the read-only factor attributes (undefined: left out). */
function givenValues(body: unknown): { secondFactors?: unknown; recoveryCodesLeft?: unknown } {
  if (!isPlainObject(body)) return {};
  const out: { secondFactors?: unknown; recoveryCodesLeft?: unknown } = {};
  const take = (name: string, value: unknown) => {
    if (value === undefined || value === null) return;
    if (name.toLowerCase() === 'secondfactors') out.secondFactors = value;
    if (name.toLowerCase() === 'recoverycodesleft') out.recoveryCodesLeft = value;
  };
  const urn = SMART_USER_SCHEMA.toLowerCase();
  for (const [key, value] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (lower === urn && isPlainObject(value)) for (const [name, v] of Object.entries(value)) take(name, v);
    else if (lower.startsWith(`${urn}:`)) take(key.slice(urn.length + 1), value);
  }
  return out;
}

function idsOf(value: unknown): string[] {
  return (Array.isArray(value) ? value : [value]).map((v) => (isPlainObject(v) ? String(v.value) : String(v))).sort();
}

/**
 * Refuses a PUT or POST body that gives the factor attributes other values than the user has
 * (`current`: undefined for a new user). The same factors (by id) and the same count pass, so a
 * client may send back what it read.
 */
export function refuseFactorWrites(body: unknown, current: ScimUser | undefined): void {
  const given = givenValues(body);
  const smart = current?.[SMART_USER_SCHEMA];
  const currentIds = (smart?.secondFactors ?? []).map((f) => f.value).sort();
  if (given.secondFactors !== undefined && idsOf(given.secondFactors).join(' ') !== currentIds.join(' ')) {
    throw mutability(`${SMART_USER_SCHEMA}:secondFactors is read-only: ${HOW_TO_RESET}`);
  }
  if (given.recoveryCodesLeft !== undefined && Number(given.recoveryCodesLeft) !== (smart?.recoveryCodesLeft ?? 0)) {
    throw mutability(`${SMART_USER_SCHEMA}:recoveryCodesLeft is read-only: ${HOW_TO_RESET}`);
  }
}

export interface FactorResetDeps {
  factors: Pick<SecondFactors, 'reset' | 'remove'>;
  audit: AuditRecorder;
  issuer: string;
}

/** Carries out the removals on `user` (as read before them) and records each: a reset, or each factor removed. */
export async function removeFactors(deps: FactorResetDeps, actor: Actor, user: ScimUser, removals: FactorRemoval[]): Promise<void> {
  const scope = { issuer: deps.issuer, now: new Date() };
  const target = factorsToRemove(user, removals);
  if (target === 'all') {
    const removed = await deps.factors.reset(user.id);
    await deps.audit.record(factorsReset(scope, { actor, accountId: user.id, userName: user.userName, ...removed }));
    return;
  }
  const listed = user[SMART_USER_SCHEMA]?.secondFactors ?? [];
  for (const id of target) {
    if ((await deps.factors.remove(user.id, id)) !== 'removed') continue;
    const factor = listed.find((f) => f.value === id);
    await deps.audit.record(
      factorRemoved(scope, {
        actor,
        accountId: user.id,
        factorId: id,
        userName: user.userName,
        ...(factor ? { kind: factor.type, label: factor.display } : {}),
      }),
    );
  }
}
