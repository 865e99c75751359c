import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { asRole, createPgTestDatabase, type PgTestDatabase } from '../../../support/postgres.js';
import { cliLines } from '../../../support/cli.js';

/*
 * `smart-authz audit db migrate`: a DBA creates the schema as its owner and grants the server's
 * role read and append rights only; run again, it says the schema is current.
 */

let db: PgTestDatabase;
const saved = { ...process.env };

beforeAll(async () => {
  db = await createPgTestDatabase({ migrate: false });
  Object.assign(process.env, {
    AUTHZ_AUDIT_STORE: 'postgres',
    AUTHZ_AUDIT_DATABASE_URL: db.appUrl,
    AUTHZ_AUDIT_DATABASE_OWNER_URL: db.ownerUrl,
    AUTHZ_LOG_LEVEL: 'silent',
  });
});

afterAll(async () => {
  process.env = saved;
  await db?.drop();
});

test('creates the schema as its owner, grants the application role append-only rights, and is idempotent', async () => {
  const first = await cliLines('audit', 'db', 'migrate');
  expect(first).toEqual([
    expect.stringMatching(/^applied 1767225600000_audit-store, .* to postgres:\/\/authz_audit_owner_/),
    `granted ${db.appRole} read and append rights (no UPDATE, DELETE or TRUNCATE)`,
  ]);
  expect(await cliLines('audit', 'db', 'migrate')).toEqual([
    expect.stringMatching(/the audit database schema at .* is current$/),
    expect.stringMatching(/^granted /),
  ]);
  // The application role reads, and may not delete.
  await asRole(db.appUrl, async (c) => {
    expect((await c.query('SELECT count(*)::int AS n FROM audit.entries')).rows[0]).toEqual({ n: 0 });
    await expect(c.query('DELETE FROM audit.entries')).rejects.toThrow(/permission denied/);
  });
});

test('without a database configured it says so', async () => {
  process.env.AUTHZ_AUDIT_STORE = 'redis';
  await expect(cliLines('audit', 'db', 'migrate')).rejects.toThrow(/no audit database is configured/);
  process.env.AUTHZ_AUDIT_STORE = 'postgres';
});
