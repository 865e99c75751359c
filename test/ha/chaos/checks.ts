import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import { ROOT } from '../../support/server-process.js';
import type { Balancer } from './load.js';

/**
 * What the chaos suite checks after each scenario, through public interfaces only: introspection
 * over HTTP, and the admin CLI (`smart-authz audit export` / `audit verify`) as a child process with
 * the servers' environment. Nothing here reads the audit trail's Redis layout.
 */

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(env: Record<string, string>, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['bin/smart-authz.js', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: err });
    });
  });
}

/** How a token-issued AuditEvent names a token: a JWT by its jti, an opaque token by its SHA-256. */
export function recordedAs(token: string): string {
  return token.split('.').length === 3 ? String(decodeJwt(token).jti) : createHash('sha256').update(token).digest('base64url');
}

interface ExportedEvent {
  subtype?: Array<{ code?: string }>;
  entity?: Array<{ role?: { code?: string }; what?: { identifier?: { value?: string } } }>;
}

/**
 * The identifiers of every token named by a token-issued AuditEvent, from `audit export` (NDJSON).
 * Throws when the export fails: a check that cannot run must not pass.
 */
export async function issuedInTrail(env: Record<string, string>): Promise<Set<string>> {
  const r = await runCli(env, ['audit', 'export']);
  if (r.code !== 0) throw new Error(`audit export exited ${r.code}: ${r.stderr.slice(0, 2000)}`);
  const seen = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as ExportedEvent;
    if (!e.subtype?.some((c) => c.code === 'token-issued')) continue;
    for (const x of e.entity ?? []) {
      const value = x.role?.code === '13' ? x.what?.identifier?.value : undefined;
      if (value) seen.add(value.replace(/^urn:ietf:params:oauth:jti:/, ''));
    }
  }
  return seen;
}

/**
 * `audit verify` (with the anchor dir when there is one). Signed checkpoints are written in the
 * background, so a verify right after the load may find the newest entries not yet covered: it
 * is tried again for up to `patienceMs` before its failure counts.
 */
export async function verifyTrail(
  env: Record<string, string>,
  anchorDir: string | undefined,
  patienceMs = 20_000,
): Promise<{ ok: boolean; output: string }> {
  const deadline = Date.now() + patienceMs;
  for (;;) {
    const r = await runCli(env, ['audit', 'verify', ...(anchorDir ? ['--anchor', anchorDir] : [])]);
    const output = `${r.stdout}${r.stderr}`.trim();
    if (r.code === 0) return { ok: true, output };
    if (Date.now() > deadline) return { ok: false, output };
    await new Promise((res) => setTimeout(res, 2_000));
  }
}

/**
 * Introspects every token once more through the balancer, `workers` at a time. A 503 or a lost
 * connection is retried (the service is recovering) for up to `patienceMs`; what is still not
 * answered then counts as unknown, and an answer `active: false` as lost.
 */
export async function introspectAll(
  lb: Balancer,
  rs: { id: string; secret: string },
  tokens: string[],
  workers: number,
  patienceMs = 30_000,
): Promise<{ lost: string[]; unknown: string[] }> {
  const basic = `Basic ${Buffer.from(`${rs.id}:${rs.secret}`).toString('base64')}`;
  const lost: string[] = [];
  const unknown: string[] = [];
  const deadline = Date.now() + patienceMs;
  const queue = [...tokens];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let token = queue.pop(); token !== undefined; token = queue.pop()) {
        for (;;) {
          const i = lb.pick();
          let status = 0;
          let active: unknown;
          if (i !== undefined) {
            try {
              const res = await fetch(`${lb.urls[i]}/introspect`, {
                method: 'POST',
                headers: { authorization: basic },
                body: new URLSearchParams({ token }),
                signal: AbortSignal.timeout(10_000),
              });
              status = res.status;
              active = ((await res.json().catch(() => ({}))) as { active?: unknown }).active;
            } catch {
              /* retried below */
            }
          }
          if (status === 200) {
            if (active !== true) lost.push(token);
            break;
          }
          if (Date.now() > deadline) {
            unknown.push(token);
            break;
          }
          await new Promise((res) => setTimeout(res, 200));
        }
      }
    }),
  );
  return { lost, unknown };
}
