// The IPC a token benchmark target answers: its CPU time (for CPU per request), its memory, and
// tokens to exchange (authorization codes, refresh tokens) minted ahead of a measured run.
import type { Redis } from 'ioredis';

export interface TargetHandlers {
  mintCodes(n: number, codeChallenge: string): Promise<string[]>;
  mintRefreshTokens(n: number): Promise<string[]>;
}

export type TargetAsk =
  { kind: 'cpu' } | { kind: 'memory' } | { kind: 'codes'; n: number; codeChallenge: string } | { kind: 'refresh'; n: number };
export type TargetRequest = TargetAsk & { id: number };

export function answerRunner(handlers: TargetHandlers, redis: Redis, prefix: string): void {
  process.on('message', (m: TargetRequest) => {
    const reply = (value: unknown) => process.send?.({ id: m.id, value });
    const fail = (err: unknown) => process.send?.({ id: m.id, error: (err as Error).message });
    switch (m.kind) {
      case 'cpu': {
        const { user, system } = process.cpuUsage();
        reply(user + system);
        break;
      }
      case 'memory':
        reply(process.memoryUsage());
        break;
      case 'codes':
        handlers.mintCodes(m.n, m.codeChallenge).then(reply, fail);
        break;
      case 'refresh':
        handlers.mintRefreshTokens(m.n).then(reply, fail);
        break;
    }
  });
  // Leave nothing behind in a shared Redis.
  process.on('SIGTERM', () => {
    void removePrefix(redis, prefix).finally(() => process.exit(0));
  });
}

/** Deletes every key under `prefix`: benchmarks leave nothing behind in a shared Redis. */
export async function removePrefix(redis: Pick<Redis, 'scan' | 'unlink'>, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
