import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** GET and return the status; self-signed certificates are accepted (test servers only). */
export function getStatus(url: string, tls: { maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { rejectUnauthorized: false, ...tls }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs the real entry point (`npm start` minus npm) as a child process. It listens on a port the
 * OS picks (PORT=0) and the test reads it from the "listening" log line: a port probed free
 * beforehand could be taken by another test's server in the meantime, and a readiness check would
 * then be answered by the wrong process.
 */
/** A server keeps its audit trail in Redis unless the test gives it a database of its own. */
const AUDIT_IN_REDIS = { AUTHZ_AUDIT_STORE: 'redis' };

export async function startServerProcess(
  env: Record<string, string>,
  opts: { waitReady?: boolean; https?: boolean } = {},
): Promise<ServerProcess> {
  let out = '';
  let err = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AUTHZ_ISSUER: 'http://localhost:3000',
      PORT: '0',
      AUTHZ_HOST: '127.0.0.1',
      ...AUDIT_IN_REDIS,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // "close", not "exit": it comes once the output pipes are read to the end, so what the process
  // wrote last (a final log line, a one-line error) is in stdout()/stderr() when `exited` resolves.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  let url = 'http://127.0.0.1:0';
  if (opts.waitReady !== false) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server exited early (${proc.exitCode}): ${err}`);
      const port = /"port":(\d+)[^\n]*"msg":"listening"/.exec(out)?.[1];
      if (!port) {
        if (Date.now() > deadline) throw new Error(`server did not start listening: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      url = `${opts.https ? 'https' : 'http'}://127.0.0.1:${port}`;
      try {
        if ((await getStatus(`${url}/readyz`)) === 200) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`server did not become ready: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { proc, url, stdout: () => out, stderr: () => err, exited };
}
