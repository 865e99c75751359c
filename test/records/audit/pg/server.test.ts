import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import pg from 'pg';
import { createPgTestDatabase, type PgTestDatabase } from '../../../support/postgres.js';
import { startServerProcess, type ServerProcess } from '../../../support/server-process.js';
import { cliLines } from '../../../support/cli.js';

/*
 * The server as an operator runs it with a PostgreSQL home: it migrates the schema as the owner at
 * start-up, ships what it appends, and `smart-authz audit verify` and `export` read PostgreSQL and
 * the Redis tail together. A database that holds another trail is refused at start-up.
 */

const INTROSPECTOR = `Basic ${Buffer.from('demo-fhir-server:demo-fhir-server-secret').toString('base64')}`;
const CALLS = 60;

let db: PgTestDatabase;
let server: ServerProcess;
const prefix = `pgsrv-${randomBytes(3).toString('hex')}:`;
let env: Record<string, string>;
const saved = { ...process.env };

beforeAll(async () => {
  db = await createPgTestDatabase({ migrate: false });
  env = {
    REDIS_URL: process.env.REDIS_URL!,
    AUTHZ_REDIS_PREFIX: prefix,
    AUTHZ_AUDIT_STORE: 'postgres',
    AUTHZ_AUDIT_DATABASE_URL: db.appUrl,
    AUTHZ_AUDIT_DATABASE_OWNER_URL: db.ownerUrl,
    AUTHZ_AUDIT_CHAINS: '2',
    AUTHZ_DEV_REDIS: 'false',
  };
  server = await startServerProcess(env);
}, 60_000);

afterAll(async () => {
  if (server?.proc.exitCode === null) {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
  process.env = saved;
  await db?.drop();
});

describe('a server with a PostgreSQL home', () => {
  test('migrates at start-up, ships every audited request, and the CLI verifies and exports both parts', async () => {
    for (let i = 0; i < CALLS; i++) {
      const res = await fetch(`${server.url}/introspect`, {
        method: 'POST',
        headers: { Authorization: INTROSPECTOR, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: `token=not-a-token-${i}`,
      });
      expect(res.status).toBe(200);
    }
    const client = new pg.Client({ connectionString: db.ownerUrl });
    await client.connect();
    try {
      const deadline = Date.now() + 20_000;
      let shipped = 0;
      while (Date.now() < deadline) {
        shipped = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM audit.entries')).rows[0]!.n);
        if (shipped >= CALLS) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(shipped).toBeGreaterThanOrEqual(CALLS);
      const chains = (await client.query<{ chain: string }>('SELECT DISTINCT chain FROM audit.entries ORDER BY 1')).rows.map(
        (r) => r.chain,
      );
      expect(chains).toEqual(['main', 'main-1']);
      const migrations = (await client.query<{ name: string }>('SELECT name FROM audit.pgmigrations ORDER BY 1')).rows.map((r) => r.name);
      expect(migrations.length).toBeGreaterThanOrEqual(2);
    } finally {
      await client.end();
    }

    Object.assign(process.env, env, { AUTHZ_LOG_LEVEL: 'silent' });
    const verified = await cliLines('audit', 'verify');
    expect(verified.filter((l) => l.includes('FAILED'))).toEqual([]);
    expect(verified).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^main \(PostgreSQL\): OK, \d+ entries/),
        expect.stringMatching(/^main-1 \(Redis\): OK/),
      ]),
    );
    const exported = await cliLines('audit', 'export');
    const introspections = exported
      .map((l) => JSON.parse(l) as { subtype?: Array<{ code?: string }> })
      .filter((e) => e.subtype?.some((c) => c.code === 'token-introspected'));
    expect(introspections.length).toBeGreaterThanOrEqual(CALLS);
  }, 60_000);

  test('a database that holds another trail is refused at start-up with one line', async () => {
    const other = await startServerProcess(
      { ...env, AUTHZ_REDIS_PREFIX: `pgsrv-other-${randomBytes(3).toString('hex')}:` },
      { waitReady: false },
    );
    const code = await other.exited;
    expect(code).toBe(1);
    expect(other.stderr().trim()).toMatch(/^the audit database holds another trail \([0-9a-f-]{36}\) than this server's Redis/);
  }, 30_000);
});
