import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startServerProcess } from '../../support/server-process.js';
import { auditFixture, type AuditFixture } from './support.js';
import { verifyChain, verifyPolicy } from '../../../src/records/audit/verify.js';
import { parseEvent } from '../../../src/records/audit/chain.js';

/**
 * "Durable before the response": the real server runs as a child process, answers a stream of
 * introspection requests, and is killed with SIGKILL while requests are still in flight. Every
 * introspection answer that reached the client must have its AuditEvent in Redis (the handler
 * awaits the append before it answers), and the chain must still verify: an append is one script,
 * so a kill cannot leave half a batch.
 */

const prefix = `dur-${randomUUID().slice(0, 8)}:`;
let f: AuditFixture;

beforeAll(async () => {
  f = await auditFixture({}, prefix);
});
afterAll(async () => {
  await f.close();
});

const basic = `Basic ${Buffer.from('demo-fhir-server:demo-fhir-server-secret').toString('base64')}`;

describe('durability', () => {
  test('SIGKILL mid-load: every answered introspection is in the trail, and the chain verifies', async () => {
    const server = await startServerProcess({
      REDIS_URL: process.env.REDIS_URL!,
      AUTHZ_REDIS_PREFIX: prefix,
      AUTHZ_LOG_LEVEL: 'info',
      AUTHZ_DEV_REDIS: 'false',
    });
    try {
      const answered: string[] = [];
      let failed = 0;
      let killed = false;
      const one = async (): Promise<void> => {
        const token = randomBytes(32).toString('base64url');
        try {
          const res = await fetch(`${server.url}/introspect`, {
            method: 'POST',
            headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
            body: `token=${token}`,
          });
          const body = (await res.json()) as { active?: boolean };
          if (res.status === 200 && body.active === false) answered.push(token);
        } catch {
          failed++;
        }
      };
      const worker = async () => {
        while (!killed) await one();
      };
      const workers = Array.from({ length: 32 }, worker);
      // Kill once a good number of answers are in, while all 32 workers have requests outstanding.
      const deadline = Date.now() + 30_000;
      while (answered.length < 400 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      server.proc.kill('SIGKILL');
      // Workers keep asking until the process is gone: the server can have answered everything in
      // flight by the time the signal lands, so only requests still coming in prove it died under load.
      await server.exited;
      killed = true;
      await Promise.all(workers);
      expect(failed).toBeGreaterThan(0); // some requests really were cut off mid-way

      const hashes = new Set<string>();
      for await (const entry of f.store.walk('main')) {
        for (const m of JSON.stringify(parseEvent(entry)).matchAll(/"value":"([A-Za-z0-9_-]{43})"/g)) hashes.add(m[1]!);
      }
      const missing = answered.filter((token) => !hashes.has(createHash('sha256').update(token).digest('base64url')));
      expect({ answered: answered.length, missing: missing.length }).toEqual({ answered: answered.length, missing: 0 });
      expect(answered.length).toBeGreaterThanOrEqual(400);
      expect(await verifyChain(f.store, f.keys, 'main', verifyPolicy(f.config))).toMatchObject({ ok: true });
    } finally {
      server.proc.kill('SIGKILL');
    }
  }, 60_000);
});
