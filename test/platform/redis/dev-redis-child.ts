// Run by dev-redis.test.ts as a separate process that is then killed with SIGKILL, to prove the
// private redis-server does not outlive the process that started it.
import { pino } from 'pino';
import { ensureDevRedis } from '../../../src/platform/redis/dev-redis.js';

const [url, dataDir] = process.argv.slice(2);
if (!url || !dataDir) throw new Error('usage: dev-redis-child.ts <url> <dataDir>');
const dev = await ensureDevRedis({ url, dataDir, logger: pino({ level: 'silent' }) });
process.stdout.write(`${dev?.url ?? 'none'}\n`);
setInterval(() => {}, 60_000);
