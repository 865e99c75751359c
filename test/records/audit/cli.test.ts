import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { cliLines as cli } from '../../support/cli.js';
import { auditFixture, sampleEvent, type AuditFixture } from './support.js';
import { rewriteStream } from './tamper.js';

const prefix = `cli-audit-${randomUUID().slice(0, 8)}:`;
const env = {
  REDIS_URL: process.env.REDIS_URL!,
  AUTHZ_REDIS_PREFIX: prefix,
  AUTHZ_LOG_LEVEL: 'silent',
  AUTHZ_AUDIT_RETENTION_DAYS: '30',
  AUTHZ_AUDIT_DISCLOSURE_RETENTION_DAYS: '60',
};
const saved = { ...process.env };
let f: AuditFixture;

beforeAll(async () => {
  Object.assign(process.env, env);
  f = await auditFixture(env, prefix);
  // The fixture's trail (the running server here) signs its head at start: seq 0.
  await f.trail.settled();
  const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
  for (let i = 0; i < 5; i++) await f.trail.record(sampleEvent({ patient: `c${i}`, subtype: 'login-failed', recorded: old }));
  for (let i = 0; i < 5; i++) await f.trail.record(sampleEvent({ patient: `c${i}` }));
});
afterEach(() => {
  process.exitCode = 0;
});
afterAll(async () => {
  process.env = saved;
  await f.close();
});

describe('smart-authz audit', () => {
  test('migrate on a trail already in the current layout changes nothing and says it verifies', async () => {
    expect(await cli('audit', 'migrate')).toEqual([
      expect.stringMatching(/^main: 0 entries migrated; verifies \(10 entries\)$/),
      expect.stringMatching(/^archive: 0 entries migrated; verifies/),
    ]);
    expect(process.exitCode ?? 0).toBe(0);
  });

  test('checkpoint, verify, export (audited), purge', async () => {
    expect(await cli('audit', 'checkpoint')).toEqual([expect.stringMatching(/^main: signed checkpoint at seq 10 \(hash [0-9a-f]{64}\)$/)]);
    const verified = await cli('audit', 'verify');
    expect(verified[0]).toMatch(/^main: OK, 10 entries .*2 signed checkpoints$/);
    expect(process.exitCode ?? 0).toBe(0);

    const lines = await cli('audit', 'export', '--since', new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
    expect(lines).toHaveLength(5);
    expect(lines.map((l) => (JSON.parse(l) as { resourceType: string }).resourceType)).toEqual(Array(5).fill('AuditEvent'));
    const exported = (await f.store.entries('main', undefined, 100)).at(-1)!;
    expect(exported.event).toContain('audit-exported');
    expect(exported.event).toContain('smart-authz CLI');

    const purged = await cli('audit', 'purge');
    expect(purged[0]).toMatch(/^purged 5 events recorded before .*; 0 disclosures moved/);
    expect((await cli('audit', 'verify', '--chain', 'main'))[0]).toMatch(/^main: OK, .* from the signed cut at seq 5/);
  });

  test('verify fails with exit code 1 and names the first bad entry', async () => {
    await rewriteStream(f, 'main', (entries) => {
      entries[1]!.event = entries[1]!.event.replace('"outcome":"0"', '"outcome":"8"');
      return entries;
    });
    const second = (await f.store.entries('main', undefined, 2))[1]!;
    const out = await cli('audit', 'verify', '--chain', 'main');
    expect(out[0]).toBe(
      `main: FAILED: altered entry at seq ${second.seq} (stream id ${second.sid}): entry seq ${second.seq} (${second.sid}) does not match its hash`,
    );
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
    expect(await cli('audit', 'purge')).toEqual([expect.stringMatching(/^purge refused: the main chain does not verify/)]);
    expect(process.exitCode).toBe(1);
  });

  test('usage', async () => {
    expect((await cli('audit'))[0]).toMatch(/^Usage: smart-authz audit/);
    await expect(cli('audit', 'verify', '--chain', 'x')).rejects.toThrow(/--chain must be main, main-<n> \(a shard\) or archive/);
    await expect(cli('audit', 'export', '--since', 'yesterday')).rejects.toThrow(/not a FHIR date/);
  });
});
