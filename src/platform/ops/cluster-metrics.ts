import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/**
 * `/metrics` over several worker processes (AUTHZ_WORKERS): whichever worker a scrape reaches asks
 * the primary, the primary collects every serving worker's registry as JSON and sums them with
 * prom-client's `AggregatorRegistry.aggregate`, and the worker answers with the total. A scraper
 * then sees one instance, as with a single process.
 *
 * The primary asks only the workers it has seen ready rather than using
 * `AggregatorRegistry.clusterMetrics()`, which asks every forked worker: one still loading its
 * modules (during a rolling restart or a replacement) has no listener yet, and every scrape in that
 * window would wait for prom-client's 5 s timeout and fail.
 */

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

/** Worker → primary: a scrape arrived; primary → worker: the total (or why there is none). */
interface ScrapeRequest {
  type: 'authz:metrics-scrape';
  id: number;
}
interface ScrapeAnswer {
  type: 'authz:metrics-total';
  id: number;
  text?: string;
  error?: string;
}
/** Primary → worker: send your own registry; worker → primary: here it is. */
interface CollectRequest {
  type: 'authz:metrics-collect';
  id: number;
}
interface CollectAnswer {
  type: 'authz:metrics-own';
  id: number;
  metrics: MetricsJson;
}

const isMessage = <T extends { type: string }>(message: unknown, type: T['type']): message is T =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;

/** Thrown by a worker's scrape when the total could not be had: `/metrics` answers 503. */
export class MetricsUnavailableError extends Error {
  override name = 'MetricsUnavailableError';
}

/**
 * Worker side: answers the primary's collection requests with `registry`, and returns the scrape
 * function `/metrics` uses in place of the registry's own text.
 */
export function workerMetrics(registry: Registry, timeoutMs: number): () => Promise<string> {
  const pending = new Map<number, (answer: ScrapeAnswer) => void>();
  let next = 0;
  process.on('message', (message: unknown) => {
    if (isMessage<CollectRequest>(message, 'authz:metrics-collect')) {
      void registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: 'authz:metrics-own', id: message.id, metrics } satisfies CollectAnswer),
        // An empty contribution would understate the totals; no answer makes the scrape fail instead.
        () => undefined,
      );
    } else if (isMessage<ScrapeAnswer>(message, 'authz:metrics-total')) {
      pending.get(message.id)?.(message);
    }
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new MetricsUnavailableError(`the primary did not total the workers' metrics within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, (answer) => {
        clearTimeout(timer);
        pending.delete(id);
        if (answer.text !== undefined) resolve(answer.text);
        else reject(new MetricsUnavailableError(answer.error ?? 'the workers could not be totalled'));
      });
      if (!process.send?.({ type: 'authz:metrics-scrape', id } satisfies ScrapeRequest)) {
        // send() returns false only when its queue is backed up; the answer may still come.
        if (!process.connected) {
          clearTimeout(timer);
          pending.delete(id);
          reject(new MetricsUnavailableError('the primary process is gone'));
        }
      }
    });
}

/**
 * Primary side: answers a worker's scrape with the sum over `serving()` (the ready workers). A
 * worker that exits while asked drops out of the total, as its counters would have anyway; one
 * that does not answer within `timeoutMs` fails the scrape, so a scraper never records a dip.
 */
export function totalWorkersMetrics(serving: () => Worker[], timeoutMs: number): (from: Worker, message: unknown) => void {
  let next = 0;
  const collect = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const id = next++;
      const waiting = new Set(serving().filter((w) => w.isConnected()));
      const parts: MetricsJson[] = [];
      const listeners = new Map<Worker, { message: (m: unknown) => void; exit: () => void }>();
      const finish = (err?: Error) => {
        clearTimeout(timer);
        for (const [worker, l] of listeners) {
          worker.off('message', l.message);
          worker.off('exit', l.exit);
        }
        if (err) reject(err);
        else resolve(AggregatorRegistry.aggregate(parts).metrics());
      };
      const timer = setTimeout(
        () => finish(new Error(`${waiting.size} worker(s) did not send their metrics within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const done = (worker: Worker) => {
        waiting.delete(worker);
        if (waiting.size === 0) finish();
      };
      for (const worker of waiting) {
        const l = {
          message: (m: unknown) => {
            if (!isMessage<CollectAnswer>(m, 'authz:metrics-own') || m.id !== id) return;
            parts.push(m.metrics);
            done(worker);
          },
          exit: () => done(worker),
        };
        listeners.set(worker, l);
        worker.on('message', l.message);
        worker.once('exit', l.exit);
        worker.send({ type: 'authz:metrics-collect', id } satisfies CollectRequest);
      }
      if (waiting.size === 0) finish();
    });

  return (from, message) => {
    if (!isMessage<ScrapeRequest>(message, 'authz:metrics-scrape')) return;
    const reply = (answer: Omit<ScrapeAnswer, 'type' | 'id'>) => {
      if (from.isConnected()) from.send({ type: 'authz:metrics-total', id: message.id, ...answer } satisfies ScrapeAnswer);
    };
    collect().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: (err as Error).message }),
    );
  };
}
