import type { Redis } from 'ioredis';
import type { RedisClient } from '../../src/platform/redis/connection.js';

/**
 * The commands a client sent to Redis while `work` ran whose arguments mention `marker`, by name
 * (MONITOR on a connection of its own). Commands run by a script are left out (MONITOR shows them
 * with the source 'lua'): the point is how many commands, round trips and scripts a step costs.
 */
export async function commandsSent(redis: RedisClient, marker: string, work: () => unknown): Promise<string[]> {
  const sent: string[] = [];
  const monitor = await (redis as Redis).monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && args.some((a) => a.includes(marker))) sent.push(String(args[0]).toLowerCase());
  });
  try {
    await work();
    // MONITOR's feed trails the answers by a moment.
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    await monitor.disconnect();
  }
  return sent;
}
