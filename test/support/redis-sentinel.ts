import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freeLoopbackPort } from '../../src/platform/ops/local-process.js';

/**
 * A real Sentinel group on loopback: one master, one replica and three sentinels (quorum 2), each
 * a redis-server process on a free port with its own temp dir. `stop()` kills every process by
 * its pid and removes the dirs; call it in `afterAll` (it is safe to call twice, and after a
 * failed start the group stops itself).
 */

export interface SentinelGroup {
  name: string;
  /** `host:port` of each sentinel, as AUTHZ_REDIS_SENTINELS takes them. */
  sentinels: string;
  sentinelPorts: number[];
  /** The two data nodes; which one is master changes on failover. */
  nodePorts: number[];
  /** The master's port as the sentinels currently report it. */
  masterPort(): Promise<number>;
  /** `SENTINEL FAILOVER <name>` on the first sentinel; resolves once the sentinels report the new master. */
  failover(timeoutMs?: number): Promise<{ from: number; to: number }>;
  /** A plain client to one node (callers disconnect it). */
  node(port: number): Redis;
  /** SIGKILLs the data node on `port` (an unplanned failure) and waits for it to exit. */
  kill(port: number): Promise<void>;
  /**
   * Starts the data node on `port` again (a supervisor's restart): with the arguments it first
   * had, except that it is a replica of `replicaOf` if given and otherwise starts as a master.
   */
  restart(port: number, opts?: { replicaOf?: number }): Promise<void>;
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  name?: string;
  /** Extra redis-server arguments for every data node, e.g. ['--min-replicas-to-write', '1']. */
  nodeArgs?: string[];
  /** Replicas of the first master (default 1). */
  replicas?: number;
  /** `sentinel down-after-milliseconds` (default 2000): how long a silent master takes to count as down. */
  downAfterMs?: number;
}

const HOST = '127.0.0.1';

function plainClient(port: number): Redis {
  const client = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: true,
  });
  client.on('error', () => {});
  return client;
}

async function untilTrue(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ask<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = plainClient(port);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

/** `SENTINEL MASTER` answers a flat field/value list. */
function fields(flat: unknown): Record<string, string> {
  const list = flat as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

export async function startSentinelGroup(opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const name = opts.name ?? 'authz-ha';
  const procs: ChildProcess[] = [];
  const dirs: string[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return resolve();
            p.once('exit', () => resolve());
            process.kill(p.pid, 'SIGKILL');
          }),
      ),
    );
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };

  const launch = (args: string[]): ChildProcess => {
    const p = spawn('redis-server', args, { stdio: 'ignore' });
    p.on('error', () => {});
    procs.push(p);
    return p;
  };
  /** The data nodes by port: their process now and the arguments to start them again. */
  const dataNodes = new Map<number, { proc: ChildProcess; args: string[] }>();

  try {
    const nodePorts: number[] = [];
    for (let i = 0; i <= (opts.replicas ?? 1); i++) nodePorts.push(await freeLoopbackPort());
    const [masterPort, ...replicaPorts] = nodePorts as [number, ...number[]];
    for (const port of nodePorts) {
      const dir = mkdtempSync(join(tmpdir(), 'smart-authz-sentinel-node-'));
      dirs.push(dir);
      const args = ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', ...(opts.nodeArgs ?? [])];
      if (port !== masterPort) args.push('--replicaof', HOST, String(masterPort));
      dataNodes.set(port, { proc: launch(args), args });
    }
    for (const replicaPort of replicaPorts) {
      await untilTrue(
        'the replica to sync',
        () => ask(replicaPort, async (c) => /master_link_status:up/.test(await c.info('replication'))),
        15_000,
      );
    }

    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freeLoopbackPort();
      sentinelPorts.push(port);
      const dir = mkdtempSync(join(tmpdir(), 'smart-authz-sentinel-'));
      dirs.push(dir);
      const conf = join(dir, 'sentinel.conf');
      // Sentinel rewrites its config file, so each gets its own. Short timeouts keep the test fast;
      // a planned failover does not depend on down-after-milliseconds.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${dir}`,
          `sentinel monitor ${name} ${HOST} ${masterPort} 2`,
          `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 2000}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      launch([conf, '--sentinel']);
    }
    // Agreed: every sentinel sees the other two and the replica, and the quorum can authorise a failover.
    for (const port of sentinelPorts) {
      await untilTrue(
        `sentinel ${port} to see the group`,
        () =>
          ask(port, async (c) => {
            const master = fields(await c.call('SENTINEL', 'MASTER', name));
            const replicas = (await c.call('SENTINEL', 'REPLICAS', name)) as unknown[];
            const ok = String(await c.call('SENTINEL', 'CKQUORUM', name)).startsWith('OK');
            return (
              master['num-other-sentinels'] === '2' &&
              replicas.filter((r) => fields(r).flags === 'slave').length === replicaPorts.length &&
              ok
            );
          }),
        30_000,
      );
    }

    const masterPortNow = () =>
      ask(sentinelPorts[0]!, async (c) => Number(((await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1]));
    return {
      name,
      sentinels: sentinelPorts.map((p) => `${HOST}:${p}`).join(','),
      sentinelPorts,
      nodePorts,
      masterPort: masterPortNow,
      async failover(timeoutMs = 20_000) {
        const from = await masterPortNow();
        await ask(sentinelPorts[0]!, (c) => c.call('SENTINEL', 'FAILOVER', name));
        await untilTrue('the sentinels to report the new master', async () => (await masterPortNow()) !== from, timeoutMs);
        return { from, to: await masterPortNow() };
      },
      node: (port) => {
        const c = plainClient(port);
        void c.connect().catch(() => {});
        return c;
      },
      async kill(port) {
        const p = dataNodes.get(port)?.proc;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          p.once('exit', () => resolve());
          p.kill('SIGKILL');
        });
      },
      async restart(port, restartOpts = {}) {
        const node = dataNodes.get(port);
        if (!node) throw new Error(`no data node on ${port}`);
        const i = node.args.indexOf('--replicaof');
        const args = i < 0 ? [...node.args] : [...node.args.slice(0, i), ...node.args.slice(i + 3)];
        if (restartOpts.replicaOf) args.push('--replicaof', HOST, String(restartOpts.replicaOf));
        node.proc = launch(args);
        await untilTrue(`node ${port} to answer`, () => ask(port, async (c) => (await c.ping()) === 'PONG'), 10_000);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
