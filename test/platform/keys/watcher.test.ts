import { setTimeout as sleep } from 'node:timers/promises';
import { startKeyWatcher } from '../../../src/platform/keys/watcher.js';
import type { ProviderJwks } from '../../../src/platform/keys/provider-jwks.js';
import { freshKeyspace, Instances } from './support.js';

const instances = new Instances();
afterAll(() => instances.closeAll());

const INTERVAL = 20;

async function waitFor<T>(read: () => T | undefined, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(INTERVAL);
  }
}

describe('key watcher', () => {
  test('an instance notices a rotation done by another instance and gets the new keys', async () => {
    const keyspace = freshKeyspace();
    const a = await instances.store(keyspace);
    const b = await instances.store(keyspace);
    await a.ensureKeys();
    const startB = await b.ensureKeys();

    const seen: ProviderJwks[] = [];
    const stop = startKeyWatcher(b, INTERVAL, (jwks) => void seen.push(jwks), { since: startB.version });
    try {
      await sleep(INTERVAL * 4);
      expect(seen).toHaveLength(0);

      const next = await a.introduce('EC');
      const jwks = await waitFor(() => seen[0]);
      expect(jwks.keys.map((k) => k.kid)).toContain(next.kid);

      await a.promote(next.kid);
      const promoted = await waitFor(() => seen[1]);
      expect(promoted.keys.find((k) => k.kid === next.kid)!.key_ops).toBeUndefined();
      expect(seen).toHaveLength(2);
    } finally {
      stop();
    }

    await a.introduce('RSA');
    await sleep(INTERVAL * 5);
    expect(seen).toHaveLength(2);
  });

  test('a change between loading keys and starting the watcher is not missed when `since` is given', async () => {
    const keyspace = freshKeyspace();
    const a = await instances.store(keyspace);
    const { version } = await a.ensureKeys();
    await a.introduce('RSA');

    let calls = 0;
    const stop = startKeyWatcher(a, INTERVAL, () => void calls++, { since: version });
    try {
      await waitFor(() => (calls > 0 ? calls : undefined));
    } finally {
      stop();
    }
  });

  test('a failed reload is reported and retried on the next tick', async () => {
    const keyspace = freshKeyspace();
    const a = await instances.store(keyspace);
    const { version } = await a.ensureKeys();

    const errors: unknown[] = [];
    let attempts = 0;
    let applied: number | undefined;
    const stop = startKeyWatcher(
      a,
      INTERVAL,
      (_jwks, loaded) => {
        attempts++;
        if (attempts === 1) throw new Error('provider rebuild failed');
        applied = loaded.version;
      },
      { since: version, onError: (err) => errors.push(err) },
    );
    try {
      await a.introduce('RSA');
      expect(await waitFor(() => applied)).toBe(version + 1);
      expect(errors).toEqual([new Error('provider rebuild failed')]);
      await sleep(INTERVAL * 4);
      expect(attempts).toBe(2);
    } finally {
      stop();
    }
  });
});
