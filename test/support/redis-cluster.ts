import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeLoopbackPort } from '../../src/platform/ops/local-process.js';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  proc: ChildProcess;
}

export interface RedisClusterHandle {
  nodes: ClusterNode[];
  /** `host:port,...` for AUTHZ_REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  /** The port of the master serving `key`'s slot now (asks a live node). */
  masterOf(key: string): Promise<number>;
  /** The live masters serving slots, each with how many live replicas follow it. */
  masters(): Promise<Array<{ port: number; replicas: number }>>;
  /** SIGKILLs the node on `port` and waits for it to exit. */
  kill(port: number): Promise<void>;
  /** Resolves once every live node reports `cluster_state:ok` and every replica is in sync with its master. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Whether this machine can run a cluster (Debian: redis-server and redis-tools). */
export function clusterToolsAvailable(): boolean {
  return ['redis-server', 'redis-cli'].every((bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0);
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 });
  return stdout;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A port whose bus port (chosen separately, `cluster-port`) is free too. */
async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freeLoopbackPort());
  return [...out];
}

/**
 * Starts a private 6-node Redis Cluster (3 masters, 1 replica each) on free loopback ports, data
 * in a temp dir. A short node timeout makes a replica take over about a second after its master
 * dies. Every process is stopped by pid in `stop()`, and on this process's exit as a last resort.
 */
export async function startRedisCluster(opts: { nodeTimeoutMs?: number } = {}): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'smart-authz-cluster-'));
  const ports = await freePorts(12);
  const nodes: ClusterNode[] = [];
  const killAll = () => {
    for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
  };
  process.once('exit', killAll);
  try {
    for (let i = 0; i < 6; i++) {
      const port = ports[i]!;
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const proc = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(ports[i + 6]),
          '--bind',
          '127.0.0.1',
          '--dir',
          nodeDir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(opts.nodeTimeoutMs ?? 1_000),
          '--save',
          '',
          '--appendonly',
          'no',
          '--logfile',
          join(nodeDir, 'redis.log'),
          // Replicas sync at once: a replica that never finished its first sync cannot take over.
          '--repl-diskless-sync-delay',
          '0',
        ],
        { stdio: 'ignore' },
      );
      nodes.push({ port, proc });
    }
    for (const { port } of nodes)
      await waitFor(`node ${port} did not answer PING`, async () => (await cli(port, 'ping')).trim() === 'PONG', 10_000);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      { timeout: 30_000 },
    );
  } catch (err) {
    killAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const live = () => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  const handle: RedisClusterHandle = {
    nodes,
    nodesEnv: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    async masterOf(key) {
      const slot = Number((await cli(live()[0]!.port, 'cluster', 'keyslot', key)).trim());
      // Each live master says in CLUSTER NODES which slots it serves itself.
      for (const n of live()) {
        const myself = (await cli(n.port, 'cluster', 'nodes').catch(() => '')).split('\n').find((l) => l.includes('myself,master'));
        if (myself && ownsSlot(myself, slot)) return n.port;
      }
      throw new Error(`redis cluster: no live master serves slot ${slot}`);
    },
    async masters() {
      const lines = (await cli(live()[0]!.port, 'cluster', 'nodes'))
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' '));
      // id addr flags master-id ping pong epoch link slots...
      const ok = (l: string[]) => !/fail|noaddr/.test(l[2]!) && l[7] === 'connected';
      return lines
        .filter((l) => ok(l) && l[2]!.includes('master') && l.length > 8)
        .map((l) => ({ port: Number(/:(\d+)@/.exec(l[1]!)![1]), replicas: lines.filter((r) => ok(r) && r[3] === l[0]).length }));
    },
    async kill(port) {
      const node = nodes.find((n) => n.port === port);
      if (!node || node.proc.exitCode !== null || node.proc.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        node.proc.once('exit', () => resolve());
        node.proc.kill('SIGKILL');
      });
    },
    async waitUntilOk(timeoutMs = 20_000) {
      await waitFor(
        'cluster_state:ok not reached',
        async () => {
          for (const n of live()) {
            if (!(await cli(n.port, 'cluster', 'info')).includes('cluster_state:ok')) return false;
            const replication = await cli(n.port, 'info', 'replication');
            if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
          }
          return true;
        },
        timeoutMs,
      );
    },
    async stop() {
      process.removeListener('exit', killAll);
      await Promise.all(nodes.map((n) => handle.kill(n.port)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await handle.waitUntilOk();
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

/** Whether a `CLUSTER NODES` line lists `slot` among its ranges (`0-5460 5462 ...`). */
function ownsSlot(line: string, slot: number): boolean {
  return line
    .split(' ')
    .slice(8)
    .some((range) => {
      const [a, b] = range.split('-').map(Number);
      return b === undefined ? a === slot : slot >= a! && slot <= b;
    });
}
