/**
 * Local Redis topologies for tests, started from the `redis-server` binary:
 * a Sentinel set (master, replica, three sentinels) and a 3-master, 3-replica Cluster.
 * Every process gets free ports and its own temp directory; one `stop()` ends them all.
 * Timeouts are tuned down so a failover takes seconds, not the production minute.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { endChild, spawnUntilPing } from './redis-server.js';

const HOST = '127.0.0.1';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One `redis-server` process (data node or sentinel). */
export interface TopologyNode extends HostPort {
  /** `host:port`, as Redis prints addresses. */
  readonly address: string;
  /** False once the process has exited (killed or stopped). */
  readonly alive: boolean;
  /** A new plain client to this node alone (for SUBSCRIBE, MONITOR…); closed by `stop`. */
  connect(): Redis;
  /** `INFO [section]`, parsed into `field → value`. */
  info(section?: string): Promise<Record<string, string>>;
  /** Sends one command on this node's shared inspection client. */
  call(command: string, ...args: Array<string | number>): Promise<unknown>;
  /** SIGKILLs the process: no shutdown, no goodbye to clients or peers. */
  kill(): Promise<void>;
}

export interface SentinelTopologyOptions {
  /** The monitored master's name (`REDIS_SENTINEL_MASTER`). @default 'herald' */
  masterName?: string;
  /** `down-after-milliseconds`: silence before a sentinel thinks the master is down. @default 500 (ms) */
  downAfterMs?: number;
  /**
   * `failover-timeout`: among other things, how long before a failed election is
   * retried (twice this). @default 2000 (ms)
   */
  failoverTimeoutMs?: number;
}

export interface SentinelTopology {
  readonly masterName: string;
  /** The sentinels' addresses, as `REDIS_SENTINELS` lists them. */
  readonly sentinels: readonly HostPort[];
  readonly sentinelNodes: readonly TopologyNode[];
  /** The data nodes, in start order: the first master, then its replica. */
  readonly dataNodes: readonly TopologyNode[];
  /** The data node the first live sentinel names as master. */
  master(): Promise<TopologyNode>;
  /** SIGKILLs the current master; resolves with it (pass it to `waitForPromotion`). */
  killMaster(): Promise<TopologyNode>;
  /**
   * Resolves with the new master once every live sentinel names a node other than
   * `killed` as master (each has published `+switch-master`). Rejects after `timeoutMs`.
   */
  waitForPromotion(killed: TopologyNode, timeoutMs?: number): Promise<TopologyNode>;
  stop(): Promise<void>;
}

/** Master + replica + 3 sentinels (quorum 2), ready: each sentinel knows the replica and both peers. */
export async function startSentinelTopology(options: SentinelTopologyOptions = {}): Promise<SentinelTopology> {
  const masterName = options.masterName ?? 'herald';
  const downAfterMs = options.downAfterMs ?? 500;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 2000;
  const started: LocalRedis[] = [];
  try {
    const master = await LocalRedis.start('master', started, ({ port }, dir) => dataNodeArgs(port, dir));
    const replica = await LocalRedis.start('replica', started, ({ port }, dir) => [
      ...dataNodeArgs(port, dir),
      '--replicaof',
      HOST,
      String(master.port),
    ]);
    // Sentinels learn replicas from the master's INFO, refreshed every 10 s: start them
    // only once the master lists the replica, so their first INFO already shows it.
    await waitUntil('the replica to finish its first sync', 10_000, async () => {
      const replication = await master.info('replication');
      return replication['slave0']?.includes('state=online') === true;
    });
    const sentinelNodes: LocalRedis[] = [];
    for (let i = 0; i < 3; i++) {
      sentinelNodes.push(
        await LocalRedis.start(`sentinel-${i}`, started, ({ port }, dir) => {
          const file = join(dir, 'sentinel.conf');
          writeFileSync(
            file,
            [
              `port ${port}`,
              `bind ${HOST}`,
              `dir ${dir}`,
              `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
              `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
              `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
              `sentinel parallel-syncs ${masterName} 1`,
              '',
            ].join('\n'),
          );
          return [file, '--sentinel', '--loglevel', 'warning'];
        }),
      );
    }
    // Peers are found through hello messages on the master every 2 s; a sentinel that
    // knows no peer cannot reach the quorum nor win an election.
    await waitUntil('the sentinels to know the replica and each other', 15_000, async () => {
      for (const sentinel of sentinelNodes) {
        const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', masterName)) as unknown[];
        const peers = (await sentinel.call('SENTINEL', 'SENTINELS', masterName)) as unknown[];
        if (replicas.length !== 1 || peers.length !== 2) return false;
      }
      return true;
    });

    const dataNodes = [master, replica];
    const byPort = (port: number): LocalRedis => {
      const node = dataNodes.find((candidate) => candidate.port === port);
      if (!node) throw new Error(`sentinels name an unknown master on port ${port}`);
      return node;
    };
    const masterPortSeenBy = async (sentinel: LocalRedis): Promise<number> => {
      const reply = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
      return Number(reply[1]);
    };
    const liveSentinels = (): LocalRedis[] => sentinelNodes.filter((sentinel) => sentinel.alive);

    const topology: SentinelTopology = {
      masterName,
      sentinels: sentinelNodes.map(({ host, port }) => ({ host, port })),
      sentinelNodes,
      dataNodes,
      async master() {
        const [first] = liveSentinels();
        if (!first) throw new Error('no sentinel is alive');
        return byPort(await masterPortSeenBy(first));
      },
      async killMaster() {
        const current = await topology.master();
        await current.kill();
        return current;
      },
      async waitForPromotion(killed, timeoutMs = 15_000) {
        const ports = await Promise.all(
          liveSentinels().map(async (sentinel) => {
            const listener = sentinel.connect();
            try {
              // Subscribe first, then read the current answer: a switch between the two
              // is still heard, one before both is read.
              const switched = new Promise<number>((resolve) => {
                listener.on('message', (_channel: string, message: string) => {
                  const [name, , , , newPort] = message.split(' ');
                  if (name === masterName && Number(newPort) !== killed.port) resolve(Number(newPort));
                });
              });
              await listener.subscribe('+switch-master');
              const now = await masterPortSeenBy(sentinel);
              if (now !== killed.port) return now;
              return await withTimeout(switched, timeoutMs, `sentinel ${sentinel.address} to switch masters`);
            } finally {
              listener.disconnect();
            }
          }),
        );
        if (new Set(ports).size !== 1) throw new Error(`the sentinels disagree on the new master: ${ports.join(', ')}`);
        return byPort(ports[0] ?? 0);
      },
      stop: () => stopAll(started),
    };
    return topology;
  } catch (error) {
    await stopAll(started);
    throw error;
  }
}

/** One row of `CLUSTER NODES`. */
export interface ClusterNodeState {
  readonly id: string;
  readonly port: number;
  readonly role: 'master' | 'replica';
  /** The master's id, for a replica. */
  readonly masterId: string | undefined;
  /** Inclusive slot ranges served (masters only). */
  readonly slots: ReadonlyArray<readonly [number, number]>;
  /** Flagged `fail` or `fail?` by the node asked. */
  readonly failing: boolean;
}

export interface ClusterNode extends TopologyNode {
  /** The node's cluster id (`CLUSTER MYID`). */
  readonly id: string;
  /** `CLUSTER INFO`, parsed: `cluster_state`, `cluster_stats_messages_publishshard_received`… */
  clusterInfo(): Promise<Record<string, string>>;
}

export interface ClusterTopologyOptions {
  /** `cluster-node-timeout`: silence before a node is suspected failing. @default 1000 (ms) */
  nodeTimeoutMs?: number;
}

export interface ClusterTopology {
  /** Every node's address, as `REDIS_CLUSTER_NODES` lists seeds. */
  readonly seeds: readonly HostPort[];
  readonly servers: readonly ClusterNode[];
  /** `CLUSTER NODES` as seen by the first live node. */
  nodes(): Promise<ClusterNodeState[]>;
  /** The live master serving `slot`. */
  ownerOf(slot: number): Promise<ClusterNode>;
  /** `CLUSTER KEYSLOT key`. */
  slotOf(key: string): Promise<number>;
  /** SIGKILLs `node` (a master); resolve its replica with `waitForFailover`. */
  killMaster(node: ClusterNode): Promise<void>;
  /**
   * Resolves with the replica promoted in place of `killed`, once every live node
   * agrees on it and reports `cluster_state:ok`. Rejects after `timeoutMs`.
   */
  waitForFailover(killed: ClusterNode, timeoutMs?: number): Promise<ClusterNode>;
  /**
   * Moves `slot` to master `to` the way `redis-cli --cluster reshard` does: SETSLOT
   * IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in batches,
   * then SETSLOT NODE on both and on every other master. Resolves with the number of
   * keys moved, once every live node agrees on the new owner.
   */
  migrateSlot(slot: number, to: ClusterNode, keysPerBatch?: number): Promise<number>;
  stop(): Promise<void>;
}

/** Six nodes joined by `redis-cli --cluster create --cluster-replicas 1`, slots covered, replicas in sync. */
export async function startClusterTopology(options: ClusterTopologyOptions = {}): Promise<ClusterTopology> {
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  const started: LocalRedis[] = [];
  try {
    const processes = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        LocalRedis.start(
          `cluster-${i}`,
          started,
          ({ port, busPort }, dir) => [
            ...dataNodeArgs(port, dir),
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, 'nodes.conf'),
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            // Explicit, so the bus needs no free port+10000.
            '--cluster-port',
            String(busPort),
            // A replica may fail over however long its link was down: tests kill masters
            // right after writes.
            '--cluster-replica-validity-factor',
            '0',
            '--cluster-allow-replica-migration',
            'no',
          ],
        ),
      ),
    );
    await run('redis-cli', ['--cluster', 'create', ...processes.map((node) => node.address), '--cluster-replicas', '1', '--cluster-yes']);
    const servers = await Promise.all(
      processes.map(async (node): Promise<ClusterNode> => {
        const id = String(await node.call('CLUSTER', 'MYID'));
        return Object.assign(node, {
          id,
          clusterInfo: async () => parseFields(String(await node.call('CLUSTER', 'INFO'))),
        });
      }),
    );

    const live = (): ClusterNode[] => servers.filter((node) => node.alive);
    const stateSeenBy = async (node: ClusterNode): Promise<ClusterNodeState[]> =>
      parseClusterNodes(String(await node.call('CLUSTER', 'NODES')));
    const byId = (id: string): ClusterNode => {
      const node = servers.find((candidate) => candidate.id === id);
      if (!node) throw new Error(`unknown cluster node ${id}`);
      return node;
    };
    const ownerIdSeenBy = async (node: ClusterNode, slot: number): Promise<string | undefined> =>
      (await stateSeenBy(node)).find((row) => row.role === 'master' && !row.failing && row.slots.some(([from, to]) => from <= slot && slot <= to))?.id;
    await waitUntil('the cluster to be ok on every node, replicas in sync', 15_000, async () => {
      for (const node of servers) {
        if ((await node.clusterInfo())['cluster_state'] !== 'ok') return false;
        const replication = await node.info('replication');
        if (replication['role'] === 'slave' && replication['master_link_status'] !== 'up') return false;
      }
      return true;
    });

    const topology: ClusterTopology = {
      seeds: servers.map(({ host, port }) => ({ host, port })),
      servers,
      async nodes() {
        const [first] = live();
        if (!first) throw new Error('no cluster node is alive');
        return stateSeenBy(first);
      },
      async ownerOf(slot) {
        const [first] = live();
        if (!first) throw new Error('no cluster node is alive');
        const id = await ownerIdSeenBy(first, slot);
        if (id === undefined) throw new Error(`no live master serves slot ${slot}`);
        return byId(id);
      },
      async slotOf(key) {
        const [first] = live();
        if (!first) throw new Error('no cluster node is alive');
        return Number(await first.call('CLUSTER', 'KEYSLOT', key));
      },
      async killMaster(node) {
        const row = (await stateSeenBy(node)).find((candidate) => candidate.id === node.id);
        if (row?.role !== 'master') throw new Error(`${node.address} is not a master`);
        await node.kill();
      },
      async waitForFailover(killed, timeoutMs = 15_000) {
        const heirs = replicasAtStart.get(killed.id) ?? [];
        if (heirs.length === 0) throw new Error(`${killed.address} had no replica at start`);
        let promoted: ClusterNode | undefined;
        await waitUntil(`a replica of ${killed.address} to take over`, timeoutMs, async () => {
          const named = new Set<string>();
          for (const node of live()) {
            if ((await node.clusterInfo())['cluster_state'] !== 'ok') return false;
            const heir = (await stateSeenBy(node)).find((row) => heirs.includes(row.id) && row.role === 'master' && !row.failing);
            if (!heir) return false;
            named.add(heir.id);
          }
          const [id] = named;
          if (named.size !== 1 || id === undefined) return false;
          promoted = byId(id);
          return true;
        });
        if (!promoted) throw new Error('unreachable: waitUntil resolved without a promoted replica');
        return promoted;
      },
      async migrateSlot(slot, to, keysPerBatch = 100) {
        const from = await topology.ownerOf(slot);
        if (from === to) return 0;
        await to.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
        await from.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
        let moved = 0;
        for (;;) {
          const keys = (await from.call('CLUSTER', 'GETKEYSINSLOT', slot, keysPerBatch)) as string[];
          if (keys.length === 0) break;
          await from.call('MIGRATE', to.host, to.port, '', 0, 5000, 'KEYS', ...keys);
          moved += keys.length;
        }
        // The target first: it bumps its epoch, so its claim wins over stale gossip.
        await to.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
        await from.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
        const masters = (await stateSeenBy(to)).filter((row) => row.role === 'master' && !row.failing);
        for (const row of masters) {
          const master = byId(row.id);
          if (master !== to && master !== from && master.alive) await master.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
        }
        await waitUntil(`every node to agree that ${to.address} serves slot ${slot}`, 10_000, async () => {
          for (const node of live()) if ((await ownerIdSeenBy(node, slot)) !== to.id) return false;
          return true;
        });
        return moved;
      },
      stop: () => stopAll(started),
    };
    // Who replicates whom at start: the heir of a killed master is one of its replicas.
    const replicasAtStart = new Map<string, string[]>();
    for (const row of await topology.nodes()) {
      if (row.masterId !== undefined) replicasAtStart.set(row.masterId, [...(replicasAtStart.get(row.masterId) ?? []), row.id]);
    }
    return topology;
  } catch (error) {
    await stopAll(started);
    throw error;
  }
}

/** Parses `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`. */
export function parseClusterNodes(text: string): ClusterNodeState[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slotFields] = line.trim().split(' ');
      const flagSet = new Set(flags.split(','));
      const slots = slotFields
        .filter((field) => !field.startsWith('['))
        .map((field): readonly [number, number] => {
          const [from, to = from] = field.split('-');
          return [Number(from), Number(to)];
        });
      return {
        id,
        port: Number(address.split('@')[0]?.split(':').pop()),
        role: flagSet.has('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        slots,
        failing: flagSet.has('fail') || flagSet.has('fail?'),
      };
    });
}

/**
 * Options every data node gets: loopback only, no snapshots, its own directory (a full
 * resync still writes an RDB file, which must not land in the working directory).
 */
function dataNodeArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];
}

/** A `redis-server` child process and the clients opened to it. */
class LocalRedis implements TopologyNode {
  readonly host = HOST;
  readonly #clients: Redis[] = [];
  #inspector: Redis | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  /**
   * Spawns `redis-server` with `argsFor(ports, dir)` on free ports (`busPort` for a
   * cluster node's bus) and resolves once it answers PING; `started` collects it for
   * `stopAll`. A port lost to a race between finding and binding it is retried with new ones.
   */
  static async start(
    label: string,
    started: LocalRedis[],
    argsFor: (ports: { port: number; busPort: number }, dir: string) => string[],
  ): Promise<LocalRedis> {
    const dir = mkdtempSync(join(tmpdir(), `herald-${label}-`));
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const [port = 0, busPort = 0] = await freePorts(2);
      try {
        const child = await spawnUntilPing(port, argsFor({ port, busPort }, dir));
        const node = new LocalRedis(port, dir, child);
        started.push(node);
        return node;
      } catch (error) {
        lastError = error;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw lastError;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  connect(): Redis {
    const redis = new Redis(this.port, this.host, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined); // a killed node's clients retry until `stop`
    this.#clients.push(redis);
    return redis;
  }

  call(command: string, ...args: Array<string | number>): Promise<unknown> {
    this.#inspector ??= this.connect();
    return this.#inspector.call(command, ...args);
  }

  async info(section?: string): Promise<Record<string, string>> {
    return parseFields(String(await (section === undefined ? this.call('INFO') : this.call('INFO', section))));
  }

  kill(): Promise<void> {
    return endChild(this.child, 'SIGKILL');
  }

  async stop(): Promise<void> {
    for (const redis of this.#clients) redis.disconnect();
    await endChild(this.child, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function stopAll(nodes: readonly LocalRedis[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.stop()));
}

/** `field:value` lines (INFO, CLUSTER INFO), `#` headers skipped. */
function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n').join('\n').split('\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, HOST, () => resolve(server));
        }),
    ),
  );
  // Held together until all are known, so one call never returns the same port twice.
  const ports = servers.map((server) => {
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Polls `check` every 50 ms until it is true, for states Redis announces to no one
 * (cluster gossip, replication links); rejects after `timeoutMs`. Errors from `check`
 * (a node still starting, a failover in progress) count as "not yet".
 */
export async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
