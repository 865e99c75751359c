import argon2 from 'argon2';

/**
 * User passwords: argon2id with parameters from configuration (`config.passwords`, at least
 * OWASP's minimum of 19 MiB, t=2, p=1). The encoded hash carries its own parameters, so hashes
 * made under older settings still verify and are upgraded on the next successful sign-in.
 */

export interface PasswordPolicy {
  memoryKiB: number;
  timeCost: number;
  parallelism: number;
}

const ARGON2ID = 2;

export async function hashPassword(plain: string, policy: PasswordPolicy): Promise<string> {
  return argon2.hash(plain, {
    type: ARGON2ID,
    memoryCost: policy.memoryKiB,
    timeCost: policy.timeCost,
    parallelism: policy.parallelism,
  });
}

/** False for a wrong password and for anything that is not a valid argon2 hash. */
export async function verifyPassword(hash: string, plain: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, plain);
  } catch {
    return false;
  }
}

const ENCODED = /^\$(argon2(?:id|i|d))\$v=(\d+)\$([a-z]=\d+(?:,[a-z]=\d+)*)\$/;

export interface HashParameters {
  type: string;
  version: number;
  memoryKiB: number;
  timeCost: number;
  parallelism: number;
}

/** The parameters an encoded hash carries (`$argon2id$v=19$m=19456,p=1,t=2$…`, in any order). */
export function hashParameters(hash: string): HashParameters | undefined {
  const m = ENCODED.exec(hash);
  if (!m) return undefined;
  const params = Object.fromEntries(m[3]!.split(',').map((kv) => [kv[0], Number(kv.slice(2))]));
  if (!params.m || !params.t || !params.p) return undefined;
  return { type: m[1]!, version: Number(m[2]), memoryKiB: params.m, timeCost: params.t, parallelism: params.p };
}

/**
 * True when the hash is weaker than the policy asks: not argon2id, an older argon2 version, or
 * memory, time or parallelism below the configured values. Lowering the configuration never
 * forces a rehash (argon2's own `needsRehash` would, on any difference).
 */
export function needsRehash(hash: string, policy: PasswordPolicy): boolean {
  const p = hashParameters(hash);
  if (!p) return true;
  return (
    p.type !== 'argon2id' ||
    p.version < 0x13 ||
    p.memoryKiB < policy.memoryKiB ||
    p.timeCost < policy.timeCost ||
    p.parallelism < policy.parallelism
  );
}

const dummyHashes = new Map<string, Promise<string>>();

/**
 * Spends the time a real verification would, for sign-ins with an unknown user name (or a user
 * without a password), so response times do not reveal which names exist. The dummy hash is made
 * once per policy with the same parameters real hashes use.
 */
export async function burnPasswordCheck(plain: string, policy: PasswordPolicy): Promise<void> {
  const key = `${policy.memoryKiB}:${policy.timeCost}:${policy.parallelism}`;
  let dummy = dummyHashes.get(key);
  if (!dummy) {
    dummy = hashPassword(`unused-${Math.random()}`, policy);
    dummyHashes.set(key, dummy);
    dummy.catch(() => dummyHashes.delete(key));
  }
  await verifyPassword(await dummy, plain);
}
