import { isIPv6 } from 'node:net';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClient } from '../../../platform/redis/connection.js';
import type { Keyspace } from '../../../platform/redis/keyspace.js';

/** Each time a network overruns its budget it waits twice as long as the time before, up to this. */
export const MAX_BACKOFF_SECONDS = 3600;
const FIRST_BACKOFF_SECONDS = 60;
/** How long overruns are remembered for the doubling. */
const STRIKE_MEMORY_SECONDS = 24 * 3600;

export type IpDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * One IPv6 host usually controls a whole /64, so limits apply to that prefix; IPv4 (also when
 * written IPv4-mapped) is limited per address.
 */
export function networkOf(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

/**
 * Sign-in attempts per network per minute, whatever the account, stored in Redis so every
 * instance shares the budget. Overrunning it blocks the network with exponential back-off.
 */
export class IpRateLimiter {
  private readonly attempts: RateLimiterRedis;
  private readonly strikes: RateLimiterRedis;

  constructor(
    redis: RedisClient,
    keyspace: Keyspace,
    private readonly perMinute: number,
  ) {
    this.attempts = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: keyspace.rateLimit('login-ip'),
      points: perMinute,
      duration: 60,
    });
    this.strikes = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: keyspace.rateLimit('login-ip-strikes'),
      points: Number.MAX_SAFE_INTEGER,
      duration: STRIKE_MEMORY_SECONDS,
    });
  }

  async consume(ip: string): Promise<IpDecision> {
    const network = networkOf(ip);
    try {
      await this.attempts.consume(network);
      return { allowed: true };
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      // Exactly one request sees the first overrun (INCRBY is atomic): it sets the back-off.
      if (err.consumedPoints !== this.perMinute + 1)
        return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(err.msBeforeNext / 1000)) };
      const { consumedPoints: strike } = await this.strikes.penalty(network);
      const seconds = Math.min(FIRST_BACKOFF_SECONDS * 2 ** Math.min(strike - 1, 16), MAX_BACKOFF_SECONDS);
      await this.attempts.block(network, seconds);
      return { allowed: false, retryAfterSeconds: seconds };
    }
  }
}
