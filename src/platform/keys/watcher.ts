import type { KeyStore, LoadedKeys } from './keystore.js';
import type { ProviderJwks } from './provider-jwks.js';

export interface KeyWatcherOptions {
  /** Version the caller's provider was built from (LoadedKeys.version); without it the first poll only sets the baseline. */
  since?: number;
  /** Redis outages, undecryptable keys and onChange failures land here; the watcher keeps polling. */
  onError?: (err: unknown) => void;
}

/**
 * Polls the key version (one GET) and hands fresh keys to `onChange` when another instance or the
 * CLI changed them, so the server can rebuild its provider without a restart. A failed reload is
 * retried on the next tick: the version is only marked as seen once `onChange` succeeded.
 * Returns a function that stops the watcher.
 */
export function startKeyWatcher(
  store: Pick<KeyStore, 'version' | 'load'>,
  intervalMs: number,
  onChange: (jwks: ProviderJwks, loaded: LoadedKeys) => void | Promise<void>,
  options: KeyWatcherOptions = {},
): () => void {
  let seen = options.since;
  let busy = false;
  let stopped = false;

  const tick = async (): Promise<void> => {
    if (busy || stopped) return;
    busy = true;
    try {
      const version = await store.version();
      if (seen === undefined) {
        seen = version;
        return;
      }
      if (version === seen) return;
      const fresh = await store.load();
      if (stopped) return;
      await onChange(fresh.jwks, fresh);
      seen = fresh.version;
    } catch (err) {
      if (!stopped) options.onError?.(err);
    } finally {
      busy = false;
    }
  };

  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
