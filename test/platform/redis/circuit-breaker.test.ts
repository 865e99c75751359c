import { connectRedis, createRedis, type RedisClient } from '../../../src/platform/redis/connection.js';
import { circuitBreakerFor, type RedisCircuitBreaker } from '../../../src/platform/redis/circuit-breaker.js';
import { startRedisServer, type RedisServerHandle } from '../../support/redis-server.js';

/**
 * The breaker must not stand in the way of the client's own reconnection. When Redis restarts, the
 * connection is new and ioredis sends its ready check (INFO) and handshake before it counts as
 * ready; if the open breaker refuses those, the client never becomes ready, the breaker's PING
 * probe (which waits for "ready") never runs, and the instance answers 503 until it is restarted.
 * Found by the chaos suite (npm run chaos: Redis SIGKILL under load).
 */
describe('circuit breaker across a Redis restart', () => {
  let redis: RedisServerHandle;
  let client: RedisClient;
  let breaker: RedisCircuitBreaker;
  const changes: string[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    client = createRedis({ url: redis.url, prefix: 'cb:' });
    client.on('error', () => {});
    breaker = circuitBreakerFor(client, { commandTimeoutMs: 500, onChange: (state) => changes.push(state) });
    await connectRedis(client);
  });

  afterAll(async () => {
    breaker.stop();
    client.disconnect();
    await redis.destroy();
  });

  test('a command during the outage opens it; once Redis is back the client reconnects and it closes', async () => {
    expect(await client.set('k', 'v')).toBe('OK');
    await redis.stop();
    // Commands keep coming while Redis is gone (a server under load): the breaker opens.
    const deadline = Date.now() + 5_000;
    while (breaker.available() || !changes.includes('open')) {
      await client.get('k').catch(() => undefined);
      if (Date.now() > deadline) throw new Error('the breaker did not open');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    const restarted = Date.now();
    while (!breaker.available()) {
      // Still under load while it recovers: refused at once, never sent.
      await client.get('k').catch(() => undefined);
      if (Date.now() - restarted > 10_000) throw new Error(`not available 10 s after Redis came back (client status ${client.status})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(Date.now() - restarted).toBeLessThan(5_000);
    expect(changes).toEqual(['open', 'closed']);
    expect(await client.set('k', 'w')).toBe('OK');
  }, 30_000);
});
