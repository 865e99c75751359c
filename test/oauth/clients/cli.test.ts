import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addClient,
  CLIENT_COMMANDS,
  CLIENTS_USAGE,
  listClients,
  removeClient,
  rotateClientSecret,
  setClientJwks,
  showClient,
  updateClient,
} from '../../../src/cli/clients.js';
import { CliUsageError } from '../../../src/cli/errors.js';
import { ClientRegistryError } from '../../../src/oauth/clients/registry.js';
import { verifyClientSecret } from '../../../src/oauth/clients/secrets.js';
import { createHarness, FHIR_BASE, rsaKeyPair, type Harness } from './support.js';

let h: Harness;
let dir: string;
let lines: string[];
const out = (line: string) => {
  lines.push(line);
};
const rsa = rsaKeyPair('bulk-1');

beforeEach(async () => {
  h = await createHarness();
  dir = mkdtempSync(join(tmpdir(), 'clients-cli-'));
  lines = [];
});

afterEach(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

function json(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

async function storedSecret(id: string): Promise<string> {
  return (JSON.parse((await h.redis.get(h.keyspace.model('Client', id)))!) as { client_secret: string }).client_secret;
}

async function thrown(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the command to fail');
}

test('add a backend service from flags and a JWKS file', async () => {
  const keys = json('keys.json', { keys: [rsa.publicJwk] });
  await addClient(
    h.registry,
    [
      '--kind',
      'backend_service',
      '--id',
      'bulk-exporter',
      '--jwks-file',
      keys,
      '--scopes',
      'system/*.rs system/Patient.r',
      '--name',
      'Bulk exporter',
    ],
    out,
  );
  expect(lines).toEqual(['created client "bulk-exporter" (backend_service, private_key_jwt)']);
  expect(await h.registry.get('bulk-exporter')).toMatchObject({
    client_name: 'Bulk exporter',
    smart_scopes: ['system/*.rs', 'system/Patient.r'],
    grant_types: ['client_credentials'],
    jwks: { keys: [rsa.publicJwk] },
  });
});

test('add a symmetric app prints the generated secret once, with a warning, and stores its hash', async () => {
  await addClient(
    h.registry,
    [
      '--kind',
      'confidential_symmetric',
      '--id',
      'clinic',
      '--redirect-uri',
      'https://clinic.example.org/cb',
      '--redirect-uri',
      'https://clinic.example.org/cb2',
      '--scopes',
      'openid',
      '--scopes',
      'user/*.rs',
      '--fhir-server',
      FHIR_BASE,
      '--launch-url',
      'https://clinic.example.org/launch',
      '--purpose',
      'TREAT',
      '--default-purpose',
      'COC',
      '--test-account',
    ],
    out,
  );
  expect(lines[0]).toBe('created client "clinic" (confidential_symmetric, client_secret_basic)');
  const secret = /^client_secret: (\S+)$/.exec(lines[1]!)?.[1];
  expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(lines[2]).toMatch(/^WARNING: store this client secret now\. It is kept only as a hash/);
  expect(verifyClientSecret(await storedSecret('clinic'), secret)).toBe(true);
  expect(await h.registry.get('clinic')).toMatchObject({
    redirect_uris: ['https://clinic.example.org/cb', 'https://clinic.example.org/cb2'],
    smart_scopes: ['openid', 'user/*.rs'],
    fhir_servers: [FHIR_BASE],
    launch_url: 'https://clinic.example.org/launch',
    purposes_of_use: ['TREAT'],
    default_purposes_of_use: ['COC'],
    test_account: true,
  });
});

test('add from a JSON definition, flags overriding it; generates an id when none is given', async () => {
  const definition = json('client.json', {
    smart_client_kind: 'public_app',
    redirect_uris: ['https://app.example.org/cb'],
    smart_scopes: ['openid'],
    client_name: 'From JSON',
  });
  await addClient(h.registry, ['--json', definition, '--name', 'Overridden'], out);
  const id = /^created client "([^"]+)"/.exec(lines[0]!)?.[1];
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect((await h.registry.get(id!))?.client_name).toBe('Overridden');
});

test('add refuses an existing id, a private key and bad arguments', async () => {
  await addClient(h.registry, ['--kind', 'resource_server', '--id', 'rs'], out);
  expect((await thrown(addClient(h.registry, ['--kind', 'resource_server', '--id', 'rs'], out))).message).toBe(
    'client "rs" already exists',
  );

  const privateKeys = json('private.json', rsa.privateJwk);
  const err = await thrown(
    addClient(h.registry, ['--kind', 'backend_service', '--id', 'b', '--jwks-file', privateKeys, '--scopes', 'system/*.rs'], out),
  );
  expect(err).toBeInstanceOf(ClientRegistryError);
  expect(err.message).toBe('client "b": jwks.keys[0] contains private key material ("d"); register the public key only');
  expect(err.message).not.toContain(String(rsa.privateJwk.d));

  expect(await thrown(addClient(h.registry, ['--id', 'x'], out))).toBeInstanceOf(CliUsageError);
  const unknown = await thrown(addClient(h.registry, ['--kind', 'public_app', '--colour', 'blue'], out));
  expect(unknown).toBeInstanceOf(CliUsageError);
  expect(unknown.message).toMatch(/--colour/);
});

test('list shows one aligned row per client, sorted by id', async () => {
  await listClients(h.registry, [], out);
  expect(lines).toEqual(['no clients registered']);
  lines = [];
  await addClient(h.registry, ['--kind', 'resource_server', '--id', 'fhir', '--name', 'FHIR server'], out);
  await addClient(
    h.registry,
    ['--kind', 'backend_service', '--id', 'bulk', '--jwks-uri', 'https://bulk.example.org/jwks', '--scopes', 'system/*.rs'],
    out,
  );
  lines = [];
  await listClients(h.registry, [], out);
  expect(lines).toEqual([
    'CLIENT ID  KIND             AUTH METHOD          NAME',
    'bulk       backend_service  private_key_jwt',
    'fhir       resource_server  client_secret_basic  FHIR server',
  ]);
  lines = [];
  await listClients(h.registry, ['--json'], out);
  expect((JSON.parse(lines.join('\n')) as { client_id: string }[]).map((c) => c.client_id)).toEqual(['bulk', 'fhir']);
  expect(lines.join('\n')).not.toContain('client_secret"');
});

test('show prints the client without its secret', async () => {
  const keys = json('keys.json', { keys: [rsa.publicJwk] });
  await addClient(h.registry, ['--kind', 'backend_service', '--id', 'bulk', '--jwks-file', keys, '--scopes', 'system/*.rs'], out);
  await addClient(h.registry, ['--kind', 'ehr_launcher', '--id', 'ehr', '--scopes', 'system/Patient.r'], out);
  const secret = /^client_secret: (\S+)$/.exec(lines[2]!)![1]!;
  lines = [];
  await showClient(h.registry, ['bulk'], out);
  expect(lines).toEqual([
    'client_id:       bulk',
    'name:            (none)',
    'kind:            backend_service',
    'auth method:     private_key_jwt',
    'grant types:     client_credentials',
    'redirect uris:   (none)',
    'scopes:          system/*.rs',
    'fhir servers:    (all configured)',
    'launch url:      (none)',
    'purposes of use: (none)',
    'jwks:            bulk-1 (RSA 2048, RS384)',
  ]);
  lines = [];
  await showClient(h.registry, ['ehr'], out);
  expect(lines).toContain('client secret:   set (stored as a SHA-256 hash)');
  expect(lines.join('\n')).not.toContain(secret);
  expect(lines.join('\n')).not.toContain(await storedSecret('ehr'));
  expect((await thrown(showClient(h.registry, ['nobody'], out))).message).toBe('client "nobody" does not exist');
  expect(await thrown(showClient(h.registry, [], out))).toBeInstanceOf(CliUsageError);
});

test('update changes the given fields only', async () => {
  await addClient(
    h.registry,
    [
      '--kind',
      'public_app',
      '--id',
      'app',
      '--redirect-uri',
      'https://app.example.org/cb',
      '--scopes',
      'openid patient/*.rs',
      '--name',
      'Old',
    ],
    out,
  );
  lines = [];
  await updateClient(h.registry, ['app', '--name', 'New', '--scopes', 'openid patient/Patient.r'], out);
  expect(lines).toEqual(['updated client "app" (public_app, none)']);
  expect(await h.registry.get('app')).toMatchObject({
    client_name: 'New',
    smart_scopes: ['openid', 'patient/Patient.r'],
    redirect_uris: ['https://app.example.org/cb'],
  });
  lines = [];
  await updateClient(h.registry, ['app', '--name', 'New'], out);
  expect(lines).toEqual(['client "app" unchanged']);
});

test('remove deletes the client', async () => {
  await addClient(h.registry, ['--kind', 'resource_server', '--id', 'rs'], out);
  lines = [];
  await removeClient(h.registry, ['rs'], out);
  expect(lines).toEqual(['removed client "rs"']);
  expect(await h.registry.get('rs')).toBeUndefined();
  expect(await h.redis.smembers(h.keyspace.clientIndex())).toEqual([]);
  expect((await thrown(removeClient(h.registry, ['rs'], out))).message).toBe('client "rs" does not exist');
});

test('rotate-secret prints a new secret once and the old one stops working', async () => {
  await addClient(h.registry, ['--kind', 'resource_server', '--id', 'rs'], out);
  const old = /^client_secret: (\S+)$/.exec(lines[1]!)![1]!;
  lines = [];
  await rotateClientSecret(h.registry, ['rs'], out);
  expect(lines[0]).toBe('rotated the secret of client "rs"; the previous secret no longer works');
  const fresh = /^client_secret: (\S+)$/.exec(lines[1]!)![1]!;
  expect(lines[2]).toMatch(/^WARNING: store this client secret now/);
  const stored = await storedSecret('rs');
  expect(verifyClientSecret(stored, fresh)).toBe(true);
  expect(verifyClientSecret(stored, old)).toBe(false);
});

test('set-jwks replaces the keys of a private_key_jwt client', async () => {
  await addClient(
    h.registry,
    ['--kind', 'backend_service', '--id', 'bulk', '--jwks-uri', 'https://bulk.example.org/jwks', '--scopes', 'system/*.rs'],
    out,
  );
  lines = [];
  const next = rsaKeyPair('bulk-2').publicJwk;
  await setClientJwks(h.registry, ['bulk', '--jwks-file', json('next.json', next)], out);
  expect(lines).toEqual(['client "bulk" now uses bulk-2 (RSA 2048, RS384)']);
  expect(await h.registry.get('bulk')).toMatchObject({ jwks: { keys: [next] } });
  expect(await h.registry.get('bulk')).not.toHaveProperty('jwks_uri');
  lines = [];
  await setClientJwks(h.registry, ['bulk', '--jwks-uri', 'https://bulk.example.org/jwks-v2'], out);
  expect(lines).toEqual(['client "bulk" now uses the keys at https://bulk.example.org/jwks-v2']);
  expect(await thrown(setClientJwks(h.registry, ['bulk'], out))).toBeInstanceOf(CliUsageError);
});

test('the usage text and the command map name every command', () => {
  const commands = ['add', 'list', 'show', 'update', 'remove', 'rotate-secret', 'set-jwks'];
  for (const command of commands) expect(CLIENTS_USAGE).toMatch(new RegExp(`^  ${command} `, 'm'));
  expect(Object.keys(CLIENT_COMMANDS).sort()).toEqual([...commands].sort());
});
