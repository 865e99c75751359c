import type { RedisOptions } from 'ioredis';
import { connectRedis, createRedis, RECONNECT_MAX_MS } from '../../../src/platform/redis/connection.js';
import { startSentinelGroup, type SentinelGroup } from '../../support/redis-sentinel.js';

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

/**
 * ioredis ends a client for good when a connection attempt through the sentinels is cancelled
 * half-way, which is what its failover detector does on +switch-master while the client is
 * reconnecting after the master died: both server instances then answered 503 until restarted
 * (the chaos suite's "sentinel master SIGKILL", in CI). The same cancellation is made here by hand,
 * against a real Sentinel group.
 */
describe('a connection attempt through the sentinels cancelled half-way', () => {
  let group: SentinelGroup;
  beforeAll(async () => {
    group = await startSentinelGroup({ name: 'cancel' });
  }, 60_000);
  afterAll(async () => {
    await group?.stop();
  });

  test('the client connects again; a client closed on purpose does not', async () => {
    const client = createRedis({
      prefix: 'r:',
      sentinels: group.sentinels.split(',').map((hp) => ({ host: hp.split(':')[0]!, port: Number(hp.split(':')[1]) })),
      sentinelName: group.name,
    });
    client.on('error', () => {});
    try {
      await connectRedis(client);
      // A reconnection starts, and the attempt in progress is cancelled as the failover detector
      // does (connector.disconnect, once the connector has begun resolving the master).
      const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
      client.once('connecting', () =>
        process.nextTick(() => (client as unknown as { connector: { disconnect(): void } }).connector.disconnect()),
      );
      client.disconnect(true);
      await ended;
      const deadline = Date.now() + 5_000;
      while (client.status !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(client.status).toBe('ready');
      expect(await client.ping()).toBe('PONG');

      client.disconnect();
      await new Promise((r) => setTimeout(r, RECONNECT_MAX_MS * 3));
      expect(client.status).toBe('end');
    } finally {
      client.disconnect();
    }
  }, 30_000);
});
