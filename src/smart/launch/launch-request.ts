import { z } from 'zod';
import type { Config, FhirServer } from '../../platform/config/schema.js';
import { findFhirServer, findTenant, normaliseBase } from '../../oauth/provider/fhir-servers.js';
import { KIND_RULES, isSmartClientKind } from '../../oauth/clients/client-kinds.js';
import type { UserStore } from '../../records/directory/user-store.js';
import type { LaunchContext } from './launch-store.js';
import type { FhirContextItem } from '../../domain/fhir/types.js';

/**
 * What an EHR may put in a launch (POST /api/launch), checked field by field so the 400 names
 * the field. Shapes follow SMART App Launch 2.2 "launch context": ids are logical ids (not
 * `Patient/123`), `fhirContext` items are objects with a reference, canonical or identifier, and
 * the URLs and names must be ones this server knows.
 */

/** A refusal of one field; `problem` is a predicate that follows the field name. */
export class LaunchRequestError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
  }
}

export interface LaunchRequestDeps {
  config: Pick<Config, 'mode' | 'fhirServers'>;
  users: Pick<UserStore, 'get' | 'findByUserName'>;
  /** A registered client's metadata, for `clientId`. */
  findClient: (id: string) => Promise<Record<string, unknown> | undefined>;
}

const LOGICAL_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const REFERENCE = /^([A-Z][A-Za-z]{1,63})\/[A-Za-z0-9\-.]{1,64}$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const MAX_URI = 2048;

const str = (what = 'a string') => z.string({ error: `must be ${what}` });
const logicalId = str().regex(LOGICAL_ID, 'must be a logical id (letters, digits, "-" and ".", at most 64), e.g. "123", not "Patient/123"');

function isAbsoluteUri(v: string): boolean {
  return v.length <= MAX_URI && /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(v) && URL.canParse(v);
}

const absoluteUri = str().refine(isAbsoluteUri, 'must be an absolute URI');

const fhirContextItem = z
  .object(
    {
      reference: str().regex(REFERENCE, 'must be a relative reference like "ImagingStudy/123"').optional(),
      // canonical URL, optionally with |version
      canonical: str()
        .refine((v) => isAbsoluteUri(v.split('|')[0] ?? ''), 'must be a canonical URL, optionally with |version')
        .optional(),
      identifier: z
        .object(
          { system: absoluteUri.optional(), value: str().min(1, 'must not be empty').max(256, 'must be at most 256 characters') },
          { error: 'must be an object with a value' },
        )
        .strict()
        .optional(),
      type: str().regex(RESOURCE_TYPE, 'must be a FHIR resource type such as ImagingStudy').optional(),
      // SMART defines only "launch"; other roles are absolute URIs and never empty.
      role: str()
        .refine((v) => v === 'launch' || isAbsoluteUri(v), 'must be "launch" or an absolute URI')
        .optional(),
    },
    { error: 'must be an object' },
  )
  .strict()
  .refine(
    (item) => item.reference !== undefined || item.canonical !== undefined || item.identifier !== undefined,
    'must have a reference, canonical or identifier',
  )
  .refine((item) => {
    const type = item.type ?? REFERENCE.exec(item.reference ?? '')?.[1];
    const launchRole = item.role === undefined || item.role === 'launch';
    return !(launchRole && (type === 'Patient' || type === 'Encounter'));
  }, 'may name a Patient or Encounter only with a role other than "launch"; use the patient and encounter fields');

function launchSchema(config: LaunchRequestDeps['config']) {
  const production = config.mode === 'production';
  return z
    .object(
      {
        patient: logicalId.optional(),
        encounter: logicalId.optional(),
        fhirContext: z.array(fhirContextItem, { error: 'must be an array of objects' }).max(20, 'may have at most 20 items').optional(),
        intent: str().min(1, 'must not be empty').max(100, 'must be at most 100 characters').optional(),
        need_patient_banner: z.boolean({ error: 'must be true or false' }).optional(),
        smart_style_url: str()
          .refine(
            (v) => {
              const url = v.length <= MAX_URI ? URL.parse(v) : null;
              if (!url || url.hash) return false;
              return url.protocol === 'https:' || (!production && url.protocol === 'http:' && LOOPBACK.has(url.hostname));
            },
            production ? 'must be an absolute https URL' : 'must be an absolute https URL (http only for localhost outside production)',
          )
          .optional(),
        tenant: str()
          .refine((v) => findTenant(config.fhirServers, v) !== undefined, 'is not a tenant of this server')
          .optional(),
        aud: str()
          .refine((v) => findFhirServer(config.fhirServers, v) !== undefined, 'is not a FHIR server of this server')
          .optional(),
        user: str().min(1, 'must not be empty').max(256, 'must be at most 256 characters').optional(),
        clientId: str().min(1, 'must not be empty').max(256, 'must be at most 256 characters').optional(),
      },
      { error: 'must be a JSON object' },
    )
    .strict();
}

function firstProblem(error: z.ZodError): LaunchRequestError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    return new LaunchRequestError(keys.join(', '), keys.length > 1 ? 'are not launch context fields' : 'is not a launch context field');
  }
  return new LaunchRequestError(path || 'body', issue.message);
}

/**
 * The launch context for a validated request, with `aud`/`tenant` completed from each other,
 * `user` resolved to a SCIM id, and `createdBy` the EHR-launcher client that asked. Every launch
 * is bound to one FHIR server (`launchAudience`).
 */
export async function parseLaunchRequest(
  body: unknown,
  launcher: { client_id: string; fhir_servers?: unknown },
  deps: LaunchRequestDeps,
): Promise<LaunchContext> {
  const parsed = launchSchema(deps.config).safeParse(body);
  if (!parsed.success) throw firstProblem(parsed.error);
  const input = parsed.data;

  let aud = input.aud === undefined ? undefined : findFhirServer(deps.config.fhirServers, input.aud)!.base;
  if (input.tenant !== undefined) {
    const tenantBase = findTenant(deps.config.fhirServers, input.tenant)!.base;
    if (aud !== undefined && aud !== tenantBase) throw new LaunchRequestError('tenant', 'belongs to a different FHIR server than aud');
    aud ??= tenantBase;
  }

  let user: string | undefined;
  if (input.user !== undefined) {
    const found = (await deps.users.get(input.user)) ?? (await deps.users.findByUserName(input.user));
    if (!found) throw new LaunchRequestError('user', 'is not a known user id or userName');
    if (!found.active) throw new LaunchRequestError('user', 'is not an active user');
    user = found.id;
  }

  if (input.clientId !== undefined) {
    const client = await deps.findClient(input.clientId);
    const kind = client?.smart_client_kind;
    if (!client || !isSmartClientKind(kind) || KIND_RULES[kind].flow !== 'app') {
      throw new LaunchRequestError('clientId', 'is not a registered SMART app');
    }
  }

  const context: LaunchContext = { createdBy: launcher.client_id, aud: launchAudience(aud, launcher, deps.config.fhirServers) };
  if (input.patient !== undefined) context.patient = input.patient;
  if (input.encounter !== undefined) context.encounter = input.encounter;
  if (input.fhirContext !== undefined) context.fhirContext = input.fhirContext.map(compactItem);
  if (input.intent !== undefined) context.intent = input.intent;
  if (input.need_patient_banner !== undefined) context.need_patient_banner = input.need_patient_banner;
  if (input.smart_style_url !== undefined) context.smart_style_url = input.smart_style_url;
  if (input.tenant !== undefined) context.tenant = input.tenant;
  if (user !== undefined) context.user = user;
  if (input.clientId !== undefined) context.clientId = input.clientId;
  return context;
}

/**
 * The one FHIR server a launch is for: the one the request names (`aud` or `tenant`), which must be
 * among the launcher's `fhir_servers`, or else the launcher's only one. A launcher allowed several
 * must name one, and one allowed none launches nothing: a launch without an audience would let an
 * app use it against any server, escaping the launcher's `fhir_servers`. A launcher registered
 * without `fhir_servers` may launch for every configured server (what omitting it means).
 */
function launchAudience(named: string | undefined, launcher: { fhir_servers?: unknown }, servers: readonly FhirServer[]): string {
  const configured = servers.map((s) => s.base);
  const listed = Array.isArray(launcher.fhir_servers)
    ? launcher.fhir_servers.filter((b): b is string => typeof b === 'string').map(normaliseBase)
    : configured;
  const allowed = configured.filter((base) => listed.includes(base));
  if (named !== undefined) {
    if (!allowed.includes(named)) throw new LaunchRequestError('aud', 'is not a FHIR server this EHR client may launch for');
    return named;
  }
  if (allowed.length === 1) return allowed[0]!;
  if (allowed.length === 0)
    throw new LaunchRequestError(
      'aud',
      'cannot be chosen: this EHR client may launch for none of the FHIR servers of this authorization server',
    );
  throw new LaunchRequestError(
    'aud',
    `is required: this EHR client may launch for more than one FHIR server (${allowed.join(', ')}), so the launch must name the one the app will use`,
  );
}

function compactItem(item: FhirContextItem): FhirContextItem {
  return Object.fromEntries(Object.entries(item).filter(([, v]) => v !== undefined)) as FhirContextItem;
}
