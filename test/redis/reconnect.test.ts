import type { RedisOptions } from 'ioredis';
import { createRedis, RECONNECT_MAX_MS } from '../../src/redis/connection.js';

/**
 * How long the client waits between reconnection attempts bounds how soon it serves again once
 * Redis is back. With Sentinel, the attempts made before the sentinels name the new master fail;
 * a 2 s cap made every failover up to 2 s longer than Sentinel's own (the chaos suite's
 * "sentinel master SIGKILL" timeline). The end-to-end effect is measured by `npm run chaos`.
 */
describe('reconnection back-off', () => {
  const settings = {
    single: { prefix: 'r:', url: 'redis://127.0.0.1:1' },
    sentinel: { prefix: 'r:', sentinels: [{ host: '127.0.0.1', port: 1 }], sentinelName: 'm' },
  };
  for (const [kind, s] of Object.entries(settings)) {
    test(`${kind}: attempts come at most ${RECONNECT_MAX_MS} ms apart, the first ones sooner`, () => {
      const client = createRedis(s);
      const retry = (client.options as RedisOptions).retryStrategy!;
      const delays = Array.from({ length: 30 }, (_, i) => retry(i + 1));
      client.disconnect();
      expect(RECONNECT_MAX_MS).toBeLessThanOrEqual(500);
      expect(Math.max(...(delays as number[]))).toBe(RECONNECT_MAX_MS);
      expect(delays[0]).toBeLessThan(RECONNECT_MAX_MS);
    });
  }
});
