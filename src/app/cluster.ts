import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { totalWorkersMetrics } from '../platform/ops/cluster-metrics.js';

/**
 * AUTHZ_WORKERS > 1: one primary process that serves nothing itself and supervises that many
 * workers, each running the whole server (src/main.ts) on the one port node:cluster shares between
 * them. Each worker is an instance like any other behind a load balancer: it has its own Redis
 * connections, provider, caches and key watcher, and ships and checkpoints through the same leases.
 *
 * Signals to the primary:
 * - SIGTERM, SIGINT: every worker drains and closes as a single process does; the primary exits 0
 *   once all have exited, 1 when one had to be killed after `stopTimeoutMs`.
 * - SIGHUP: rolling restart, one worker at a time: its replacement is started and ready before it
 *   is asked to stop, so the port never lacks a ready worker and no request fails.
 * A worker that dies unexpectedly is replaced after a back-off; when workers keep failing before
 * they are ready, the primary stops with one line on stderr instead of forking forever.
 */

/** Worker → primary: start-up finished, the worker serves. */
const READY = 'authz:ready';
/** Primary → worker: drain and close as on SIGTERM. */
const STOP = 'authz:stop';

/** Start-up failures in a row (no worker got ready in between) after which the primary gives up. */
const MAX_STARTUP_FAILURES = 5;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** Deaths within this window make the next replacement wait longer. */
const BACKOFF_WINDOW_MS = 60_000;
/** How long the primary may take to total the workers' metrics for one scrape. */
const METRICS_TOTAL_TIMEOUT_MS = 2_000;
/** A worker's scrape waits for the primary a little longer than the primary waits for the workers. */
export const METRICS_SCRAPE_TIMEOUT_MS = METRICS_TOTAL_TIMEOUT_MS + 1_000;

const isMessage = (message: unknown, type: string): boolean =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;

/** The worker's side of the protocol; undefined in a single server process. */
export interface ClusterWorker {
  id: number;
  /** `stop` runs when the primary asks this worker to shut down (SIGTERM or a rolling restart). */
  onStopRequest(stop: () => void): void;
  /** Tells the primary that start-up is over and the worker serves. */
  ready(): void;
}

export function clusterWorker(): ClusterWorker | undefined {
  if (!cluster.isWorker || !cluster.worker) return undefined;
  // The primary owns restarts: a SIGHUP sent to the whole process group (a closed terminal, or
  // `kill -HUP -<pgid>`) must not kill every worker at once, which is SIGHUP's default action.
  process.on('SIGHUP', () => undefined);
  return {
    id: cluster.worker.id,
    onStopRequest(stop) {
      process.on('message', (message: unknown) => {
        if (isMessage(message, STOP)) stop();
      });
    },
    ready() {
      process.send?.({ type: READY });
    },
  };
}

/** How a worker ended before it got ready. */
class StartFailure extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: string | null,
  ) {
    super(signal ? `killed by ${signal}` : `exit code ${code}`);
  }
}

interface Slot {
  worker?: Worker;
  /** Replacements and restarts of one slot run one after the other, never side by side. */
  queue: Promise<void>;
}

export interface SupervisorOptions {
  workers: number;
  logger: Logger;
  /** How long one worker's graceful stop may take (its drain and grace, plus a margin) before it is killed. */
  stopTimeoutMs: number;
}

export async function superviseWorkers({ workers, logger, stopTimeoutMs }: SupervisorOptions): Promise<never> {
  const log = logger.child({ role: 'primary' });
  const slots: Slot[] = Array.from({ length: workers }, () => ({ queue: Promise.resolve() }));
  const ready = new Set<Worker>();
  const listening = new Set<Worker>();
  const stopping = new Set<Worker>();
  const deaths: number[] = [];
  let startupFailures = 0;
  let shuttingDown = false;
  let killed = 0;

  const slotOf = (worker: Worker) => slots.find((s) => s.worker === worker);
  const enqueue = (slot: Slot, task: () => Promise<void>): Promise<void> => {
    const run = slot.queue.then(task);
    slot.queue = run.catch(() => undefined);
    return run;
  };

  /** Forks a worker and resolves once it reports ready; rejects with StartFailure if it exits first. */
  const start = (): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      log.info({ worker: worker.id, pid: worker.process.pid }, 'worker started');
      const onMessage = (message: unknown) => {
        if (!isMessage(message, READY)) return;
        worker.off('exit', onExit);
        worker.off('message', onMessage);
        ready.add(worker);
        startupFailures = 0;
        log.info({ worker: worker.id, pid: worker.process.pid }, 'worker ready');
        resolve(worker);
      };
      const onExit = (code: number | null, signal: string | null) => {
        worker.off('message', onMessage);
        reject(new StartFailure(code, signal));
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
    });

  /** Asks a worker to stop gracefully and resolves when it has exited; kills it past `stopTimeoutMs`. */
  const stop = (worker: Worker): Promise<void> =>
    new Promise((resolve) => {
      stopping.add(worker);
      if (worker.isDead()) return resolve();
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      const timer = setTimeout(() => {
        killed++;
        log.error({ worker: worker.id, pid: worker.process.pid, stopTimeoutMs }, 'worker did not stop in time: killed');
        worker.process.kill('SIGKILL');
      }, stopTimeoutMs);
      // A ready worker listens for the request; one still starting up may not yet, and a signal
      // reaches it either way (its SIGTERM handler waits for the port, then shuts down).
      if (ready.has(worker) && worker.isConnected()) worker.send({ type: STOP });
      else worker.process.kill('SIGTERM');
    });

  const fatal = (message: string): void => {
    if (shuttingDown) return;
    console.error(message);
    void shutdown('crash loop', 1);
  };

  const backoffMs = () => {
    const now = Date.now();
    while (deaths.length && deaths[0]! < now - BACKOFF_WINDOW_MS) deaths.shift();
    return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, deaths.length - 1));
  };

  /** Gives an empty slot a new worker, after a back-off that grows while workers keep dying. */
  const refill = (slot: Slot): void => {
    void enqueue(slot, async () => {
      await new Promise((r) => setTimeout(r, backoffMs()));
      if (shuttingDown || slot.worker) return;
      try {
        slot.worker = await start();
      } catch (err) {
        if (shuttingDown) return;
        deaths.push(Date.now());
        startupFailures++;
        log.error({ err: { message: (err as Error).message }, failures: startupFailures }, 'a new worker failed to start');
        if (startupFailures >= MAX_STARTUP_FAILURES) {
          fatal(`workers keep failing at start-up (${startupFailures} in a row, the last: ${(err as Error).message}): stopping`);
        } else {
          refill(slot);
        }
      }
    });
  };

  cluster.on('listening', (worker) => listening.add(worker));
  cluster.on('exit', (worker, code, signal) => {
    const wasReady = ready.delete(worker);
    listening.delete(worker);
    const expected = stopping.delete(worker) || shuttingDown;
    const fields = { worker: worker.id, pid: worker.process.pid, code, signal };
    if (expected) {
      log.info(fields, 'worker exited');
      return;
    }
    // Exits before ready are the business of whoever started the worker (start()'s rejection).
    if (!wasReady) return;
    log.error(fields, 'worker died: replacing it');
    deaths.push(Date.now());
    const slot = slotOf(worker);
    if (slot) {
      slot.worker = undefined;
      refill(slot);
    }
  });
  // A scrape reaching any worker is answered with the total over the workers that listen.
  const onMetricsScrape = totalWorkersMetrics(() => [...listening], METRICS_TOTAL_TIMEOUT_MS);
  cluster.on('message', (worker, message: unknown) => onMetricsScrape(worker, message));

  let restarting = false;
  let restartAgain = false;
  const rollingRestart = async (): Promise<void> => {
    if (restarting) {
      // Whatever changed since the restart began (a clients file, a release) is picked up too.
      restartAgain = true;
      return;
    }
    restarting = true;
    log.info({ workers }, 'rolling restart: replacing one worker at a time');
    try {
      for (const slot of slots) {
        if (shuttingDown) return;
        await enqueue(slot, async () => {
          if (shuttingDown) return;
          const fresh = await start();
          const old = slot.worker;
          slot.worker = fresh;
          if (old) await stop(old);
        });
      }
      log.info({ workers }, 'rolling restart done');
    } catch (err) {
      if (shuttingDown) return;
      deaths.push(Date.now());
      log.error(
        { err: { message: (err as Error).message } },
        'rolling restart stopped: a new worker failed to start; the remaining old workers keep serving',
      );
    } finally {
      restarting = false;
      if (restartAgain && !shuttingDown) {
        restartAgain = false;
        void rollingRestart();
      }
    }
  };

  const shutdown = async (reason: string, exitCode = 0): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal: reason }, 'shutting down: stopping every worker');
    await Promise.all(Object.values(cluster.workers ?? {}).flatMap((w) => (w ? [stop(w)] : [])));
    if (killed) console.error(`${killed} worker(s) did not stop within ${stopTimeoutMs} ms and were killed`);
    log.info('stopped');
    process.exit(killed ? 1 : exitCode);
  };

  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  let started = false;
  process.on('SIGHUP', () => {
    if (started) void rollingRestart();
    else restartAgain = true;
  });

  // The first worker starts alone: the one-time start-up work (signing and cookie keys made on a
  // new store, the clients file, demo data, the service clients, the audit database's schema) is
  // done by it before any other worker starts, as in a rolling deployment of single processes.
  // The others, started together next, find all of it in place and their same steps change nothing.
  // When the first one fails it has said why on stderr (a configuration error, Redis unreachable):
  // the primary exits with its code instead of retrying what an operator has to fix.
  try {
    slots[0]!.worker = await start();
  } catch (err) {
    if (!shuttingDown) process.exit((err as StartFailure).code || 1);
    return new Promise<never>(() => undefined);
  }
  await Promise.all(
    slots.slice(1).map((slot) =>
      enqueue(slot, async () => {
        if (!shuttingDown) slot.worker = await start();
      }).catch((err: unknown) => {
        if (shuttingDown) return;
        deaths.push(Date.now());
        startupFailures++;
        log.error({ err: { message: (err as Error).message } }, 'a worker failed to start');
        refill(slot);
      }),
    ),
  );
  started = true;
  if (!shuttingDown) log.info({ workers }, 'all workers ready');
  if (restartAgain && !shuttingDown) {
    restartAgain = false;
    void rollingRestart();
  }
  // The workers keep the primary alive; it exits from shutdown().
  return new Promise<never>(() => undefined);
}
