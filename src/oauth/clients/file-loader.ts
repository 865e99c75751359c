import { readFile } from 'node:fs/promises';
import { ClientRegistryError, type ClientRegistry, type PreparedUpsert } from './registry.js';

/**
 * The declarative clients file, `{ "clients": [ {...}, ... ] }`, applied at start-up as an
 * idempotent upsert. Every entry is validated before anything is written: one bad entry leaves
 * Redis untouched and the error lists every problem with the file, entry index and client id.
 *
 * Secrets come from the file (plaintext or `sha256$…`) or are already stored. A new secret-based
 * client without one gets a random secret nobody is shown (start-up output is no place for it);
 * `clients rotate-secret <id>` then issues one. Such ids are listed in `secretNotIssued`. A secret
 * given in the file wins over one rotated since, so files that carry secrets stay declarative.
 * Clients not in the file are left alone.
 */

export interface ClientsFileResult {
  created: string[];
  updated: string[];
  unchanged: string[];
  /** Created with a secret nobody has seen; run `clients rotate-secret <id>` to issue one. */
  secretNotIssued: string[];
}

export class ClientsFileError extends ClientRegistryError {
  override name = 'ClientsFileError';

  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`clients file ${file} was not applied:\n  ${problems.join('\n  ')}`);
  }
}

async function readEntries(path: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ClientsFileError(path, [`cannot be read: ${(err as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ClientsFileError(path, [`is not valid JSON: ${(err as Error).message}`]);
  }
  const clients = (parsed as { clients?: unknown } | null)?.clients;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Array.isArray(clients)) {
    throw new ClientsFileError(path, ['must be an object with a "clients" array']);
  }
  return clients;
}

function label(index: number, entry: unknown): string {
  const id = (entry as { client_id?: unknown } | null)?.client_id;
  return `clients[${index}]${typeof id === 'string' ? ` ("${id}")` : ''}`;
}

function withoutClientPrefix(message: string): string {
  return message.replace(/^client "[^"]*": /, '');
}

export async function loadClientsFile(path: string, registry: ClientRegistry): Promise<ClientsFileResult> {
  const entries = await readEntries(path);
  const problems: string[] = [];
  const prepared: PreparedUpsert[] = [];
  const seen = new Map<string, number>();

  for (const [i, entry] of entries.entries()) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${label(i, entry)}: must be a JSON object`);
      continue;
    }
    const id = (entry as { client_id?: unknown }).client_id;
    if (typeof id === 'string') {
      const first = seen.get(id);
      if (first !== undefined) {
        problems.push(`${label(i, entry)}: client_id is also used by clients[${first}]`);
        continue;
      }
      seen.set(id, i);
    }
    try {
      prepared.push(await registry.prepare(entry as Record<string, unknown>));
    } catch (err) {
      if (!(err instanceof ClientRegistryError)) throw err;
      problems.push(`${label(i, entry)}: ${withoutClientPrefix(err.message)}`);
    }
  }
  if (problems.length) throw new ClientsFileError(path, problems);

  const result: ClientsFileResult = { created: [], updated: [], unchanged: [], secretNotIssued: [] };
  for (const p of prepared) {
    await registry.commit(p);
    result[p.status].push(p.id);
    if (p.clientSecret) result.secretNotIssued.push(p.id);
  }
  return result;
}
