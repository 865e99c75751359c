import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Form tokens bound to one interaction: an HMAC of its uid under the cookie keys, so no state is
 * stored and every instance can check them. The first key signs; all verify (keys rotate by
 * prepending, like the cookies they sign).
 */
export class InteractionCsrf {
  constructor(private readonly keys: readonly string[]) {
    if (!keys.length) throw new Error('InteractionCsrf needs at least one key');
  }

  token(uid: string): string {
    return InteractionCsrf.mac(this.keys[0]!, uid);
  }

  verify(uid: string, presented: unknown): boolean {
    if (typeof presented !== 'string' || !presented) return false;
    const given = Buffer.from(presented);
    return this.keys.some((key) => {
      const expected = Buffer.from(InteractionCsrf.mac(key, uid));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
  }

  private static mac(key: string, uid: string): string {
    return createHmac('sha256', key).update(`smart-authz/interaction-form\0${uid}`).digest('base64url');
  }
}
