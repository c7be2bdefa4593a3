/**
 * `npx tsx bench/cluster.ts`: Herald on one `redis-server` and on a local 3-master,
 * 3-replica Redis Cluster, side by side, with the same scenarios (does a Cluster add
 * Pub/Sub capacity?),
 * and how the Pub/Sub work divides across the cluster's nodes.
 *
 * It starts both topologies (test/support: `startRedisServer`, `startClusterTopology`),
 * each with Herald compiled as production runs it (`npm run build`, then
 * `node dist/main.js subscribe|publish`, NODE_ENV=production, ports 0), and drives them
 * with the load clients (bench/load-client.ts) and the publishing driver
 * (bench/publisher.ts) as bench/run.ts uses them. Both stay up for the whole run and
 * every round runs on one topology and then on the other, alternating which goes first:
 * on shared cores, whatever else is running then weighs on both sides of a ratio alike. Three tenants take part, picked so that on the cluster each `{tenant}` slot
 * falls on a different master (`redis-cli --cluster create` gives the masters slots
 * 0–5460, 5461–10922, 10923–16383; checked against `CLUSTER NODES`); users are named
 * `<tenant>.<name>`, each publish carries a service token of its user's tenant, and the
 * sends rotate over the tenants. Scenarios:
 *
 * - **publish**: single mutations/s at concurrency 32 to a user of each tenant nobody
 *   listens to, with `{ receivedUsers }` and with `{ id }`;
 * - **fan-out**: 4 users per tenant × 150 devices at capacity (closed loop, 32 in
 *   flight), with `{ receivedUsers }` and with `{ id }`: deliveries/s, server CPU;
 * - **steady**: 667 users per tenant × 1 device, open loop at 1,000 notifications/s:
 *   server CPU per delivery, p50/p99 latency.
 *
 * Around each scenario every Redis node is sampled — `INFO commandstats` (EVALSHA, EVAL,
 * SPUBLISH, PUBLISH, SSUBSCRIBE, SUBSCRIBE calls), `INFO cpu` (used_cpu_sys + user) and,
 * on the cluster, `CLUSTER INFO`'s bus counters (sharded vs classic Pub/Sub messages
 * received) — and the deltas make the per-node division table. (S)SUBSCRIBE counts are
 * those of opening the scenario's connections; the rest are those of its counted rounds.
 * Server CPU is user + system time of Herald's processes (/proc); Redis CPU is the
 * nodes' own `INFO cpu`. Figures are medians of the rounds. Prints both tables.
 *
 *   npx tsx bench/cluster.ts                          # the full run (a few minutes on 2 cores)
 *   BENCH_SCALE=0.25 npx tsx bench/cluster.ts         # fewer devices, users and sends
 *   BENCH_ROUNDS=5 npx tsx bench/cluster.ts           # counted rounds per scenario (default 3)
 *   BENCH_CLUSTER_SUBSCRIBERS=2 npx tsx bench/cluster.ts  # two subscribe processes per topology
 *   BENCH_ONLY=publish,fanout npx tsx bench/cluster.ts    # some scenarios (no result file written)
 *
 * A full run writes bench/results/cluster.md (cluster-<n>-subscribers.md with
 * BENCH_CLUSTER_SUBSCRIBERS=n).
 *   BENCH_NICE=0 npx tsx bench/cluster.ts             # clients and driver at normal priority
 *
 * Ctrl-C (SIGINT) or SIGTERM stops every process it started.
 */
import { execFileSync, execSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, setPriority, totalmem } from 'node:os';
import calculateSlot from 'cluster-key-slot';
import { startHeraldProcess, stopAllProcesses } from '../test/support/process.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { startClusterTopology, type ClusterNode } from '../test/support/redis-topology.js';
import { serviceToken, userToken } from '../test/support/tokens.js';
import type { ClientStats } from './load-client.js';
import type { SendCommand, SendReport } from './publisher.js';
import { ask, drive as driveThrough, forkHelper } from './ipc.js';

const SCALE = Number(process.env['BENCH_SCALE'] ?? '1');
/** Counted rounds of each scenario (`BENCH_ROUNDS`); figures are their medians. */
const ROUNDS = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? '3'));
/** Subscribe processes per topology (`BENCH_CLUSTER_SUBSCRIBERS`); the load clients are dealt over them. */
const SUBSCRIBERS = Math.max(1, Number(process.env['BENCH_CLUSTER_SUBSCRIBERS'] ?? '1'));
const SCENARIOS = ['publish', 'fanout', 'steady'] as const;
type Scenario = (typeof SCENARIOS)[number];
/** `BENCH_ONLY=publish,fanout` runs those scenarios only, and writes no result file. */
const ONLY = process.env['BENCH_ONLY'] ? new Set(process.env['BENCH_ONLY'].split(',').map((name) => name.trim())) : undefined;
const wanted = (scenario: Scenario): boolean => ONLY === undefined || ONLY.has(scenario);
const NICE = process.env['BENCH_NICE'] !== '0';
/** Niceness of the load clients, the driver and this process, below the servers' (as bench/run.ts). */
const LOAD_PRIORITY = 10;
/** Sends in flight in the closed-loop scenarios (as bench/run.ts). */
const CONCURRENCY = 32;
/** The open-loop rate of the steady scenario, notifications per second (as bench/run.ts). */
const STEADY_RATE = 1000;
const STEADY_SECONDS = 3;
const PUBLISH_SECONDS = 3;
/** Quiet time before each scenario, in ms. */
const SETTLE_MS = 2000;
const TENANT_COUNT = 3;
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const ROOT = new URL('..', import.meta.url).pathname;
const QUERY = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { text } }';
const SEND_RECEIVED = 'mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { receivedUsers } }';
const SEND_ID = 'mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { id } }';
/** Calls counted per node, from `INFO commandstats`. */
const COMMANDS = ['evalsha', 'eval', 'spublish', 'publish', 'ssubscribe', 'subscribe'] as const;
type Command = (typeof COMMANDS)[number];

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

// ---------------------------------------------------------------- processes and /proc

/** Every child this run forks (load clients, the driver): SIGKILLed if the run fails. */
const forked: ChildProcess[] = [];
/** What to stop on the way out, newest first: Herald, then Redis. */
const cleanups: Array<() => Promise<void>> = [];

async function cleanUp(): Promise<void> {
  for (const child of forked) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => console.error('bench: cleanup:', error));
}

/** A process and its descendants (a subscribe server's workers). */
function processTree(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return [pid, ...children.flatMap(processTree)];
}

/** User + system CPU time of a process and its descendants so far, in ms. */
function cpuMs(pid: number): number {
  return sum(
    processTree(pid).map((member) => {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
    }),
  );
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become ready`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------- Redis topologies

/** One Redis node as the division table shows it. */
interface RedisNode {
  /** `M1`, `R1 (of M1)`, or `single`. */
  readonly label: string;
  readonly role: 'master' | 'replica';
  /** A replica's master, by its index in {@link Topology.nodes}. */
  readonly of: number | undefined;
  info(section: string): Promise<Record<string, string>>;
  /** `CLUSTER INFO`, on a cluster node. */
  clusterInfo: (() => Promise<Record<string, string>>) | undefined;
}

interface Topology {
  readonly title: string;
  /** How Herald reaches it: `REDIS_URL` or `REDIS_CLUSTER_NODES`. */
  readonly env: Record<string, string>;
  readonly nodes: RedisNode[];
  /** Where each tenant's slot is served (`one node` on a single server). */
  readonly tenantHomes: Map<string, string>;
}

/** `field:value` lines (INFO), `#` headers skipped. */
function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** `TENANT_COUNT` tenant names, the `{tenant}` slot of each in a different third of the slots. */
function pickTenants(): string[] {
  const thirds = new Map<number, string>();
  for (let n = 0; thirds.size < TENANT_COUNT; n++) {
    const tenant = `t${n}`;
    const third = Math.min(TENANT_COUNT - 1, Math.floor((calculateSlot(`{${tenant}}`) * TENANT_COUNT) / 16384));
    if (!thirds.has(third)) thirds.set(third, tenant);
  }
  return [...thirds.entries()].sort(([a], [b]) => a - b).map(([, tenant]) => tenant);
}

async function startOneNode(tenants: string[]): Promise<Topology> {
  const redis = await startRedisServer();
  cleanups.push(() => redis.stop());
  const client = redis.client();
  return {
    title: 'one node',
    env: { REDIS_URL: redis.url },
    nodes: [{ label: 'single', role: 'master', of: undefined, info: async (section) => parseFields(await client.info(section)), clusterInfo: undefined }],
    tenantHomes: new Map(tenants.map((tenant) => [tenant, 'single'])),
  };
}

async function startCluster(tenants: string[]): Promise<Topology> {
  // The production node timeout: on 2 busy cores a 1 s timeout could fail a master over mid-run.
  const cluster = await startClusterTopology({ nodeTimeoutMs: 15_000 });
  cleanups.push(() => cluster.stop());
  // Roles as each node states them (INFO replication): another node's gossip view of a
  // replica can lag just after the cluster is created. Slots from CLUSTER NODES.
  const rows = await cluster.nodes();
  const replication = await Promise.all(cluster.servers.map(async (server) => ({ server, info: await server.info('replication') })));
  const slotsOf = (id: string) => rows.find((row) => row.id === id)?.slots ?? [];
  const masters = replication
    .filter(({ info }) => info['role'] === 'master')
    .map(({ server }) => server)
    .sort((a, b) => (slotsOf(a.id)[0]?.[0] ?? 0) - (slotsOf(b.id)[0]?.[0] ?? 0));
  const labels = new Map<string, string>();
  masters.forEach((master, n) => labels.set(master.id, `M${n + 1} (slots ${slotsOf(master.id).map(([from, to]) => `${from}–${to}`).join(', ')})`));
  const nodes: RedisNode[] = [];
  const asNode = (server: ClusterNode, label: string, role: RedisNode['role'], of?: number): RedisNode => ({
    label,
    role,
    of,
    info: (section) => server.info(section),
    clusterInfo: () => server.clusterInfo(),
  });
  for (const [n, master] of masters.entries()) {
    const at = nodes.length;
    nodes.push(asNode(master, labels.get(master.id) ?? master.id, 'master'));
    for (const { server } of replication.filter(({ info }) => info['role'] === 'slave' && Number(info['master_port']) === master.port)) {
      nodes.push(asNode(server, `R${n + 1} (replica of M${n + 1})`, 'replica', at));
    }
  }
  if (masters.length !== 3 || nodes.length !== cluster.servers.length) throw new Error(`expected 3 masters with a replica each: ${nodes.map((node) => node.label).join(', ')}`);
  const tenantHomes = new Map<string, string>();
  for (const tenant of tenants) {
    const owner = await cluster.ownerOf(await cluster.slotOf(`{${tenant}}`));
    tenantHomes.set(tenant, (labels.get(owner.id) ?? owner.id).split(' ')[0] ?? owner.id);
  }
  if (new Set(tenantHomes.values()).size !== TENANT_COUNT) throw new Error(`the tenants do not fall on ${TENANT_COUNT} masters: ${[...tenantHomes].join(', ')}`);
  return {
    title: '3-master cluster',
    env: { REDIS_CLUSTER_NODES: cluster.seeds.map(({ host, port }) => `${host}:${port}`).join(',') },
    nodes,
    tenantHomes,
  };
}

/** One node's counters at one moment. */
interface NodeSample {
  calls: Record<Command, number>;
  cpuMs: number;
  /** Pub/Sub messages received over the cluster bus: sharded (SPUBLISH) and classic (PUBLISH, broadcast to every node). */
  busSharded: number;
  busClassic: number;
}

async function sampleNode(node: RedisNode): Promise<NodeSample> {
  const [stats, cpu, cluster] = await Promise.all([node.info('commandstats'), node.info('cpu'), node.clusterInfo?.()]);
  const calls = Object.fromEntries(COMMANDS.map((command) => [command, Number(/calls=(\d+)/.exec(stats[`cmdstat_${command}`] ?? '')?.[1] ?? 0)])) as Record<Command, number>;
  return {
    calls,
    cpuMs: (Number(cpu['used_cpu_sys'] ?? 0) + Number(cpu['used_cpu_user'] ?? 0)) * 1000,
    busSharded: Number(cluster?.['cluster_stats_messages_publishshard_received'] ?? 0),
    busClassic: Number(cluster?.['cluster_stats_messages_publish_received'] ?? 0),
  };
}

/** Every node's counters, once the cluster bus has stopped moving (it is asynchronous). */
async function sampleAll(topology: Topology): Promise<NodeSample[]> {
  let last = await Promise.all(topology.nodes.map(sampleNode));
  if (topology.nodes.every((node) => node.clusterInfo === undefined)) return last;
  for (let tries = 0; tries < 20; tries++) {
    await sleep(300);
    const next = await Promise.all(topology.nodes.map(sampleNode));
    const bus = (samples: NodeSample[]) => samples.map((sample) => `${sample.busSharded}/${sample.busClassic}`).join(',');
    if (bus(next) === bus(last)) return next;
    last = next;
  }
  return last;
}

const NOTHING: NodeSample = { calls: { evalsha: 0, eval: 0, spublish: 0, publish: 0, ssubscribe: 0, subscribe: 0 }, cpuMs: 0, busSharded: 0, busClassic: 0 };

const difference = (after: NodeSample, before: NodeSample | undefined): NodeSample => ({
  calls: Object.fromEntries(COMMANDS.map((command) => [command, after.calls[command] - (before?.calls[command] ?? 0)])) as Record<Command, number>,
  cpuMs: after.cpuMs - (before?.cpuMs ?? 0),
  busSharded: after.busSharded - (before?.busSharded ?? 0),
  busClassic: after.busClassic - (before?.busClassic ?? 0),
});

// ---------------------------------------------------------------- Herald

interface Herald {
  readonly publishUrl: string;
  /** The subscribe process load client `n` connects to. */
  wsUrl(n: number): string;
  /** CPU so far of every Herald process, in ms. */
  cpuMs(): number;
}

/** Herald's processes on `topology`; `stopAllProcesses` (registered in `main`) ends them. */
async function startHerald(topology: Topology): Promise<Herald> {
  const env = { ...topology.env, CHANNEL_PREFIX: 'bench', KEEPALIVE_MS: '600000', HISTORY_MAX_LENGTH: '100' };
  const options = { entry: 'dist' as const, startTimeoutMs: 60_000, env };
  const subscribers = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => startHeraldProcess('subscribe', options)));
  const publisher = await startHeraldProcess('publish', options);
  for (const subscriber of subscribers) await waitReady(`http://127.0.0.1:${subscriber.subscribePort}/readyz`);
  await waitReady(`http://127.0.0.1:${publisher.publishPort}/readyz`);
  const pids = [...subscribers.map((subscriber) => subscriber.pid), publisher.pid];
  return {
    publishUrl: `http://127.0.0.1:${publisher.publishPort}/graphql`,
    wsUrl: (n) => `ws://127.0.0.1:${subscribers[n % subscribers.length]?.subscribePort}/graphql`,
    cpuMs: () => sum(pids.map(cpuMs)),
  };
}

// ---------------------------------------------------------------- the driver and the load clients

let driverProcess: ChildProcess | undefined;

function driver(): ChildProcess {
  if (driverProcess) return driverProcess;
  const child = forkHelper('publisher.ts');
  if (NICE && child.pid !== undefined) setPriority(child.pid, LOAD_PRIORITY);
  forked.push(child);
  driverProcess = child;
  return child;
}

/** Sends through the driver (see `ipc.ts`). */
const drive = (command: Omit<SendCommand, 'cmd'>): Promise<SendReport> => driveThrough(driver(), command);

/** `<tenant>.<name>`: the tenant of a bench user. */
const tenantOf = (user: string): string => user.slice(0, user.indexOf('.'));

/** Service tokens, one per tenant, made once. */
const serviceTokens = new Map<string, string>();
const tokenFor = (user: string): string => {
  const tenant = tenantOf(user);
  let token = serviceTokens.get(tenant);
  if (token === undefined) serviceTokens.set(tenant, (token = serviceToken({ tenant, sub: 'bench' })));
  return token;
};

/** A send to each of `targets`, each with its tenant's service token. */
const sendsTo = (targets: string[]) => ({ targets, tokens: targets.map(tokenFor), token: tokenFor(targets[0] ?? '') });

interface ClientPool {
  count(): Promise<ClientStats>;
  stats(): Promise<ClientStats>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Two load-client processes holding `devices` connections per user, dealt out in turn; client n on subscribe process n. */
async function openClients(herald: Herald, users: string[], devices: number): Promise<ClientPool> {
  const clients = Array.from({ length: 2 }, () => {
    const client = forkHelper('load-client.ts');
    if (NICE && client.pid !== undefined) setPriority(client.pid, LOAD_PRIORITY);
    forked.push(client);
    return client;
  });
  const gather = async (cmd: 'count' | 'stats'): Promise<ClientStats> => {
    const all = await Promise.all(clients.map((client) => ask<ClientStats>(client, { cmd }, cmd)));
    return {
      received: sum(all.map((stats) => stats.received)),
      minPerConnection: Math.min(...all.map((stats) => stats.minPerConnection)),
      maxPerConnection: Math.max(...all.map((stats) => stats.maxPerConnection)),
      reached: all.reduce((total, stats) => total + stats.reached, 0),
      latenciesMs: all.flatMap((stats) => stats.latenciesMs),
      lastAt: Math.max(...all.map((stats) => stats.lastAt)),
      closedUnexpectedly: sum(all.map((stats) => stats.closedUnexpectedly)),
    };
  };
  const connections = users.flatMap((user) => Array.from({ length: devices }, () => ({ user, token: userToken(user, { tenant: tenantOf(user) }) })));
  await Promise.all(
    clients.map((client, n) =>
      ask(client, { cmd: 'open', url: herald.wsUrl(n), connections: connections.filter((_, index) => index % clients.length === n), query: QUERY }, 'opened'),
    ),
  );
  return {
    count: () => gather('count'),
    stats: () => gather('stats'),
    reset: async () => void (await Promise.all(clients.map((client) => ask(client, { cmd: 'reset' }, 'reset')))),
    close: async () => void (await Promise.all(clients.map((client) => ask(client, { cmd: 'close' }, 'closed').catch(() => undefined)))),
  };
}

/** Publishes warm-ups until every connection has received one: every subscription is live. */
async function warmUp(herald: Herald, pool: ClientPool, users: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    await drive({ url: herald.publishUrl, query: SEND_ID, concurrency: CONCURRENCY, ...sendsTo(users) });
    await sleep(200);
    if ((await pool.count()).minPerConnection >= 1) break;
    if (Date.now() > deadline) throw new Error('not every connection is subscribed after 60 s');
  }
  await pool.reset();
}

// ---------------------------------------------------------------- scenarios

interface Round {
  deliveries: number;
  lost: number;
  heraldCpuUsPerDelivery: number;
  deliveriesPerSecond: number;
  p50: number;
  p99: number;
}

type Load = { concurrency: number; perUser: number } | { ratePerSecond: number; seconds: number };

/** One round of `load` to `users` (in turn), and what arrived. */
async function round(herald: Herald, pool: ClientPool, users: string[], devices: number, load: Load, query: string): Promise<Round> {
  await pool.reset();
  const sends = 'perUser' in load ? users.length * load.perUser : Math.round(load.ratePerSecond * load.seconds);
  const targets = Array.from({ length: sends }, (_, n) => users[n % users.length] as string);
  const cpuBefore = herald.cpuMs();
  const started = now();
  await drive({ url: herald.publishUrl, query, ...sendsTo(targets), ...('perUser' in load ? { concurrency: load.concurrency } : { ratePerSecond: load.ratePerSecond }) });
  const expected = sends * devices;
  let counted = await pool.count();
  const deadline = Date.now() + 60_000;
  while (counted.received < expected && Date.now() < deadline) {
    await sleep(50);
    counted = await pool.count();
  }
  const cpu = herald.cpuMs() - cpuBefore;
  const stats = await pool.stats();
  const elapsed = (stats.lastAt || now()) - started;
  const sorted = stats.latenciesMs.sort((a, b) => a - b);
  return {
    deliveries: stats.received,
    lost: expected - stats.received,
    heraldCpuUsPerDelivery: (cpu * 1000) / Math.max(1, stats.received),
    deliveriesPerSecond: stats.received / (elapsed / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

/** What one scenario measured on one topology: figures by row key, and the per-node deltas. */
interface Measured {
  figures: Record<string, number>;
  /** Per scenario part: the nodes' deltas over its counted rounds, and over opening its connections. */
  division: Array<{ part: string; counted: NodeSample[]; opening: NodeSample[] | undefined }>;
  lost: number;
}

/** Runs `work` between two samples of every node; resolves with the deltas and what `work` returned. */
async function across<T>(topology: Topology, work: () => Promise<T>): Promise<{ deltas: NodeSample[]; result: T }> {
  const before = await sampleAll(topology);
  const result = await work();
  const after = await sampleAll(topology);
  return { deltas: after.map((sample, n) => difference(sample, before[n])), result };
}

/** Per-node deltas added up over several windows. */
const added = (total: NodeSample[], deltas: NodeSample[]): NodeSample[] =>
  deltas.map((delta, n) => {
    const so = total[n] ?? NOTHING;
    return {
      calls: Object.fromEntries(COMMANDS.map((command) => [command, so.calls[command] + delta.calls[command]])) as Record<Command, number>,
      cpuMs: so.cpuMs + delta.cpuMs,
      busSharded: so.busSharded + delta.busSharded,
      busClassic: so.busClassic + delta.busClassic,
    };
  });

const redisCpuMs = (deltas: NodeSample[]) => sum(deltas.map((delta) => delta.cpuMs));

/** Users `<tenant>.<prefix><n>`, `perTenant` in each tenant, interleaved so consecutive sends change tenant. */
const usersOf = (tenants: string[], prefix: string, perTenant: number): string[] =>
  Array.from({ length: perTenant }, (_, n) => tenants.map((tenant) => `${tenant}.${prefix}${n}`)).flat();

/** One topology with its Herald, and what was measured on it. */
interface Side {
  readonly topology: Topology;
  readonly herald: Herald;
  readonly measured: Measured;
}

/**
 * The sides in turn, for round `n`: one node first in even rounds, the cluster first in
 * odd ones. Both run in every round, back to back, so a change in what else the shared
 * cores are doing falls on both, not on one topology's whole run.
 */
const inTurn = (sides: Side[], n: number): Side[] => (n % 2 === 0 ? sides : [...sides].reverse());

async function publishScenario(sides: Side[], tenants: string[]): Promise<void> {
  const targets = tenants.map((tenant) => `${tenant}.nobody`);
  const seconds = PUBLISH_SECONDS * Math.min(1, SCALE * 2);
  for (const [key, query, label] of [
    ['publishReceived', SEND_RECEIVED, 'publish { receivedUsers }'],
    ['publishId', SEND_ID, 'publish { id }'],
  ] as const) {
    console.info(`bench: single mutations, ${CONCURRENCY} in flight, ${label}`);
    // Fresh processes compile the mutation path on their first sends: one uncounted round first.
    for (const side of sides) await drive({ url: side.herald.publishUrl, query, concurrency: CONCURRENCY, seconds, ...sendsTo(targets) });
    const rates = new Map<Side, number[]>(sides.map((side) => [side, []]));
    const heraldCpu = new Map<Side, number[]>(sides.map((side) => [side, []]));
    const accepted = new Map<Side, number>(sides.map((side) => [side, 0]));
    const deltas = new Map<Side, NodeSample[]>(sides.map((side) => [side, []]));
    for (let n = 0; n < ROUNDS; n++) {
      for (const side of inTurn(sides, n)) {
        const { herald, topology } = side;
        const cpuBefore = herald.cpuMs();
        const counted = await across(topology, () => drive({ url: herald.publishUrl, query, concurrency: CONCURRENCY, seconds, ...sendsTo(targets) }));
        const report = counted.result;
        const rate = report.accepted / (report.elapsedMs / 1000);
        const cpu = ((herald.cpuMs() - cpuBefore) * 1000) / Math.max(1, report.accepted);
        console.info(`bench:   ${topology.title}: ${Math.round(rate)} mutations/s, Herald ${cpu.toFixed(1)} CPU µs/mutation`);
        rates.get(side)?.push(rate);
        heraldCpu.get(side)?.push(cpu);
        accepted.set(side, (accepted.get(side) ?? 0) + report.accepted);
        deltas.set(side, added(deltas.get(side) ?? [], counted.deltas));
      }
    }
    for (const side of sides) {
      const { figures, division } = side.measured;
      const counted = deltas.get(side) ?? [];
      figures[`${key}.rate`] = median(rates.get(side) ?? []);
      figures[`${key}.heraldCpu`] = median(heraldCpu.get(side) ?? []);
      figures[`${key}.redisCpu`] = (redisCpuMs(counted) * 1000) / Math.max(1, accepted.get(side) ?? 0);
      division.push({ part: label, counted, opening: undefined });
    }
  }
}

/**
 * Opens `devices` connections for each of `users` on every side (every subscription
 * proven live), then runs each of `parts` as `ROUNDS` counted rounds, the sides in turn
 * ({@link inTurn}), after an uncounted one for an open loop.
 */
async function deliveryScenario(
  sides: Side[],
  users: string[],
  devices: number,
  parts: Array<{ key: string; label: string; load: Load; query: string }>,
): Promise<void> {
  await sleep(SETTLE_MS);
  const pools = new Map<Side, ClientPool>();
  try {
    const opening = new Map<Side, NodeSample[]>();
    for (const side of sides) {
      console.info(`bench: ${side.topology.title}: ${users.length} users × ${devices} devices`);
      const opened = await across(side.topology, async () => {
        const pool = await openClients(side.herald, users, devices);
        pools.set(side, pool);
        await warmUp(side.herald, pool, users);
      });
      opening.set(side, opened.deltas);
    }
    await sleep(SETTLE_MS);
    for (const [index, part] of parts.entries()) {
      const rounds = new Map<Side, Round[]>(sides.map((side) => [side, []]));
      const deltas = new Map<Side, NodeSample[]>(sides.map((side) => [side, []]));
      for (let n = -1; n < ROUNDS; n++) {
        for (const side of inTurn(sides, n + 1)) {
          const pool = pools.get(side);
          if (!pool) throw new Error('no clients');
          if (n < 0) {
            // An open loop is measured in steady state: 2 s of it first, not counted.
            if ('ratePerSecond' in part.load) await round(side.herald, pool, users, devices, { ratePerSecond: part.load.ratePerSecond, seconds: 2 }, part.query);
            continue;
          }
          const counted = await across(side.topology, () => round(side.herald, pool, users, devices, part.load, part.query));
          const result = counted.result;
          console.info(
            `bench:   ${side.topology.title}: ${part.label}: ${Math.round(result.deliveriesPerSecond)} deliveries/s, Herald ${result.heraldCpuUsPerDelivery.toFixed(1)} CPU µs/delivery, ` +
              `p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, lost ${result.lost}`,
          );
          rounds.get(side)?.push(result);
          deltas.set(side, added(deltas.get(side) ?? [], counted.deltas));
        }
      }
      for (const side of sides) {
        const results = rounds.get(side) ?? [];
        const counted = deltas.get(side) ?? [];
        const { figures } = side.measured;
        side.measured.lost += sum(results.map((result) => result.lost));
        figures[`${part.key}.rate`] = median(results.map((result) => result.deliveriesPerSecond));
        figures[`${part.key}.heraldCpu`] = median(results.map((result) => result.heraldCpuUsPerDelivery));
        figures[`${part.key}.redisCpu`] = (redisCpuMs(counted) * 1000) / Math.max(1, sum(results.map((result) => result.deliveries)));
        figures[`${part.key}.p50`] = median(results.map((result) => result.p50));
        figures[`${part.key}.p99`] = median(results.map((result) => result.p99));
        side.measured.division.push({ part: part.label, counted, opening: index === 0 ? opening.get(side) : undefined });
      }
    }
  } finally {
    for (const pool of pools.values()) await pool.close();
  }
}

// ---------------------------------------------------------------- the tables

interface Row {
  label: string;
  key: string;
  digits: number;
  better: 'lower' | 'higher';
}

function render(topologies: Topology[], results: Measured[], rows: Row[]): string[] {
  const [one, cluster] = results;
  const lines = ['| measure | one node | 3-master cluster | cluster ÷ one node |', '|---|---|---|---|'];
  for (const row of rows) {
    const a = one?.figures[row.key];
    const b = cluster?.figures[row.key];
    if (a === undefined && b === undefined) continue;
    const cell = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(row.digits));
    lines.push(`| ${row.label} (${row.better} is better) | ${cell(a)} | ${cell(b)} | ${a !== undefined && b !== undefined ? (b / a).toFixed(2) : '—'} |`);
  }
  lines.push('', '**How the Pub/Sub work divides across the nodes** (deltas per node over each part\'s counted rounds; (S)SUBSCRIBE while opening its connections; share of the topology\'s total in brackets):', '');
  lines.push('| part | topology | node | EVALSHA + EVAL | SPUBLISH | PUBLISH | SSUBSCRIBE / SUBSCRIBE while opening | Redis CPU ms | bus: sharded Pub/Sub msgs received | bus: classic Pub/Sub msgs received |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  const share = (value: number, total: number) => (total > 0 && value > 0 ? ` (${Math.round((value / total) * 100)}%)` : '');
  const parts = [...new Set(results.flatMap((result) => result.division.map((entry) => entry.part)))];
  for (const part of parts) {
    results.forEach((result, t) => {
      const topology = topologies[t];
      const entry = result.division.find((candidate) => candidate.part === part);
      if (!topology || !entry) return;
      const scripts = entry.counted.map((delta) => delta.calls.evalsha + delta.calls.eval);
      const spublish = entry.counted.map((delta) => delta.calls.spublish);
      const cpu = entry.counted.map((delta) => delta.cpuMs);
      topology.nodes.forEach((node, n) => {
        const delta = entry.counted[n];
        if (!delta) return;
        const opening = entry.opening?.[n];
        const cluster = node.clusterInfo !== undefined;
        lines.push(
          `| ${part} | ${topology.title} | ${node.label} | ${scripts[n]}${share(scripts[n] ?? 0, sum(scripts))} | ${delta.calls.spublish}${share(delta.calls.spublish, sum(spublish))} | ${delta.calls.publish} | ` +
            `${opening ? `${opening.calls.ssubscribe} / ${opening.calls.subscribe}` : '—'} | ${Math.round(delta.cpuMs)}${share(delta.cpuMs, sum(cpu))} | ` +
            `${cluster ? delta.busSharded : '—'} | ${cluster ? delta.busClassic : '—'} |`,
        );
      });
    });
  }
  // What the counts show, part by part, on the cluster: deterministic, unlike the timings.
  const clusterAt = topologies.findIndex((topology) => topology.nodes.some((node) => node.clusterInfo !== undefined));
  const clustered = topologies[clusterAt];
  const clusterResult = results[clusterAt];
  if (clustered && clusterResult) {
    lines.push('', 'On the cluster, from the counts above:', '');
    const percent = (values: number[]) => values.map((value) => `${Math.round((value / Math.max(1, sum(values))) * 100)}%`).join(' / ');
    for (const entry of clusterResult.division) {
      const masters = clustered.nodes.flatMap((node, n) => (node.role === 'master' ? [n] : []));
      const at = (n: number): NodeSample => entry.counted[n] ?? NOTHING;
      const scripts = masters.map((n) => at(n).calls.evalsha + at(n).calls.eval);
      const spublish = masters.map((n) => at(n).calls.spublish);
      const replicasHeard = clustered.nodes.every((node, n) => node.role !== 'replica' || node.of === undefined || at(n).busSharded === at(node.of).calls.spublish);
      const elsewhere = clustered.nodes.every((node, n) => node.role !== 'master' || at(n).busSharded === 0);
      const classic = sum(entry.counted.map((delta) => delta.busClassic + delta.calls.publish));
      const opening = entry.opening ? `; SSUBSCRIBE calls while opening, M1 / M2 / M3: ${masters.map((n) => entry.opening?.[n]?.calls.ssubscribe ?? 0).join(' / ')}` : '';
      lines.push(
        `- ${entry.part}: publish scripts on M1 / M2 / M3: ${percent(scripts)}; SPUBLISH: ${percent(spublish)}; ` +
          `each replica received ${replicasHeard ? 'exactly' : 'NOT'} as many sharded messages over the bus as its master SPUBLISHed, ` +
          `${elsewhere ? 'no master received any' : 'SOME MASTER RECEIVED SOME'}; classic PUBLISH calls and classic bus messages: ${classic}${opening}.`,
      );
    }
  }
  return lines;
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  console.info('bench: compiling Herald (npm run build)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const tenants = pickTenants();
  const fanoutUsers = usersOf(tenants, 'fan', 4);
  const fanoutDevices = scaled(150, 10);
  const fanoutPerUser = scaled(80, 5);
  const steadyUsers = usersOf(tenants, 'one', scaled(667, 20));
  const fanoutLabel = `fan-out ${fanoutUsers.length} users (4 per tenant) × ${fanoutDevices} devices at capacity`;
  const steadyLabel = `${steadyUsers.length} users × 1 device, steady ${STEADY_RATE}/s open loop`;
  // Both topologies and both Heralds stay up for the whole run: every round runs on one,
  // then on the other (see `inTurn`).
  const sides: Side[] = [];
  for (const start of [startOneNode, startCluster]) {
    const topology = await start(tenants);
    // Every Herald process the run starts (SIGKILLed on the way out): registered once.
    if (sides.length === 0) cleanups.push(stopAllProcesses);
    const herald = await startHerald(topology);
    console.info(`bench: ${topology.title}: Herald up (${SUBSCRIBERS} subscribe, 1 publish process); tenants ${tenants.map((tenant) => `${tenant} on ${topology.tenantHomes.get(tenant)}`).join(', ')}`);
    sides.push({ topology, herald, measured: { figures: {}, division: [], lost: 0 } });
  }
  if (NICE) setPriority(LOAD_PRIORITY);
  const loadAtStart = loadavg()[0] ?? 0;
  if (wanted('publish')) {
    await sleep(SETTLE_MS);
    await publishScenario(sides, tenants);
  }
  if (wanted('fanout')) {
    const load = { concurrency: CONCURRENCY, perUser: fanoutPerUser };
    await deliveryScenario(sides, fanoutUsers, fanoutDevices, [
      { key: 'fanout', label: 'fan-out { receivedUsers }', load, query: SEND_RECEIVED },
      { key: 'fanoutId', label: 'fan-out { id }', load, query: SEND_ID },
    ]);
  }
  if (wanted('steady')) {
    await deliveryScenario(sides, steadyUsers, 1, [
      { key: 'steady', label: `steady ${STEADY_RATE}/s { receivedUsers }`, load: { ratePerSecond: STEADY_RATE, seconds: STEADY_SECONDS }, query: SEND_RECEIVED },
    ]);
  }
  const loads = [loadAtStart, loadavg()[0] ?? 0];
  const topologies = sides.map((side) => side.topology);
  const results = sides.map((side) => side.measured);

  const rows: Row[] = [
    { label: `single mutations / s at concurrency ${CONCURRENCY}, { receivedUsers }`, key: 'publishReceived.rate', digits: 0, better: 'higher' },
    { label: `single mutations / s at concurrency ${CONCURRENCY}, { id }`, key: 'publishId.rate', digits: 0, better: 'higher' },
    { label: 'publish { receivedUsers }: Herald CPU µs / mutation', key: 'publishReceived.heraldCpu', digits: 1, better: 'lower' },
    { label: 'publish { receivedUsers }: Redis CPU µs / mutation, all nodes', key: 'publishReceived.redisCpu', digits: 1, better: 'lower' },
    { label: `${fanoutLabel}, { receivedUsers }: deliveries / s`, key: 'fanout.rate', digits: 0, better: 'higher' },
    { label: `${fanoutLabel}, { receivedUsers }: Herald CPU µs / delivery`, key: 'fanout.heraldCpu', digits: 2, better: 'lower' },
    { label: `${fanoutLabel}, { receivedUsers }: Redis CPU µs / delivery, all nodes`, key: 'fanout.redisCpu', digits: 2, better: 'lower' },
    { label: `${fanoutLabel}, { id }: deliveries / s`, key: 'fanoutId.rate', digits: 0, better: 'higher' },
    { label: `${fanoutLabel}, { id }: Herald CPU µs / delivery`, key: 'fanoutId.heraldCpu', digits: 2, better: 'lower' },
    { label: `${steadyLabel}: Herald CPU µs / delivery`, key: 'steady.heraldCpu', digits: 1, better: 'lower' },
    { label: `${steadyLabel}: Redis CPU µs / delivery, all nodes`, key: 'steady.redisCpu', digits: 1, better: 'lower' },
    { label: `${steadyLabel}: latency p50 ms`, key: 'steady.p50', digits: 2, better: 'lower' },
    { label: `${steadyLabel}: latency p99 ms`, key: 'steady.p99', digits: 2, better: 'lower' },
  ];
  const header =
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${new Date().toISOString()}; ` +
    `scale ${SCALE}; medians of ${ROUNDS} rounds; Herald: ${SUBSCRIBERS} subscribe + 1 publish process per topology; ` +
    `tenants ${tenants.map((tenant) => `${tenant} (cluster: ${topologies[1]?.tenantHomes.get(tenant) ?? '?'})`).join(', ')}; ` +
    `each round run on one topology then the other (alternating which goes first); 1-minute load average at the start and the end: ${loads.map((load) => load.toFixed(1)).join(', ')}${ONLY ? `; only ${[...ONLY].join(', ')}` : ''}.`;
  const lost = results.map((result, n) => `${topologies[n]?.title}: ${result.lost}`).join(', ');
  const markdown = [header, '', ...render(topologies, results, rows), '', `Lost in delivery scenarios (expected − received): ${lost}.`].join('\n');
  console.info(`\n${markdown}\n`);
  if (!ONLY) {
    const file = SUBSCRIBERS === 1 ? 'cluster.md' : `cluster-${SUBSCRIBERS}-subscribers.md`;
    mkdirSync(new URL('results/', import.meta.url), { recursive: true });
    writeFileSync(new URL(`results/${file}`, import.meta.url), `${markdown}\n`);
    console.info(`bench: wrote bench/results/${file}`);
  }
}

const interrupted = (signal: NodeJS.Signals) => {
  console.error(`bench: ${signal}: stopping everything`);
  void cleanUp().finally(() => process.exit(1));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);

main().then(
  async () => {
    await cleanUp();
    process.exit(0);
  },
  async (error: unknown) => {
    console.error('bench failed:', error);
    await cleanUp();
    process.exit(1);
  },
);
