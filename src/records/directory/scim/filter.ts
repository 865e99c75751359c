import type { Filter } from 'scim2-parse-filter';
import { parseFilter, tokenizer, Tokens, type Token } from 'scim2-parse-filter/lib/src/parser.js';
import { findAttribute, resolveAttributePath, valuesAt, type ResolvedAttribute } from './attribute-paths.js';
import { invalidFilter } from '../../../domain/scim/errors.js';
import type { AttributeDef, ResourceTypeDef } from './schema-definitions.js';

/**
 * RFC 7644 §3.4.2.2 filters. `scim2-parse-filter` parses; evaluation is ours because it must
 * follow each attribute's schema: case-insensitive unless `caseExact`, dateTime compared as
 * instants, ordering refused on booleans, complex attributes compared through `value`, unknown
 * attributes and write-only ones (password) refused. Equality on an indexed attribute yields
 * index lookups so the store never scans for them.
 */

export type IndexName = 'id' | 'userName' | 'externalId' | 'email' | 'displayName' | 'member';

/** Canonical attribute path → the index that answers equality on it. */
export type IndexedAttributes = Readonly<Record<string, IndexName>>;

export interface IndexLookup {
  index: IndexName;
  value: string;
}

export interface CompiledFilter {
  test(resource: Record<string, unknown>): boolean;
  /** Candidates are the union of these lookups; undefined when the filter needs a scan. */
  lookups?: IndexLookup[];
  /** Attribute paths the filter reads (e.g. to know whether group members must be loaded). */
  reads: Set<string>;
}

type Predicate = (resource: Record<string, unknown>) => boolean;
type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'lt' | 'ge' | 'le';

const INDEX_PREFERENCE: IndexName[] = ['id', 'userName', 'externalId', 'email', 'member', 'displayName'];

/**
 * `emails[type eq "work"].value co "x"` means one email that is both; the parser would split it
 * into two independent conditions, so the trailing sub-attribute comparison is moved inside the
 * brackets first: `emails[(type eq "work") and value co "x"]`.
 */
function foldSubAttributeComparisons(tokens: Token[]): Token[] {
  for (;;) {
    const close = tokens.findIndex((t, i) => t.type === 'Bracket' && t.literal === '].' && tokens[i + 1]?.type === 'Word');
    if (close < 0) return tokens;
    let depth = 0;
    let open = -1;
    for (let i = close - 1; i >= 0; i--) {
      const lit = tokens[i]!.type === 'Bracket' ? tokens[i]!.literal : '';
      if (lit.startsWith(']')) depth++;
      else if (lit === '[') {
        if (depth === 0) {
          open = i;
          break;
        }
        depth--;
      }
    }
    const op = tokens[close + 2];
    if (open < 0 || !op) return tokens;
    const end = op.literal.toLowerCase() === 'pr' ? close + 3 : close + 4;
    const bracket = (literal: string): Token => ({ type: 'Bracket', literal });
    tokens = [
      ...tokens.slice(0, open + 1),
      bracket('('),
      ...tokens.slice(open + 1, close),
      bracket(')'),
      { type: 'Word', literal: 'and' },
      ...tokens.slice(close + 1, end),
      bracket(']'),
      ...tokens.slice(end),
    ];
  }
}

/** Why the parser refused, without echoing any of the filter's text (it may hold secrets). */
function syntaxProblem(message: string): string {
  if (/^unexpected token/.test(message)) return 'contains characters that are not part of the filter grammar';
  if (/expected '\)'/.test(message)) return 'has unbalanced parentheses';
  if (/expected '\]'/.test(message)) return 'has an unclosed "["';
  if (/is not json/.test(message)) return 'has a comparison value that is not a quoted string, a number, true, false or null';
  if (/as valFilter operator/.test(message)) return 'uses an unknown operator (use eq, ne, co, sw, ew, gt, ge, lt, le or pr)';
  if (/unexpected EOT/.test(message)) return 'has text after the end of the expression';
  return 'is incomplete or out of order';
}

export function parseFilterText(text: string): Filter {
  if (!text.trim()) throw invalidFilter('the filter is empty');
  try {
    const tokens = new Tokens(foldSubAttributeComparisons(tokenizer(text)));
    const ast = parseFilter(tokens);
    if (tokens.peek().type !== 'EOT') throw new Error('unexpected EOT');
    return ast;
  } catch (err) {
    throw invalidFilter(`the filter ${syntaxProblem((err as Error).message)} (RFC 7644 §3.4.2.2)`);
  }
}

function lower(s: string, caseExact: boolean): string {
  return caseExact ? s : s.toLowerCase();
}

function present(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return false;
  if (Array.isArray(v)) return v.some(present);
  if (typeof v === 'object') return Object.values(v as object).some(present);
  return true;
}

/** An attribute path fit to quote in an error (anything odd-looking is not echoed). */
function safeName(path: string): string {
  return /^[\w$:.-]{1,200}$/.test(path) ? path : 'an attribute';
}

/** A value comparison for one attribute type; throws invalidFilter when the combination makes no sense. */
function comparison(def: AttributeDef, path: string, op: CompareOp, compValue: unknown): (v: unknown) => boolean {
  const label = safeName(path);
  if (compValue === null) {
    if (op === 'eq') return () => false;
    if (op === 'ne') return () => true;
    throw invalidFilter(`${op} needs a value other than null (${label})`);
  }
  const ordering = op === 'gt' || op === 'ge' || op === 'lt' || op === 'le';
  const substring = op === 'co' || op === 'sw' || op === 'ew';
  const order = (c: number): boolean =>
    op === 'gt' ? c > 0 : op === 'ge' ? c >= 0 : op === 'lt' ? c < 0 : op === 'le' ? c <= 0 : op === 'eq' ? c === 0 : c !== 0;
  switch (def.type) {
    case 'boolean': {
      const want =
        typeof compValue === 'boolean'
          ? compValue
          : typeof compValue === 'string'
            ? { true: true, false: false }[compValue.toLowerCase()]
            : undefined;
      if (want === undefined) throw invalidFilter(`${label} is a boolean; compare it with true or false`);
      if (ordering || substring) throw invalidFilter(`${label} is a boolean; only eq, ne and pr apply`);
      return (v) => v === want;
    }
    case 'integer':
    case 'decimal': {
      if (typeof compValue !== 'number') throw invalidFilter(`${label} is a number; compare it with a number`);
      if (substring) throw invalidFilter(`${label} is a number; co, sw and ew do not apply`);
      return (v) => typeof v === 'number' && order(v - compValue);
    }
    case 'dateTime': {
      if (typeof compValue !== 'string') throw invalidFilter(`${label} is a dateTime; compare it with a quoted xsd:dateTime`);
      if (!substring) {
        const want = Date.parse(compValue);
        if (!Number.isFinite(want))
          throw invalidFilter(`${label} is a dateTime; the value is not an xsd:dateTime such as 2024-05-01T12:00:00Z`);
        return (v) => typeof v === 'string' && Number.isFinite(Date.parse(v)) && order(Date.parse(v) - want);
      }
      break;
    }
    case 'binary':
      if (ordering) throw invalidFilter(`${label} is binary; gt, ge, lt and le do not apply`);
      break;
    case 'complex':
      throw invalidFilter(`${label} is a complex attribute; name one of its sub-attributes`);
    default:
      break;
  }
  if (typeof compValue !== 'string' && typeof compValue !== 'number')
    throw invalidFilter(`${label} is a string; compare it with a quoted string`);
  const want = lower(String(compValue), def.caseExact);
  const text = (v: unknown): string | undefined => (typeof v === 'string' ? lower(v, def.caseExact) : undefined);
  switch (op) {
    case 'co':
      return (v) => text(v)?.includes(want) ?? false;
    case 'sw':
      return (v) => text(v)?.startsWith(want) ?? false;
    case 'ew':
      return (v) => text(v)?.endsWith(want) ?? false;
    default:
      return (v) => {
        const t = text(v);
        return t !== undefined && order(t < want ? -1 : t > want ? 1 : 0);
      };
  }
}

/** What a filter's attribute path refers to: a top-level path, or a sub-attribute inside `attr[...]`. */
interface Target {
  def: AttributeDef;
  canonical: string;
  values: (r: Record<string, unknown>) => unknown[];
}

const SCHEMAS_ATTRIBUTE: AttributeDef = {
  name: 'schemas',
  type: 'reference',
  multiValued: true,
  description: 'Schema URIs of the resource.',
  required: true,
  caseExact: false,
  mutability: 'readOnly',
  returned: 'always',
  uniqueness: 'none',
};

function refuseSecret(def: AttributeDef): void {
  if (def.returned === 'never' || def.mutability === 'writeOnly') throw invalidFilter(`${def.name} cannot be used in a filter`);
}

/** Complex attributes without a sub-attribute compare through their `value` (RFC 7644: `emails co "x"`). */
function throughValue(resolved: ResolvedAttribute): ResolvedAttribute {
  if (resolved.sub || resolved.attr.type !== 'complex') return resolved;
  const value = findAttribute(resolved.attr.subAttributes, 'value');
  if (!value) throw invalidFilter(`${safeName(resolved.path)} is a complex attribute; name one of its sub-attributes`);
  return { ...resolved, sub: value, path: `${resolved.path}.${value.name}` };
}

function topLevelTarget(rt: ResourceTypeDef, path: string): Target {
  if (path.toLowerCase() === 'schemas') {
    return { def: SCHEMAS_ATTRIBUTE, canonical: 'schemas', values: (r) => (Array.isArray(r.schemas) ? r.schemas : []) };
  }
  const found = resolveAttributePath(rt, path);
  if (!found) throw invalidFilter(`${safeName(path)} is not an attribute of ${rt.name}`);
  refuseSecret(found.sub ?? found.attr);
  const resolved = throughValue(found);
  return { def: resolved.sub ?? resolved.attr, canonical: resolved.path, values: (r) => valuesAt(r, resolved) };
}

function subTarget(parent: AttributeDef, parentPath: string, path: string): Target {
  const sub = findAttribute(parent.subAttributes, path);
  if (!sub) throw invalidFilter(`${safeName(path)} is not a sub-attribute of ${parentPath}`);
  refuseSecret(sub);
  return {
    def: sub,
    canonical: `${parentPath}.${sub.name}`,
    values: (item) => {
      const v = item[sub.name];
      return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
    },
  };
}

interface Scope {
  rt: ResourceTypeDef;
  /** Inside `attr[...]`: the complex attribute whose sub-attributes the paths name. */
  parent?: { def: AttributeDef; path: string };
  reads: Set<string>;
}

function compileNode(node: Filter, scope: Scope): Predicate {
  switch (node.op) {
    case 'and': {
      const parts = node.filters.map((f) => compileNode(f, scope));
      return (r) => parts.every((p) => p(r));
    }
    case 'or': {
      const parts = node.filters.map((f) => compileNode(f, scope));
      return (r) => parts.some((p) => p(r));
    }
    case 'not': {
      const inner = compileNode(node.filter, scope);
      return (r) => !inner(r);
    }
    case '[]': {
      if (scope.parent) throw invalidFilter('value filters cannot be nested');
      const found = resolveAttributePath(scope.rt, node.attrPath);
      if (!found || found.sub) throw invalidFilter(`${safeName(node.attrPath)} is not a complex attribute of ${scope.rt.name}`);
      if (found.attr.type !== 'complex') throw invalidFilter(`${found.path} is not a complex attribute, so it cannot take a value filter`);
      scope.reads.add(found.path);
      const inner = compileNode(node.valFilter, { ...scope, parent: { def: found.attr, path: found.path } });
      return (r) => valuesAt(r, found).some((item) => typeof item === 'object' && item !== null && inner(item as Record<string, unknown>));
    }
    case 'pr': {
      const target = scope.parent ? subTarget(scope.parent.def, scope.parent.path, node.attrPath) : topLevelTarget(scope.rt, node.attrPath);
      scope.reads.add(target.canonical);
      return (r) => target.values(r).some(present);
    }
    default: {
      const target = scope.parent ? subTarget(scope.parent.def, scope.parent.path, node.attrPath) : topLevelTarget(scope.rt, node.attrPath);
      scope.reads.add(target.canonical);
      const op = node.op as CompareOp;
      if (op === 'ne') {
        const equal = comparison(target.def, target.canonical, 'eq', node.compValue);
        if (node.compValue === null) return (r) => target.values(r).some(present);
        return (r) => !target.values(r).some(equal);
      }
      if (op === 'eq' && node.compValue === null) return (r) => !target.values(r).some(present);
      const test = comparison(target.def, target.canonical, op, node.compValue);
      return (r) => target.values(r).some(test);
    }
  }
}

/** Index lookups whose union contains every match, or undefined when there is none. */
function plan(node: Filter, rt: ResourceTypeDef, indexed: IndexedAttributes, prefix = ''): IndexLookup[] | undefined {
  switch (node.op) {
    case 'eq': {
      if (typeof node.compValue !== 'string') return undefined;
      const path = prefix ? `${prefix}.${node.attrPath}` : node.attrPath;
      const found = resolveAttributePath(rt, path);
      if (!found) return undefined;
      const index = indexed[throughValue(found).path];
      return index ? [{ index, value: node.compValue }] : undefined;
    }
    case '[]': {
      const found = resolveAttributePath(rt, node.attrPath);
      return found ? plan(node.valFilter, rt, indexed, found.path) : undefined;
    }
    case 'and': {
      const options = node.filters.map((f) => plan(f, rt, indexed, prefix)).filter((p): p is IndexLookup[] => p !== undefined);
      const rank = (p: IndexLookup[]) => Math.max(...p.map((l) => INDEX_PREFERENCE.indexOf(l.index)));
      return options.sort((a, b) => rank(a) - rank(b) || a.length - b.length)[0];
    }
    case 'or': {
      const parts = node.filters.map((f) => plan(f, rt, indexed, prefix));
      return parts.every((p) => p !== undefined) ? parts.flat() : undefined;
    }
    default:
      return undefined;
  }
}

export function compileFilter(text: string, rt: ResourceTypeDef, indexed: IndexedAttributes = {}): CompiledFilter {
  const ast = parseFilterText(text);
  const reads = new Set<string>();
  const test = compileNode(ast, { rt, reads });
  const lookups = plan(ast, rt, indexed);
  return lookups ? { test, lookups, reads } : { test, reads };
}

/** Compiles a filter that applies to the items of one multi-valued attribute (PATCH `path` filters). */
export function compileValueFilter(
  text: string,
  rt: ResourceTypeDef,
  parent: AttributeDef,
  parentPath: string,
): (item: Record<string, unknown>) => boolean {
  const ast = parseFilterText(text);
  return compileNode(ast, { rt, parent: { def: parent, path: parentPath }, reads: new Set() });
}
