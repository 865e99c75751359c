import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ParseArgsConfig } from 'node:util';
import { describeJwks } from '../oauth/clients/client-keys.js';
import {
  ClientRegistryError,
  type ClientKeys,
  type ClientMetadata,
  type ClientRegistry,
  type UpsertResult,
} from '../oauth/clients/registry.js';
import { CliUsageError } from './errors.js';
import { parseCommandArgs, requirePositional } from './args.js';

/**
 * `clients …` admin commands. Each takes the registry, the arguments after the command name and a
 * line printer; failures are thrown (CliUsageError for bad arguments, ClientRegistryError for
 * rejected definitions) for the caller to print and turn into an exit code.
 */

export type Out = (line: string) => void;

export const CLIENTS_USAGE = `Usage: smart-authz clients <command> [options]

Commands:
  add [--id ID] --kind KIND [definition options]   register a client (a secret is generated when needed)
  add --json FILE [definition options]             register a client from a JSON definition
  list [--json]                                    list registered clients
  show ID [--json]                                 show one client
  update ID [definition options]                   change a client (lists given replace stored ones;
                                                   in a --json patch, null removes a property)
  remove ID                                        delete a client and end its grants and tokens
  rotate-secret ID                                 replace a client's secret (the old one stops working)
  set-jwks ID (--jwks-file FILE | --jwks-uri URL)  replace a private_key_jwt client's public keys

Definition options:
  --kind KIND              public_app | confidential_symmetric | confidential_asymmetric |
                           backend_service | resource_server | ehr_launcher
  --name NAME              client_name
  --scopes "S1 S2"         SMART scope patterns it may be granted (repeatable), e.g. "patient/*.rs"
  --redirect-uri URI       repeatable
  --fhir-server URL        FHIR base it may target (repeatable; default: all configured servers)
  --launch-url URL         EHR launch URL of the app
  --purpose CODE           allowed purpose of use, e.g. TREAT (repeatable)
  --default-purpose CODE   purpose of use when a request asserts none (repeatable)
  --test-account           a test client: its tokens carry purpose of use HTEST only
  --jwks-file FILE         public JWKS (or one public JWK) for private_key_jwt
  --jwks-uri URL           JWKS URL for private_key_jwt
  --jku URL                allowed jku header value (repeatable)
  --auth-method METHOD     token_endpoint_auth_method when the kind allows a choice
  --application-type TYPE  web (default) or native
  --json FILE              JSON client definition; the options above override it
`;

const DEFINITION_OPTIONS = {
  kind: { type: 'string' },
  name: { type: 'string' },
  scopes: { type: 'string', multiple: true },
  'redirect-uri': { type: 'string', multiple: true },
  'fhir-server': { type: 'string', multiple: true },
  'launch-url': { type: 'string' },
  purpose: { type: 'string', multiple: true },
  'default-purpose': { type: 'string', multiple: true },
  'test-account': { type: 'boolean' },
  'jwks-file': { type: 'string' },
  'jwks-uri': { type: 'string' },
  jku: { type: 'string', multiple: true },
  'auth-method': { type: 'string' },
  'application-type': { type: 'string' },
  json: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

type DefinitionValues = {
  [K in keyof typeof DEFINITION_OPTIONS]?: (typeof DEFINITION_OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof DEFINITION_OPTIONS)[K] extends { type: 'boolean' }
      ? boolean
      : string;
};

function requireId(positionals: string[], command: string): string {
  return requirePositional(positionals, `clients ${command}`, 'a client id');
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliUsageError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`${what} ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A JWKS file may hold a set or a single key; never echo its content (it might be private). */
async function readJwksFile(path: string): Promise<{ keys: unknown[] }> {
  const content = await readJson(path, 'JWKS file');
  if (content && typeof content === 'object' && Array.isArray((content as { keys?: unknown }).keys)) return content as { keys: unknown[] };
  if (content && typeof content === 'object' && 'kty' in content) return { keys: [content] };
  throw new CliUsageError(`JWKS file ${path} must hold a JSON Web Key Set ({"keys": [...]}) or one JWK`);
}

async function definitionFrom(values: DefinitionValues): Promise<ClientMetadata> {
  let definition: ClientMetadata = {};
  if (values.json) {
    const json = await readJson(values.json, 'client definition');
    if (!json || typeof json !== 'object' || Array.isArray(json))
      throw new CliUsageError(`client definition ${values.json} must be a JSON object`);
    definition = { ...(json as ClientMetadata) };
  }
  if (values['jwks-file'] && values['jwks-uri']) throw new CliUsageError('give --jwks-file or --jwks-uri, not both');
  const set = (key: string, value: unknown) => {
    if (value !== undefined) definition[key] = value;
  };
  set('smart_client_kind', values.kind);
  set('client_name', values.name);
  set('smart_scopes', values.scopes?.flatMap((s) => s.split(/\s+/)).filter(Boolean));
  set('redirect_uris', values['redirect-uri']);
  set('fhir_servers', values['fhir-server']);
  set('launch_url', values['launch-url']);
  set('purposes_of_use', values.purpose);
  set('default_purposes_of_use', values['default-purpose']);
  set('test_account', values['test-account']);
  set('jku_allowlist', values.jku);
  set('token_endpoint_auth_method', values['auth-method']);
  set('application_type', values['application-type']);
  set('jwks_uri', values['jwks-uri']);
  if (values['jwks-file']) set('jwks', await readJwksFile(values['jwks-file']));
  return definition;
}

function printSecret(out: Out, secret: string | undefined): void {
  if (!secret) return;
  out(`client_secret: ${secret}`);
  out('WARNING: store this client secret now. It is kept only as a hash and cannot be shown again.');
}

function summary(client: ClientMetadata): string {
  return `${String(client.smart_client_kind)}, ${String(client.token_endpoint_auth_method)}`;
}

function list(value: unknown): string {
  return Array.isArray(value) && value.length ? value.join(' ') : '(none)';
}

export async function addClient(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { values } = parseCommandArgs(args, { ...DEFINITION_OPTIONS, id: { type: 'string' } }, 0);
  const definition = await definitionFrom(values);
  if (values.id) definition.client_id = values.id;
  definition.client_id ??= randomUUID();
  if (definition.smart_client_kind === undefined) throw new CliUsageError('clients add needs --kind (or smart_client_kind in --json)');
  const result = await registry.create(definition);
  out(`created client "${String(result.client.client_id)}" (${summary(result.client)})`);
  printSecret(out, result.clientSecret);
}

export async function listClients(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 0);
  const clients = await registry.list();
  if (values.json) {
    out(JSON.stringify(clients, null, 2));
    return;
  }
  if (!clients.length) {
    out('no clients registered');
    return;
  }
  const rows = [
    ['CLIENT ID', 'KIND', 'AUTH METHOD', 'NAME'],
    ...clients.map((c) => [c.client_id, c.smart_client_kind, c.token_endpoint_auth_method, c.client_name ?? ''].map(String)),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  for (const row of rows)
    out(
      row
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    );
}

export async function showClient(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } }, 1);
  const id = requireId(positionals, 'show');
  const client = await registry.get(id);
  if (!client) throw new ClientRegistryError(`client "${id}" does not exist`);
  if (values.json) {
    out(JSON.stringify(client, null, 2));
    return;
  }
  const method = client.token_endpoint_auth_method;
  const lines: [string, string][] = [
    ['client_id', String(client.client_id)],
    ['name', String(client.client_name ?? '(none)')],
    ['kind', String(client.smart_client_kind)],
    ['auth method', String(method)],
    ['grant types', list(client.grant_types)],
    ['redirect uris', list(client.redirect_uris)],
    ['scopes', list(client.smart_scopes)],
    ['fhir servers', client.fhir_servers === undefined ? '(all configured)' : list(client.fhir_servers)],
    ['launch url', String(client.launch_url ?? '(none)')],
    ['purposes of use', list(client.purposes_of_use)],
  ];
  if (method === 'client_secret_basic' || method === 'client_secret_post') lines.push(['client secret', 'set (stored as a SHA-256 hash)']);
  if (client.jwks_uri !== undefined) lines.push(['jwks_uri', String(client.jwks_uri)]);
  if (client.jwks !== undefined) lines.push(['jwks', describeJwks(client.jwks).join(', ')]);
  if (client.jku_allowlist !== undefined) lines.push(['jku allowlist', list(client.jku_allowlist)]);
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out(`${`${k}:`.padEnd(width + 2)}${v}`);
}

export async function updateClient(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, DEFINITION_OPTIONS, 1);
  const id = requireId(positionals, 'update');
  const patch = await definitionFrom(values);
  // A new key source replaces the other one.
  if (patch.jwks !== undefined && patch.jwks !== null) patch.jwks_uri = null;
  else if (patch.jwks_uri !== undefined && patch.jwks_uri !== null) patch.jwks = null;
  const result: UpsertResult = await registry.update(id, patch);
  out(result.status === 'unchanged' ? `client "${id}" unchanged` : `updated client "${id}" (${summary(result.client)})`);
  printSecret(out, result.clientSecret);
}

export async function removeClient(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { positionals } = parseCommandArgs(args, {}, 1);
  const id = requireId(positionals, 'remove');
  if (!(await registry.remove(id))) throw new ClientRegistryError(`client "${id}" does not exist`);
  out(`removed client "${id}"`);
}

export async function rotateClientSecret(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { positionals } = parseCommandArgs(args, {}, 1);
  const id = requireId(positionals, 'rotate-secret');
  const secret = await registry.rotateSecret(id);
  out(`rotated the secret of client "${id}"; the previous secret no longer works`);
  printSecret(out, secret);
}

export async function setClientJwks(registry: ClientRegistry, args: string[], out: Out): Promise<void> {
  const { values, positionals } = parseCommandArgs(args, { 'jwks-file': { type: 'string' }, 'jwks-uri': { type: 'string' } }, 1);
  const id = requireId(positionals, 'set-jwks');
  const file = values['jwks-file'];
  const uri = values['jwks-uri'];
  if (!file === !uri) throw new CliUsageError('clients set-jwks needs exactly one of --jwks-file or --jwks-uri');
  const keys: ClientKeys = file ? { jwks: await readJwksFile(file) } : { jwks_uri: uri! };
  const result = await registry.setJwks(id, keys);
  out(
    result.client.jwks_uri !== undefined
      ? `client "${id}" now uses the keys at ${String(result.client.jwks_uri)}`
      : `client "${id}" now uses ${describeJwks(result.client.jwks).join(', ')}`,
  );
}

export type ClientsCommand = (registry: ClientRegistry, args: string[], out: Out) => Promise<void>;

/** `clients <name>` → command, for the dispatcher. */
export const CLIENT_COMMANDS: Readonly<Record<string, ClientsCommand>> = {
  add: addClient,
  list: listClients,
  show: showClient,
  update: updateClient,
  remove: removeClient,
  'rotate-secret': rotateClientSecret,
  'set-jwks': setClientJwks,
};
