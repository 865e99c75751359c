import { rmSync } from 'node:fs';

async function stop(suite) {
  await new Promise((resolve) => {
    if (suite.proc.exitCode !== null) return resolve();
    suite.proc.once('exit', resolve);
    suite.proc.kill('SIGTERM');
  });
  rmSync(suite.dir, { recursive: true, force: true });
}

export default async function globalTeardown() {
  // PostgreSQL's SIGTERM waits for its clients; by now every test file has closed its pools.
  if (globalThis.__SUITE_PG__) await stop(globalThis.__SUITE_PG__);
  const suite = globalThis.__SUITE_REDIS__;
  if (!suite) return;
  await new Promise((resolve) => {
    if (suite.proc.exitCode !== null) return resolve();
    suite.proc.once('exit', resolve);
    suite.proc.kill('SIGTERM');
  });
  rmSync(suite.dir, { recursive: true, force: true });
}
