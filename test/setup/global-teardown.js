import { rmSync } from 'node:fs';

export default async function globalTeardown() {
  const suite = globalThis.__SUITE_REDIS__;
  if (!suite) return;
  await new Promise((resolve) => {
    if (suite.proc.exitCode !== null) return resolve();
    suite.proc.once('exit', resolve);
    suite.proc.kill('SIGTERM');
  });
  rmSync(suite.dir, { recursive: true, force: true });
}
