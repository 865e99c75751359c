import { mkdir, open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config/schema.js';
import type { Metrics } from '../../platform/ops/metrics.js';
import { isChainName, type ChainName } from './chain.js';

/**
 * The anchor: every signed checkpoint is also written outside Redis, so someone who can rewrite
 * Redis (entries, head, checkpoints) cannot rewrite what the checkpoints already pinned.
 *
 * - A file, `checkpoints.<prefix>.<host>.jsonl` in the anchor directory, one JSON line per
 *   checkpoint, opened with O_APPEND and fsync'd after each line. The directory is meant to live on
 *   storage the server may only append to (chattr +a, a WORM bucket mount) and to be shipped to a
 *   SIEM; docs/security/audit-anchoring.md. One file per host, because O_APPEND is only atomic
 *   between writers of one machine.
 * - Optionally an HTTP collector (a SIEM) that each line is POSTed to.
 *
 * Writing never blocks the request path: checkpoints are signed after the append that reached them
 * has answered its callers, and the anchor queues their lines. Failures are logged and counted
 * (audit_anchor_writes_total{result="error"}); the checkpoint in Redis is still written.
 */

export interface AnchorLine {
  chain: ChainName;
  seq: number;
  hash: string;
  iat: number;
  reason: string;
  /** The signed checkpoint; verification trusts only this. */
  jws: string;
}

export interface CheckpointAnchor {
  /** Queues a checkpoint's line; returns at once. */
  record(line: AnchorLine): void;
  /** Resolves once every queued line was written (or failed and was logged). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** At most this many lines wait for a slow HTTP collector; older ones are dropped (and logged). */
const MAX_HTTP_QUEUE = 1000;

/** The directory the server anchors to: the configured one, or in development <dataDir>/audit-anchor. */
export function anchorDirOf(config: Config): string | undefined {
  return config.audit.anchorDir ?? (config.mode === 'development' ? join(config.dataDir, 'audit-anchor') : undefined);
}

/** A file-name-safe form of the Redis prefix: several deployments may share one directory. */
function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_') || 'default';
}

export function anchorFileName(prefix: string, host = hostname()): string {
  return `checkpoints.${slug(prefix)}.${slug(host)}.jsonl`;
}

interface Sink {
  name: 'file' | 'http';
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

class FileSink implements Sink {
  readonly name = 'file';
  private handle: FileHandle | undefined;

  constructor(
    private readonly dir: string,
    private readonly file: string,
  ) {}

  async write(text: string): Promise<void> {
    if (!this.handle) {
      await mkdir(this.dir, { recursive: true, mode: 0o750 });
      // 'a' is O_WRONLY|O_CREAT|O_APPEND: the only open an append-only (chattr +a) file allows for writing.
      this.handle = await open(join(this.dir, this.file), 'a', 0o640);
    }
    try {
      await this.handle.write(text);
      await this.handle.sync();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => {});
  }
}

class HttpSink implements Sink {
  readonly name = 'http';
  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  async write(text: string): Promise<void> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    await res.body?.cancel().catch(() => {});
    if (!res.ok) throw new Error(`the collector answered HTTP ${res.status}`);
  }

  async close(): Promise<void> {}
}

/** One queue per sink: a slow collector never holds up the file. */
class SinkQueue {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly sink: Sink,
    private readonly logger: Logger,
    private readonly metrics: Metrics | undefined,
    private readonly limit: number,
  ) {}

  push(line: AnchorLine, text: string): void {
    if (this.waiting >= this.limit) {
      this.failed(line, new Error(`more than ${this.limit} checkpoints are waiting for this sink`));
      return;
    }
    this.waiting++;
    this.tail = this.tail.then(async () => {
      try {
        await this.sink.write(text);
        this.metrics?.auditAnchorWrites.inc({ sink: this.sink.name, result: 'ok' });
      } catch (err) {
        this.failed(line, err);
      } finally {
        this.waiting--;
      }
    });
  }

  private failed(line: AnchorLine, err: unknown): void {
    this.metrics?.auditAnchorWrites.inc({ sink: this.sink.name, result: 'error' });
    this.logger.error(
      { err: { message: (err as Error).message }, sink: this.sink.name, chain: line.chain, seq: line.seq },
      'audit checkpoint could not be written to the anchor',
    );
  }

  flush(): Promise<void> {
    return this.tail;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.sink.close();
  }
}

export interface AnchorDeps {
  config: Config;
  logger: Logger;
  metrics?: Metrics | undefined;
}

/** The anchor the configuration asks for; undefined when there is none (development without a data dir is not a case). */
export function createAnchor({ config, logger, metrics }: AnchorDeps): CheckpointAnchor | undefined {
  const queues: SinkQueue[] = [];
  const dir = anchorDirOf(config);
  if (dir) queues.push(new SinkQueue(new FileSink(dir, anchorFileName(config.redis.prefix)), logger, metrics, Number.POSITIVE_INFINITY));
  if (config.audit.anchorUrl)
    queues.push(new SinkQueue(new HttpSink(config.audit.anchorUrl, config.audit.anchorTimeoutMs), logger, metrics, MAX_HTTP_QUEUE));
  if (!queues.length) return undefined;
  return {
    record(line) {
      const text = `${JSON.stringify(line)}\n`;
      for (const q of queues) q.push(line, text);
    },
    async flush() {
      await Promise.all(queues.map((q) => q.flush()));
    },
    async close() {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

export class AnchorReadError extends Error {
  override name = 'AnchorReadError';
}

/**
 * The lines of an anchor: a file, or every anchor file of this deployment (its Redis prefix) in a
 * directory. A line that is not an anchor line fails the read: an append-only file only ever
 * gains whole lines, so anything else means it was written to by something else.
 */
export async function readAnchor(path: string, prefix: string): Promise<AnchorLine[]> {
  let files: string[];
  try {
    if ((await stat(path)).isDirectory()) {
      const start = `checkpoints.${slug(prefix)}.`;
      files = (await readdir(path))
        .filter((n) => n.startsWith(start) && n.endsWith('.jsonl'))
        .sort()
        .map((n) => join(path, n));
      if (!files.length) throw new AnchorReadError(`${path} holds no anchor file of this deployment (${start}*.jsonl)`);
    } else {
      files = [path];
    }
  } catch (err) {
    if (err instanceof AnchorReadError) throw err;
    throw new AnchorReadError(`cannot read the anchor ${path}: ${(err as Error).message}`);
  }
  const out: AnchorLine[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      throw new AnchorReadError(`cannot read the anchor ${file}: ${(err as Error).message}`);
    });
    text.split('\n').forEach((raw, i) => {
      if (!raw.trim()) return;
      let line: Partial<AnchorLine>;
      try {
        line = JSON.parse(raw) as Partial<AnchorLine>;
      } catch {
        throw new AnchorReadError(`${file} line ${i + 1} is not JSON`);
      }
      if (typeof line.jws !== 'string' || typeof line.seq !== 'number' || !isChainName(line.chain)) {
        throw new AnchorReadError(`${file} line ${i + 1} is not an anchored checkpoint`);
      }
      out.push(line as AnchorLine);
    });
  }
  return out;
}
