import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientsFileError, loadClientsFile } from '../../../src/oauth/clients/file-loader.js';
import { hashClientSecret, verifyClientSecret } from '../../../src/oauth/clients/secrets.js';
import { createHarness, minimalClients, rsaKeyPair, type Harness } from './support.js';

const EXAMPLE = join(process.cwd(), 'config/clients.example.json');
const defs = minimalClients({ keys: [rsaKeyPair('k1').publicJwk] });

let h: Harness;
let dir: string;

beforeEach(async () => {
  h = await createHarness();
  dir = mkdtempSync(join(tmpdir(), 'clients-file-'));
});

afterEach(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(content: unknown, name = 'clients.json'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

async function fileError(promise: Promise<unknown>): Promise<ClientsFileError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ClientsFileError);
    return err as ClientsFileError;
  }
  throw new Error('expected a ClientsFileError');
}

describe('the example file', () => {
  const example = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as { clients: Record<string, unknown>[] };

  test('has one client of every kind and only public keys', () => {
    const kinds = new Set(example.clients.map((c) => c.smart_client_kind));
    expect([...kinds].sort()).toEqual([
      'backend_service',
      'confidential_asymmetric',
      'confidential_symmetric',
      'ehr_launcher',
      'public_app',
      'resource_server',
    ]);
    const keys = example.clients.flatMap((c) => (c.jwks as { keys: Record<string, unknown>[] } | undefined)?.keys ?? []);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key).not.toHaveProperty(member);
  });

  test('loads, and loading it again changes nothing', async () => {
    const ids = example.clients.map((c) => String(c.client_id));
    const first = await loadClientsFile(EXAMPLE, h.registry);
    expect(first.created).toEqual(ids);
    expect(first.updated).toEqual([]);
    expect(first.secretNotIssued).toEqual(['example-symmetric-app', 'example-fhir-server', 'example-ehr-launcher']);
    const snapshot = await h.redis.get(h.keyspace.model('Client', 'example-symmetric-app'));

    const second = await loadClientsFile(EXAMPLE, h.registry);
    expect(second).toEqual({ created: [], updated: [], unchanged: ids, secretNotIssued: [] });
    expect(await h.redis.get(h.keyspace.model('Client', 'example-symmetric-app'))).toBe(snapshot);
  });
});

test('reports created, updated and unchanged clients', async () => {
  await loadClientsFile(file({ clients: [defs.public_app, defs.backend_service] }), h.registry);
  const result = await loadClientsFile(
    file({ clients: [defs.public_app, { ...defs.backend_service, client_name: 'Renamed' }, defs.confidential_asymmetric] }),
    h.registry,
  );
  expect(result).toEqual({ created: ['asym'], updated: ['bulk'], unchanged: ['pub'], secretNotIssued: [] });
  expect((await h.registry.get('bulk'))?.client_name).toBe('Renamed');
});

test('writes nothing when one entry is invalid, and names the file, the entry and the problem', async () => {
  await loadClientsFile(file({ clients: [defs.public_app] }), h.registry);
  const before = await h.redis.get(h.keyspace.model('Client', 'pub'));
  const path = file({
    clients: [
      { ...defs.public_app, client_name: 'Changed' },
      defs.backend_service,
      { ...defs.ehr_launcher, smart_scopes: ['system/Patient.x'] },
      { smart_client_kind: 'public_app' },
    ],
  });
  const err = await fileError(loadClientsFile(path, h.registry));
  expect(err.file).toBe(path);
  expect(err.problems).toEqual([
    'clients[2] ("ehr"): smart_scopes[0] "system/Patient.x" has permissions "x"; use read, write or * (v1) or an in-order subset of cruds such as rs (v2)',
    'clients[3]: client_id is required and must be a non-empty string',
  ]);
  expect(err.message).toContain(`clients file ${path} was not applied`);
  expect(await h.redis.get(h.keyspace.model('Client', 'pub'))).toBe(before);
  expect(await h.registry.get('bulk')).toBeUndefined();
  expect(await h.redis.smembers(h.keyspace.clientIndex())).toEqual(['pub']);
});

test('accepts secrets in plaintext or hashed, and stores only hashes', async () => {
  const hashed = hashClientSecret('hashed-in-the-file-0123456789');
  const result = await loadClientsFile(
    file({
      clients: [
        { ...defs.confidential_symmetric, client_secret: 'plaintext-in-the-file-0123456789' },
        { ...defs.ehr_launcher, client_secret: hashed },
      ],
    }),
    h.registry,
  );
  expect(result.secretNotIssued).toEqual([]);
  const sym = (await h.redis.get(h.keyspace.model('Client', 'sym')))!;
  expect(sym).not.toContain('plaintext-in-the-file-0123456789');
  expect(verifyClientSecret(JSON.parse(sym).client_secret, 'plaintext-in-the-file-0123456789')).toBe(true);
  expect(JSON.parse((await h.redis.get(h.keyspace.model('Client', 'ehr')))!).client_secret).toBe(hashed);
});

test('keeps a stored (rotated) secret when the file gives none', async () => {
  await loadClientsFile(file({ clients: [defs.confidential_symmetric] }), h.registry);
  const secret = await h.registry.rotateSecret('sym');
  expect((await loadClientsFile(file({ clients: [defs.confidential_symmetric] }), h.registry)).unchanged).toEqual(['sym']);
  expect(verifyClientSecret(JSON.parse((await h.redis.get(h.keyspace.model('Client', 'sym')))!).client_secret, secret)).toBe(true);
});

describe('malformed files', () => {
  test('duplicate client ids', async () => {
    const err = await fileError(loadClientsFile(file({ clients: [defs.public_app, defs.public_app] }), h.registry));
    expect(err.problems).toEqual(['clients[1] ("pub"): client_id is also used by clients[0]']);
  });

  test('not JSON, no clients array, a missing file, a non-object entry', async () => {
    expect((await fileError(loadClientsFile(file('{ nope'), h.registry))).problems[0]).toMatch(/^is not valid JSON: /);
    expect((await fileError(loadClientsFile(file({ client: [] }), h.registry))).problems).toEqual([
      'must be an object with a "clients" array',
    ]);
    expect((await fileError(loadClientsFile(join(dir, 'absent.json'), h.registry))).problems[0]).toMatch(/^cannot be read: ENOENT/);
    expect((await fileError(loadClientsFile(file({ clients: ['pub'] }), h.registry))).problems).toEqual([
      'clients[0]: must be a JSON object',
    ]);
  });
});
