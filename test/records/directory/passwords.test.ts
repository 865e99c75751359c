import { burnPasswordCheck, hashParameters, hashPassword, needsRehash, verifyPassword } from '../../../src/records/directory/passwords.js';

const OWASP = { memoryKiB: 19_456, timeCost: 2, parallelism: 1 };

describe('passwords', () => {
  test('argon2id with the policy parameters carried in the encoded hash', async () => {
    const hash = await hashPassword('correct horse', OWASP);
    expect(hash).toMatch(/^\$argon2id\$v=19\$/);
    expect(hashParameters(hash)).toEqual({ type: 'argon2id', version: 19, memoryKiB: 19_456, timeCost: 2, parallelism: 1 });
    expect(await verifyPassword(hash, 'correct horse')).toBe(true);
    expect(await verifyPassword(hash, 'correct horse ')).toBe(false);
    expect(await hashPassword('correct horse', OWASP)).not.toBe(hash);
  });

  test('a malformed hash verifies nothing instead of throwing', async () => {
    expect(await verifyPassword('not-a-hash', 'x')).toBe(false);
    expect(await verifyPassword('', '')).toBe(false);
  });

  test('needsRehash only when the hash is weaker than the policy', async () => {
    const hash = await hashPassword('pw', OWASP);
    expect(needsRehash(hash, OWASP)).toBe(false);
    expect(needsRehash(hash, { ...OWASP, memoryKiB: 47_104 })).toBe(true);
    expect(needsRehash(hash, { ...OWASP, timeCost: 3 })).toBe(true);
    expect(needsRehash(hash, { ...OWASP, parallelism: 2 })).toBe(true);
    const stronger = await hashPassword('pw', { memoryKiB: 20_000, timeCost: 3, parallelism: 1 });
    expect(needsRehash(stronger, OWASP)).toBe(false);
    expect(needsRehash('$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA', OWASP)).toBe(true);
    expect(needsRehash('$2b$10$abcdefghijklmnopqrstuv', OWASP)).toBe(true);
  });

  test('burnPasswordCheck costs about as much as a real verification', async () => {
    const hash = await hashPassword('pw', OWASP);
    await burnPasswordCheck('warm-up', OWASP);
    // Medians of interleaved runs, so a busy CI core slows both sides alike; the bounds only catch
    // a burn that skips the hash (orders of magnitude faster) or does far more work.
    const real: number[] = [];
    const burned: number[] = [];
    const once = async (f: () => Promise<unknown>) => {
      const start = process.hrtime.bigint();
      await f();
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    for (let i = 0; i < 7; i++) {
      real.push(await once(() => verifyPassword(hash, 'wrong')));
      burned.push(await once(() => burnPasswordCheck('wrong', OWASP)));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    expect(median(burned)).toBeGreaterThan(median(real) * 0.4);
    expect(median(burned)).toBeLessThan(median(real) * 2.5);
  });
});
