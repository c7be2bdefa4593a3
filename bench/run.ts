/**
 * `npm run bench`: Herald beside two references — plain GraphQL Yoga
 * (bench/reference/yoga.ts) and Mercurius (bench/reference/mercurius.ts) — in one run, on
 * one Redis, with the same load clients, the same publishing driver and the same token
 * handling (see bench/README.md for why each is built as it is).
 *
 * Every system runs compiled, as production runs (Herald `node dist/main.js`, each
 * reference from dist-bench/), as two processes: one holds the subscriptions, one takes
 * the mutations. Lean load clients (bench/load-client.ts) speak graphql-transport-ws;
 * a publishing driver (bench/publisher.ts) sends `sendNotification(…) { receivedUsers }`
 * open-loop at a scheduled rate or closed-loop at a concurrency; server CPU and RSS come
 * from /proc. Prints one table and writes bench/results/latest.json and latest.md.
 *
 *   npm run bench                    # the full run (about 12 minutes on 2 cores)
 *   BENCH_SCALE=0.25 npm run bench   # a quick, smaller run
 *   BENCH_ONLY=fanout,steadyMany npm run bench   # some scenarios only
 *   BENCH_SYSTEMS=herald,yoga npm run bench      # some systems only
 *   BENCH_PORT=4800 npm run bench                # servers on other ports (another run beside it)
 *   BENCH_SYSTEMS=herald BENCH_CATEGORY=promo npm run bench   # Herald's notifications with a category
 *   BENCH_ONLY=publish BENCH_SYSTEMS=herald BENCH_PUBLISH_WORKERS=2 npm run bench   # the publish server as 2 processes
 *   BENCH_ONLY=connections BENCH_SYSTEMS=herald npm run bench   # 100,000 connections on one subscribe process
 */
import { execFileSync, execSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, setPriority, totalmem } from 'node:os';
import jwt from 'jsonwebtoken';
import { startRedisServer, type RedisServer } from '../test/support/redis-server.js';
import type { ClientStats } from './load-client.js';
import type { SendCommand, SendReport } from './publisher.js';
import { ask, drive as driveThrough, forkHelper } from './ipc.js';
import { describeCounts, startCounting } from './counts.js';

const SCALE = Number(process.env['BENCH_SCALE'] ?? '1');
/** Rounds of each delivery scenario (`BENCH_ROUNDS`); figures are their medians. */
const ROUNDS = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? '3'));
/**
 * `BENCH_PROFILE=1` runs Herald alone (with BENCH_ONLY, the scenarios it names) and
 * writes V8 CPU profiles of its processes to bench/results/profiles/.
 */
const PROFILE = process.env['BENCH_PROFILE'] === '1';
/**
 * `BENCH_COUNT=1` counts, in every counted round of a delivery row (steady and at
 * capacity: how many notifications a script call or a wake-up carries), each server process's
 * system calls by kind and context switches (`perf stat`) and Redis' commands by name,
 * and prints them per notification (bench/counts.ts). `perf` must be installed.
 */
const COUNT = process.env['BENCH_COUNT'] === '1';
const SCENARIOS = ['idle', 'publish', 'fanout', 'many', 'steadyMany', 'halfFanout', 'halfMany', 'connections'] as const;
/**
 * `BENCH_ONLY=fanout,steadyMany` runs only those scenarios (see `SCENARIOS`) and writes
 * no latest.* files (the connections scenario at full scale still writes its own).
 */
const ONLY = process.env['BENCH_ONLY'] ? new Set(process.env['BENCH_ONLY'].split(',').map((name) => name.trim())) : undefined;
const wanted = (scenario: (typeof SCENARIOS)[number]): boolean => ONLY === undefined || ONLY.has(scenario);
/** `BENCH_SYSTEMS=herald` measures Herald alone (no ratios); `reference` names both references. */
const SYSTEMS = new Set(
  (process.env['BENCH_SYSTEMS'] ?? 'herald,yoga,mercurius,floor').split(',').flatMap((name) => (name.trim() === 'reference' ? ['yoga', 'mercurius'] : [name.trim()])),
);
/** Sends in flight in the closed-loop (capacity) scenarios: enough to keep every system's subscribe side busy. */
const CONCURRENCY = 32;
/**
 * The steady rate of the one-device-per-user rows, notifications per second;
 * `BENCH_STEADY_RATE` sets another (with `BENCH_COUNT`, a rate at which a shared machine
 * still handles every notification on its own, so the counts are per notification, not
 * per backlog).
 */
const STEADY_MANY_RATE = Number(process.env['BENCH_STEADY_RATE'] ?? '1000');
/**
 * A steady rate is sustained when, over a step of {@link STEP_SECONDS}, nothing is lost
 * and p99 stays within this: past it a backlog is growing (a server that keeps up answers
 * in a few ms; one that does not adds a whole step's worth of lateness).
 */
const SUSTAINED_P99_MS = 50;
const STEP_SECONDS = 3;
/** Seconds of sends in each counted round of a steady row (`BENCH_STEADY_SECONDS`, 3 by default). */
const STEADY_SECONDS = Number(process.env['BENCH_STEADY_SECONDS'] ?? '3');
if (!(STEADY_SECONDS > 0)) throw new Error(`BENCH_STEADY_SECONDS must be a number of seconds above 0, not ${process.env['BENCH_STEADY_SECONDS']}`);
/**
 * `BENCH_SUBSCRIBE_WORKERS=2` runs Herald's subscribe server as that many processes
 * (`SUBSCRIBE_WORKERS`); its CPU and RSS are then those of the whole process tree.
 */
const SUBSCRIBE_WORKERS = process.env['BENCH_SUBSCRIBE_WORKERS'] ?? '1';
/**
 * `BENCH_PUBLISH_WORKERS=2` runs Herald's publish server as that many processes
 * (`PUBLISH_WORKERS`); its CPU and RSS are then those of the whole process tree. Herald's
 * publish rates are then one machine's throughput, not one process's: they are printed
 * apart from the table, with no ratio against the references' single processes.
 */
const PUBLISH_WORKERS = process.env['BENCH_PUBLISH_WORKERS'] ?? '1';
/**
 * `BENCH_HERALD_NODE_ARGS='--max-semi-space-size=4'` starts Herald's processes with those
 * node flags (the references keep node's defaults): to measure a runtime setting.
 */
const HERALD_NODE_ARGS = (process.env['BENCH_HERALD_NODE_ARGS'] ?? '').split(' ').filter((arg) => arg !== '');
/** `BENCH_STDOUT_DIR`: where the servers' stdout is kept (see `startNode`); unset: dropped. */
const STDOUT_DIR = process.env['BENCH_STDOUT_DIR'];
/**
 * `BENCH_LATENCY_DIR`: the driver and the load clients (which read it from the
 * environment) record every open-loop round there, each delivery's latency beside its
 * send, for `bench/tail.ts` to say where a row's tail came from.
 */
const LATENCY_DIR = process.env['BENCH_LATENCY_DIR'];
if (LATENCY_DIR !== undefined) mkdirSync(LATENCY_DIR, { recursive: true });
/** Niceness of the load clients, the publishing driver and this process (`setpriority`), below the servers'. */
const LOAD_PRIORITY = 10;
const NICE = process.env['BENCH_NICE'] !== '0';
/** Quiet time before each delivery scenario, in ms. */
const SETTLE_MS = 3000;
/**
 * `BENCH_PORT=4800` moves every server's ports (Herald from it, plain Yoga from +10,
 * Mercurius from +20), so two runs on one machine (two worktrees) do not meet.
 */
const PORT = Number(process.env['BENCH_PORT'] ?? '4600');
const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const ROOT = new URL('..', import.meta.url).pathname;
const QUERY = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { text } }';
/**
 * `BENCH_CATEGORY=promo` sends every measured notification with that `category` (Herald
 * only: the references have no such argument, so it needs `BENCH_SYSTEMS=herald`): what a
 * category costs a notification (preferences read by each subscription, checked per
 * delivery, carried in the body).
 */
const CATEGORY = process.env['BENCH_CATEGORY'];
if (CATEGORY !== undefined && process.env['BENCH_SYSTEMS'] !== 'herald') throw new Error('BENCH_CATEGORY needs BENCH_SYSTEMS=herald (the references take no category)');
const categoryArgument = CATEGORY === undefined ? '' : `, category: ${JSON.stringify(CATEGORY)}`;
/** The seed's mutation, as a user copies it from the README: it waits for the count. */
const SEND_RECEIVED = `mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text${categoryArgument}) { receivedUsers } }`;
/** Herald's lighter form, answered once the notification is stored and published: an extra row. */
const SEND_ID = `mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text${categoryArgument}) { id } }`;
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE));

// ---------------------------------------------------------------- processes and /proc

const children: ChildProcess[] = [];
/** The run's own redis-server, whose CPU each round reports (`countCpu`). */
let redisPid = 0;
/** Its port, for `INFO commandstats` (`BENCH_COUNT`). */
let redisPort = 0;

function startNode(script: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[${script}] ${chunk.toString()}`));
  // `BENCH_STDOUT_DIR=/tmp/out` keeps each server's stdout in <dir>/<role>-<pid>.log (with
  // `BENCH_HERALD_NODE_ARGS=--trace-gc`, the collector's pauses); by default it is dropped.
  if (STDOUT_DIR) child.stdout?.pipe(createWriteStream(`${STDOUT_DIR}/${args[0] ?? script.replace(/\W/g, '_')}-${child.pid}.log`));
  else child.stdout?.resume();
  return child;
}

/** A process and its descendants (a subscribe server's cluster workers). */
function processTree(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return [pid, ...children.flatMap(processTree)];
}

/** System (kernel) CPU time of a process and its descendants so far, in ms. */
function systemCpuMs(pid: number): number {
  return processTree(pid).reduce((sum, member) => sum + ((statFields(member)[12] ?? 0) * 1000) / CLK_TCK, 0);
}

/** User + system CPU time of a process and its descendants so far, in ms. */
function cpuMs(pid: number): number {
  return processTree(pid).reduce((sum, member) => {
    const fields = statFields(member);
    return sum + (((fields[11] ?? 0) + (fields[12] ?? 0)) * 1000) / CLK_TCK;
  }, 0);
}

/** The numeric fields of `/proc/<pid>/stat` after the command name (utime is [11], stime [12]). */
function statFields(pid: number): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
}

/** Resident memory of a process and its descendants, in KB. */
function rssKb(pid: number): number {
  return processTree(pid).reduce((sum, member) => {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${member}/status`, 'utf8'));
    return sum + Number(match?.[1] ?? 0);
  }, 0);
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
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

/**
 * Compiles what the systems run, as production runs it: Herald with `npm run build`
 * (dist/), the references into dist-bench/reference/ (two levels below the root, as
 * bench/reference/ is, so their `../../schema.graphql` is the same file). tsx would cost every process ~30 MB of RSS
 * and a loader thread that none of them has in production.
 */
function build(): void {
  console.info('bench: compiling Herald (npm run build) and the references (dist-bench/)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  mkdirSync(new URL('../dist-bench/', import.meta.url), { recursive: true });
  writeFileSync(
    new URL('../dist-bench/tsconfig.json', import.meta.url),
    JSON.stringify({
      extends: '../tsconfig.json',
      compilerOptions: { noEmit: false, rootDir: '../bench', outDir: '.', declaration: false, sourceMap: false },
      include: ['../bench/reference/*.ts'],
    }),
  );
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'dist-bench/tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
}

type SystemName = 'herald' | 'yoga' | 'mercurius' | 'floor';
const TITLES: Record<SystemName, string> = { herald: 'Herald', yoga: 'plain Yoga', mercurius: 'Mercurius', floor: 'floor' };
const REFERENCES = ['yoga', 'mercurius'] as const;
/**
 * bench/reference/floor.ts — `node:http`, one PUBLISH and `ws`, no GraphQL — runs in a
 * column of its own (leave `floor` out of `BENCH_SYSTEMS` to skip it): the least any
 * system of this shape costs here. It is never a reference: ratios stay against Yoga and
 * Mercurius, and a target shows the floor's own ratio beside Herald's.
 */
const FLOOR = SYSTEMS.has('floor');

interface System {
  readonly name: SystemName;
  readonly wsUrl: string;
  /** Where mutations go (the second process). */
  readonly publishUrl: string;
  /** Processes whose CPU counts as the server's: both of them. */
  readonly pids: number[];
  /** The process that holds the connections (RSS per connection). */
  readonly connectionPid: number;
  /** A publisher's token (scope `notifications:publish`). */
  readonly serviceToken: string;
  token(user: string): string;
  /**
   * Starts another connection-holding process of this system, as its own was started,
   * on the same Redis (so the system's publish process reaches it) and ports of its own:
   * the idle row measures each round on a fresh one.
   */
  freshHolder(): Promise<Holder>;
}

/** A connection-holding process started for one round of the idle row. */
interface Holder {
  readonly wsUrl: string;
  readonly pid: number;
  /** SIGTERMs it and waits for it to exit. */
  stop(): Promise<void>;
}

/** Ports of the idle row's fresh connection-holding processes: `PORT + HOLDER_PORTS` on. */
const HOLDER_PORTS = 40;

/** A {@link Holder} of a process just started, once `readyUrl` answers. */
async function holder(child: ChildProcess, wsUrl: string, readyUrl: string): Promise<Holder> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  try {
    await waitReady(readyUrl);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    wsUrl,
    pid: child.pid ?? 0,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const sign = (claims: object) => jwt.sign(claims, SECRET, { algorithm: 'HS256', expiresIn: 3600 });
/** The one tenant (company) of every token in the run: a COMPANY notification to it reaches every bench user. */
const TENANT = 'acme';
const serviceToken = sign({ sub: 'bench', tenant: TENANT, scope: 'notifications:publish' });
const userToken = (user: string) => sign({ sub: user, tenant: TENANT });

async function startHerald(redis: RedisServer): Promise<System> {
  const env = {
    REDIS_URL: redis.url,
    JWT_SECRET: SECRET,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    CHANNEL_PREFIX: 'bench',
    SUBSCRIBE_PORT: String(PORT),
    PUBLISH_PORT: String(PORT + 1),
    GRPC_PORT: String(PORT + 2),
    PUBLISH_GRPC_PORT: String(PORT + 3),
    KEEPALIVE_MS: '600000',
    HISTORY_MAX_LENGTH: '100',
  };
  const nodeArgs = [...HERALD_NODE_ARGS, ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir=bench/results/profiles'] : [])];
  const subscribe = startNode('dist/main.js', ['subscribe'], { ...env, SUBSCRIBE_WORKERS }, nodeArgs);
  const publish = startNode('dist/main.js', ['publish'], { ...env, PUBLISH_WORKERS }, nodeArgs);
  await waitReady(`http://127.0.0.1:${PORT}/readyz`);
  await waitReady(`http://127.0.0.1:${PORT + 1}/readyz`);
  const holderPort = PORT + HOLDER_PORTS;
  return {
    name: 'herald',
    wsUrl: `ws://127.0.0.1:${PORT}/graphql`,
    publishUrl: `http://127.0.0.1:${PORT + 1}/graphql`,
    pids: [subscribe.pid ?? 0, publish.pid ?? 0],
    connectionPid: subscribe.pid ?? 0,
    serviceToken,
    token: userToken,
    freshHolder: () =>
      holder(
        startNode('dist/main.js', ['subscribe'], { ...env, SUBSCRIBE_WORKERS, SUBSCRIBE_PORT: String(holderPort), GRPC_PORT: String(holderPort + 1) }, nodeArgs),
        `ws://127.0.0.1:${holderPort}/graphql`,
        `http://127.0.0.1:${holderPort}/readyz`,
      ),
  };
}

/** A reference as two instances of its one server: `port` holds the subscriptions, `port + 1` takes the mutations. */
async function startReference(name: 'yoga' | 'mercurius' | 'floor', redis: RedisServer, port: number): Promise<System> {
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, NODE_ENV: 'production' };
  const subscribe = startNode(`dist-bench/reference/${name}.js`, [], { ...env, PORT: String(port) });
  const publish = startNode(`dist-bench/reference/${name}.js`, [], { ...env, PORT: String(port + 1) });
  const readyUrl = (at: number) => `http://127.0.0.1:${at}/graphql?query=${encodeURIComponent('{ __typename }')}`;
  await waitReady(readyUrl(port));
  await waitReady(readyUrl(port + 1));
  const holderPort = PORT + HOLDER_PORTS + { yoga: 2, mercurius: 3, floor: 4 }[name];
  return {
    name,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    publishUrl: `http://127.0.0.1:${port + 1}/graphql`,
    pids: [subscribe.pid ?? 0, publish.pid ?? 0],
    connectionPid: subscribe.pid ?? 0,
    serviceToken,
    token: userToken,
    freshHolder: () =>
      holder(startNode(`dist-bench/reference/${name}.js`, [], { ...env, PORT: String(holderPort) }), `ws://127.0.0.1:${holderPort}/graphql`, readyUrl(holderPort)),
  };
}

/** Kept-alive connections for the driver's own sends (warm-ups, the connections scenario). */
const agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: 60_000 }); // follows the server's Keep-Alive hint (publisher.ts)

function postGraphQL(url: string, query: string, variables: object, token: string): Promise<unknown> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${token}` } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('end', () => {
          try {
            const answer = JSON.parse(Buffer.concat(chunks).toString()) as { errors?: unknown; data?: unknown };
            if (answer.errors) return reject(new Error(`${url}: ${JSON.stringify(answer.errors)}`));
            resolve(answer.data);
          } catch (error) {
            reject(new Error(`${url}: HTTP ${response.statusCode}: ${String(error)}`));
          }
        });
        response.once('error', reject);
      },
    );
    request.once('error', reject);
    request.end(body);
  });
}

// ---------------------------------------------------------------- the publishing driver

/** The publishing driver (bench/publisher.ts), forked once for the whole run. */
let publisherProcess: ChildProcess | undefined;

function publisher(): ChildProcess {
  if (publisherProcess) return publisherProcess;
  const child = forkHelper('publisher.ts');
  if (NICE && child.pid !== undefined) setPriority(child.pid, LOAD_PRIORITY);
  children.push(child);
  publisherProcess = child;
  return child;
}

/** Sends through the driver (see `ipc.ts`). */
const drive = (command: Omit<SendCommand, 'cmd'>): Promise<SendReport> => driveThrough(publisher(), command);

// ---------------------------------------------------------------- load clients

interface ClientPool {
  /** Opens `devices` connections per user, at most `inFlight` at once per client process (load-client.ts' default: 250). */
  open(system: System, users: string[], devices: number, inFlight?: number): Promise<void>;
  reset(): Promise<void>;
  /** Counts only, for polling while a scenario runs (latencies stay in the clients). */
  count(): Promise<ClientStats>;
  /** Counts and every latency, once a scenario is over. */
  stats(): Promise<ClientStats>;
  close(): Promise<void>;
  /** The load clients' process ids. */
  readonly pids: number[];
}

/**
 * `size` load client processes; with `sourceAddresses`, client n makes every connection
 * from `sourceAddresses[n % length]` (see `localAddress` in load-client.ts).
 */
async function clientPool(size: number, sourceAddresses: readonly string[] = []): Promise<ClientPool> {
  const clients = Array.from({ length: size }, () => {
    const client = forkHelper('load-client.ts');
    // Load generators stand in for other machines: they yield the cores to the servers.
    if (NICE && client.pid !== undefined) setPriority(client.pid, LOAD_PRIORITY);
    return client;
  });
  const gather = async (cmd: 'count' | 'stats'): Promise<ClientStats> => {
    const all = await Promise.all(clients.map((client) => ask<ClientStats>(client, { cmd }, cmd)));
    return {
      received: all.reduce((sum, stats) => sum + stats.received, 0),
      minPerConnection: Math.min(...all.map((stats) => stats.minPerConnection)),
      maxPerConnection: Math.max(...all.map((stats) => stats.maxPerConnection)),
      reached: all.reduce((total, stats) => total + stats.reached, 0),
      latenciesMs: all.flatMap((stats) => stats.latenciesMs),
      lastAt: Math.max(...all.map((stats) => stats.lastAt)),
      closedUnexpectedly: all.reduce((sum, stats) => sum + stats.closedUnexpectedly, 0),
    };
  };
  return {
    pids: clients.map((client) => client.pid ?? 0),
    async open(system, users, devices, inFlight) {
      const connections = users.flatMap((user) => {
        const token = system.token(user);
        return Array.from({ length: devices }, () => ({ user, token }));
      });
      // Dealt out in turn, so each user's devices are spread over every client process and
      // one event's deliveries are read in parallel.
      await Promise.all(
        clients.map((client, n) => {
          const localAddress = sourceAddresses.length === 0 ? undefined : sourceAddresses[n % sourceAddresses.length];
          const mine = connections.filter((_, index) => index % clients.length === n);
          const options = { ...(localAddress === undefined ? {} : { localAddress }), ...(inFlight === undefined ? {} : { inFlight }) };
          return ask(client, { cmd: 'open', url: system.wsUrl, connections: mine, query: QUERY, ...options }, 'opened');
        }),
      );
    },
    async reset() {
      await Promise.all(clients.map((client) => ask(client, { cmd: 'reset' }, 'reset')));
    },
    count: () => gather('count'),
    stats: () => gather('stats'),
    async close() {
      await Promise.all(clients.map((client) => ask(client, { cmd: 'close' }, 'closed').catch(() => undefined)));
    },
  };
}

/** Runs `work` with at most `limit` in flight. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Publishes warm-ups until every connection has received one: every subscription is live. */
async function warmUp(system: System, pool: ClientPool, users: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    await inParallel(users, 32, async (to) => void (await postGraphQL(system.publishUrl, SEND_ID, { to, text: 'warm-up' }, system.serviceToken)));
    await sleep(200);
    if ((await pool.count()).minPerConnection >= 1) break;
    if (Date.now() > deadline) throw new Error(`${system.name}: not every connection is subscribed after 60 s`);
  }
  await pool.reset();
}

// ---------------------------------------------------------------- scenarios

interface DeliveryResult {
  deliveries: number;
  lost: number;
  cpuUsPerDelivery: number;
  deliveriesPerSecond: number;
  p50: number;
  p99: number;
  max: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

/** One shape of load: who is subscribed, and how the driver publishes. */
interface Shape {
  users: number;
  devices: number;
  /** Prefix of the user names, so no scenario hears another's notifications. */
  prefix: string;
}

/** How a round publishes: closed loop (`concurrency`, `perUser` each) or open loop (`ratePerSecond` for `seconds`). */
type Load = { concurrency: number; perUser: number } | { ratePerSecond: number; seconds: number };

/** Connections of `shape` held open on `system`, every subscription proven live. */
interface Audience {
  readonly system: System;
  readonly shape: Shape;
  readonly users: string[];
  readonly pool: ClientPool;
  /** Publishes one round of `load` with `query` and measures what arrived. */
  round(load: Load, query?: string, quiet?: boolean): Promise<DeliveryResult>;
  close(): Promise<void>;
}

async function openAudience(system: System, shape: Shape): Promise<Audience> {
  const users = Array.from({ length: shape.users }, (_, n) => `${shape.prefix}${n}`);
  const pool = await clientPool(2);
  await pool.open(system, users, shape.devices);
  await warmUp(system, pool, users);
  // Quiet again before measuring: opening thousands of connections is not what the rounds measure.
  await sleep(SETTLE_MS);
  return {
    system,
    shape,
    users,
    pool,
    async round(load, query = SEND_RECEIVED, quiet = false) {
      await pool.reset();
      const sends = 'perUser' in load ? users.length * load.perUser : Math.max(1, Math.round(load.ratePerSecond * load.seconds));
      // Users in turn, so every send of a round goes to a different user than the last.
      const targets = Array.from({ length: sends }, (_, n) => users[n % users.length] as string);
      const counting =
        COUNT && !quiet
          ? await startCounting(Object.fromEntries(system.pids.map((pid, n) => [n === 0 ? 'sub' : 'pub', pid])), redisPort)
          : undefined;
      const cpu = countCpu(system, pool);
      const started = now();
      await drive({
        url: system.publishUrl,
        token: system.serviceToken,
        query,
        targets,
        ...('perUser' in load ? { concurrency: load.concurrency } : { ratePerSecond: load.ratePerSecond }),
        label: `${system.name} ${query === SEND_ID ? '{ id }' : '{ receivedUsers }'}${quiet ? ' (not counted)' : ''}`,
      });
      const expected = sends * shape.devices;
      let counted = await pool.count();
      const deadline = Date.now() + 60_000;
      while (counted.received < expected && Date.now() < deadline) {
        await sleep(50);
        counted = await pool.count();
      }
      const { serversMs, shares } = cpu(now() - started);
      if (counting) console.info(describeCounts(system.name, await counting(), sends));
      const stats = await pool.stats();
      // Up to the last delivery, as the clients saw it, not to when polling noticed it.
      const elapsed = (stats.lastAt || now()) - started;
      const sorted = stats.latenciesMs.sort((a, b) => a - b);
      const result: DeliveryResult = {
        deliveries: stats.received,
        lost: expected - stats.received,
        cpuUsPerDelivery: (serversMs * 1000) / Math.max(1, stats.received),
        deliveriesPerSecond: stats.received / (elapsed / 1000),
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? NaN,
      };
      if (!quiet) {
        console.info(
          `bench:   ${system.name}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, ${Math.round(result.deliveriesPerSecond)} deliveries/s, ` +
            `${result.cpuUsPerDelivery.toFixed(1)} CPU µs/delivery, lost ${result.lost}; cores busy: ${shares}`,
        );
      }
      return result;
    },
    close: () => pool.close(),
  };
}

/** `ROUNDS` rounds of `load` (after one uncounted round), and their medians. */
async function measureRounds(audience: Audience, load: Load, query = SEND_RECEIVED): Promise<DeliveryResult> {
  // Every row is measured in steady state: first, not counted, two seconds of a steady
  // rate or one whole round of a closed loop, so that code is compiled and heaps have
  // grown (the first seconds are always the slowest). The same for every system.
  await audience.round('ratePerSecond' in load ? { ratePerSecond: load.ratePerSecond, seconds: 2 } : load, query, true);
  const rounds: DeliveryResult[] = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await audience.round(load, query));
  // The machine is shared and noisy: each figure is the median of the rounds.
  return {
    deliveries: rounds.reduce((sum, result) => sum + result.deliveries, 0),
    lost: rounds.reduce((sum, result) => sum + result.lost, 0),
    cpuUsPerDelivery: median(rounds.map((result) => result.cpuUsPerDelivery)),
    deliveriesPerSecond: median(rounds.map((result) => result.deliveriesPerSecond)),
    p50: median(rounds.map((result) => result.p50)),
    p99: median(rounds.map((result) => result.p99)),
    max: median(rounds.map((result) => result.max)),
  };
}

/**
 * Herald's highest steady rate in `audience`'s shape, events per second: open-loop steps
 * of {@link STEP_SECONDS}, up by a quarter while a step is sustained (nothing lost, p99
 * within {@link SUSTAINED_P99_MS}), down by a fifth from `start` if the first is not.
 */
async function highestSteadyRate(audience: Audience, start: number): Promise<number> {
  await audience.round({ ratePerSecond: start, seconds: 2 }, SEND_RECEIVED, true);
  const sustains = async (rate: number) => {
    const result = await audience.round({ ratePerSecond: rate, seconds: STEP_SECONDS }, SEND_RECEIVED, true);
    const ok = result.lost === 0 && result.p99 <= SUSTAINED_P99_MS;
    console.info(`bench:   herald at ${Math.round(rate)} events/s: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, lost ${result.lost}: ${ok ? 'sustained' : 'not sustained'}`);
    await sleep(1000);
    return ok;
  };
  let rate = start;
  if (await sustains(rate)) {
    for (let step = 0; step < 8 && (await sustains(rate * 1.25)); step++) rate *= 1.25;
    return Math.round(rate);
  }
  for (let step = 0; step < 8; step++) {
    rate *= 0.8;
    if (await sustains(rate)) return Math.round(rate);
  }
  return Math.round(rate);
}

/**
 * Starts counting the CPU time of every process in the run: the system's servers, Redis,
 * the load clients, the publishing driver and this process. The function it returns reads
 * them all at once: the servers' total in ms, and each process's share of a core over
 * `elapsedMs` (to show what the shared cores were doing).
 */
function countCpu(system: System, pool: ClientPool): (elapsedMs: number) => { serversMs: number; shares: string } {
  const processes: Array<[string, number]> = [
    ...system.pids.map((pid, n): [string, number] => [`${system.name} ${n === 0 ? 'sub' : 'pub'}`, pid]),
    ['redis', redisPid],
    ...pool.pids.map((pid, n): [string, number] => [`client ${n + 1}`, pid]),
    ['publisher', publisher().pid ?? 0],
  ];
  const before = processes.map(([, pid]) => cpuMs(pid));
  const serversSystemBefore = system.pids.map(systemCpuMs);
  const driverBefore = process.cpuUsage();
  return (elapsedMs) => {
    const used = processes.map(([, pid], n) => cpuMs(pid) - (before[n] ?? 0));
    // A server's kernel share beside its total: system calls and wake-ups against JavaScript.
    const kernel = system.pids.map((pid, n) => systemCpuMs(pid) - (serversSystemBefore[n] ?? 0));
    const driver = process.cpuUsage(driverBefore);
    const shares = processes.map(
      ([name], n) => `${name} ${((used[n] ?? 0) / elapsedMs).toFixed(2)}${n < kernel.length ? ` (kernel ${((kernel[n] ?? 0) / elapsedMs).toFixed(2)})` : ''}`,
    );
    shares.push(`run.ts ${((driver.user + driver.system) / 1000 / elapsedMs).toFixed(2)}`);
    return { serversMs: used.slice(0, system.pids.length).reduce((sum, ms) => sum + ms, 0), shares: shares.join(', ') };
  };
}

/** RSS a connection-holding process gains per idle subscribed connection, in KB: the median of `ROUNDS` rounds, each on a fresh process. */
async function idleRss(system: System, connections: number): Promise<number> {
  const users = Array.from({ length: connections }, (_, n) => `idle${n}`);
  const perConnection: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const fresh = await system.freshHolder();
    const pool = await clientPool(2);
    try {
      await sleep(1000);
      const before = rssKb(fresh.pid);
      await pool.open({ ...system, wsUrl: fresh.wsUrl }, users, 1);
      await warmUp(system, pool, users);
      await sleep(2000);
      perConnection.push((rssKb(fresh.pid) - before) / connections);
    } finally {
      await pool.close();
      await fresh.stop();
      await sleep(1000);
    }
  }
  console.info(`bench: ${system.name}: ${perConnection.map((kb) => kb.toFixed(1)).join(', ')} KB per idle connection`);
  return median(perConnection);
}

// ---------------------------------------------------------------- many connections

/**
 * Descriptors a process may open during the scenario besides its connections and what it
 * holds before it (listening sockets, Redis, epoll, pipes: `/proc/<pid>/fd`).
 */
const FILE_MARGIN = 256;
/**
 * Connections one load client process makes in the connections scenario, all from one
 * source address of its own: well inside that address's ~28,000 ephemeral ports toward
 * the server's one port (`net.ipv4.ip_local_port_range`, 32768–60999 here), and under the
 * 20,000 open files a process gets without root.
 */
const CONNECTIONS_PER_CLIENT = 12_500;
/**
 * Connections being opened at once in the connections scenario, across every load client:
 * under the subscribe server's listen backlog (Node's default, 511), so the kernel never
 * drops a handshake (a dropped one is retried after 1 s, then 3, 7…), and few enough that
 * each `connection_init` is read within `CONNECTION_INIT_TIMEOUT_MS` (3 s) of its upgrade.
 */
const OPENING_AT_ONCE = 400;

/** A process's open-file limit (`RLIMIT_NOFILE`), from `/proc/<pid>/limits`. */
function fileLimit(pid: number): { soft: number; hard: number } {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const read = (value: string | undefined) => (value === undefined || value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value));
  return { soft: read(match?.[1]), hard: read(match?.[2]) };
}

/** Descriptors a process holds now. */
const filesOpen = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/**
 * Whether this process has CAP_SYS_RESOURCE (bit 24 of `CapEff` in `/proc/self/status`),
 * which raising a hard limit needs. Root usually has it; a container may withhold it, and
 * then root is refused like anyone else.
 */
function hasSysResource(): boolean {
  const match = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match !== null && (BigInt(`0x${match[1] ?? '0'}`) & (1n << 24n)) !== 0n;
}

/**
 * Raises the open-file limit of a running process (soft, and hard where it is lower) to
 * `files`, with util-linux' `prlimit --pid` (Node has no `setrlimit`; the kernel lets one
 * process set another's limits, `prlimit(2)`; prlimit is forked by this process, so it has
 * this process's capabilities). Above the hard limit (20,000 on this machine) that needs
 * CAP_SYS_RESOURCE, and it stops at `fs.nr_open`. It acts at once: the kernel checks the
 * limit at each `accept` and `socket`. Never lowers a limit. Returns the soft limit the
 * process has afterwards and, when it could not be raised, why.
 */
function raiseFileLimit(pid: number, files: number): { files: number; refused?: string } {
  const before = fileLimit(pid);
  if (before.soft >= files) return { files: before.soft };
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${files}:${Math.max(files, before.hard)}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    const why = hasSysResource()
      ? ''
      : ` (this run ${process.getuid?.() === 0 ? 'is root but' : 'is not root and'} lacks CAP_SYS_RESOURCE, which raising a hard limit needs)`;
    return { files: fileLimit(pid).soft, refused: `${stderr || String(error)}${why}` };
  }
  return { files: fileLimit(pid).soft };
}

/** What the connections scenario measured (printed, in the results' JSON and table). */
interface ConnectionsResult {
  /** Connections asked for: `scaled(100_000, 500)`. */
  asked: number;
  /** Connections held: `asked`, or what fits when an open-file limit could not be raised (`limitedBy`). */
  connections: number;
  /** Why fewer than `asked` were held: the refusal of `prlimit`, with the limit that held. */
  limitedBy?: string;
  /** The open-file limit of the subscribe process(es) during the scenario. */
  subscribeFileLimit: number;
  /** The load clients' source addresses, one per client process. */
  sourceAddresses: string[];
  /** From the first connect to every connection acknowledged (`connection_ack`) and its subscribe sent, in s. */
  openSeconds: number;
  /** From then to a warm-up broadcast having reached every connection (every subscription live), in s. */
  liveSeconds: number;
  /** Warm-up broadcasts sent until one reached every connection. */
  warmUps: number;
  /** Messages the connections received from the measured broadcast (after the warm-ups' counts were reset). */
  received: number;
  /** Connections the measured broadcast did not reach. */
  lost: number;
  /** Messages counted after the reset that were not the measured broadcast (a warm-up late): 0. */
  notTheBroadcast: number;
  /** The fewest and the most copies of the measured broadcast one connection received: 1 and 1 when each got it once. */
  minPerConnection: number;
  maxPerConnection: number;
  /** Connections closed by anything but the bench, from the first connect on. */
  closed: number;
  /** From the broadcast's send to the last connection receiving it, as the clients measured, in s. */
  broadcastSeconds: number;
  /** From the send to half of the connections having it, in s. */
  broadcastP50Seconds: number;
  /** The subscribe process's RSS before the first connection, with every connection subscribed and settled, and after the broadcast, in MB. */
  rssBeforeMb: number;
  rssConnectedMb: number;
  rssAfterBroadcastMb: number;
  /** (RSS connected − RSS before) ÷ connections, in KB. */
  rssPerConnectionKb: number;
}

/** One notification to the whole company: every connection of the bench's tenant hears it once. */
const BROADCAST = `mutation B($to: String!, $text: String!) { sendNotification(to: $to, text: $text, audience: COMPANY${categoryArgument}) { id } }`;

/** Polls the pool until `done` holds or its count has stopped moving for `stillMs`; the last count. */
async function countUntil(pool: ClientPool, done: (stats: ClientStats) => boolean, stillMs: number, limitMs: number): Promise<ClientStats> {
  const deadline = Date.now() + limitMs;
  let counted = await pool.count();
  let moved = Date.now();
  while (!done(counted) && Date.now() - moved < stillMs && Date.now() < deadline) {
    await sleep(100);
    const next = await pool.count();
    if (next.received !== counted.received) moved = Date.now();
    counted = next;
  }
  return counted;
}

/**
 * Herald only: `asked` idle subscribed connections on one subscribe process, every one a
 * user of the bench's tenant, from several source addresses (`CONNECTIONS_PER_CLIENT` a
 * load client and an address); then one COMPANY notification, which must reach each
 * connection exactly once. Open-file limits are raised for the processes that hold the
 * connections (`raiseFileLimit`); where one cannot be, the scenario holds what fits and
 * says so. Redis holds one subscriber connection per subscribe process, so its own limit
 * does not matter here.
 */
async function manyConnections(herald: System, asked: number): Promise<ConnectionsResult> {
  const clientCount = Math.max(2, Math.ceil(asked / CONNECTIONS_PER_CLIENT));
  const sourceAddresses = Array.from({ length: clientCount }, (_, n) => `127.0.0.${n + 2}`);
  const pool = await clientPool(clientCount, sourceAddresses);
  try {
    const refusals: string[] = [];
    /**
     * Raises the limit of each of `holders` (processes that share `connections` evenly)
     * and returns the least limit and how many connections they can hold under it.
     */
    const room = (holders: number[], connections: number, who: string): { limit: number; fits: number } => {
      const share = Math.ceil(connections / holders.length);
      const each = holders.map((pid) => {
        const open = filesOpen(pid);
        const raised = raiseFileLimit(pid, share + open + FILE_MARGIN);
        if (raised.refused !== undefined) refusals.push(`${who} (pid ${pid}) stays at ${raised.files} open files: ${raised.refused}`);
        return { limit: raised.files, fits: raised.files - open - FILE_MARGIN };
      });
      return { limit: Math.min(...each.map((one) => one.limit)), fits: Math.min(...each.map((one) => one.fits)) * holders.length };
    };
    // The subscribe process; with SUBSCRIBE_WORKERS, its workers hold the connections (the
    // primary only hands each on) and share them round robin.
    const tree = processTree(herald.connectionPid);
    const subscribe = room(tree.length > 1 ? tree.slice(1) : tree, asked, tree.length > 1 ? 'a subscribe worker' : 'the subscribe process');
    if (tree.length > 1) raiseFileLimit(herald.connectionPid, Math.ceil(asked / (tree.length - 1)) + filesOpen(herald.connectionPid) + FILE_MARGIN);
    const clients = room(pool.pids, asked, 'a load client');
    const connections = Math.min(asked, subscribe.fits, clients.fits);
    const limitedBy = connections < asked ? `${[...new Set(refusals.map((refusal) => refusal.replace(/ \(pid \d+\)/, '')))].join('; ')}: ${connections} connections fit, not ${asked}` : undefined;
    if (limitedBy !== undefined) console.warn(`bench: herald: the open-file limit could not be raised: ${limitedBy}`);
    const users = Array.from({ length: connections }, (_, n) => `m${n}`);

    await sleep(1000);
    const rssBefore = rssKb(herald.connectionPid);
    const opening = now();
    await pool.open(herald, users, 1, Math.max(1, Math.floor(OPENING_AT_ONCE / clientCount)));
    const opened = now();
    console.info(`bench: herald:   ${connections} connections open in ${((opened - opening) / 1000).toFixed(1)} s; warm-up broadcasts until every subscription is live`);

    // Live: a COMPANY warm-up reached every connection. One that stops short (a subscription
    // not yet joined when it was published) is followed by another.
    const liveDeadline = Date.now() + 300_000;
    let warmUps = 0;
    for (;;) {
      warmUps += 1;
      await postGraphQL(herald.publishUrl, BROADCAST, { to: TENANT, text: 'warm-up' }, herald.serviceToken);
      const counted = await countUntil(pool, (stats) => stats.minPerConnection >= 1, 2000, 120_000);
      if (counted.minPerConnection >= 1) break;
      if (Date.now() > liveDeadline) throw new Error(`herald: not every connection received a warm-up broadcast in 300 s (${counted.received} messages)`);
    }
    const live = now();
    // Every warm-up delivered (nothing has arrived for 2 s), then the counts start again:
    // a warm-up still on its way would show as a second copy (maxPerConnection 2).
    await countUntil(pool, () => false, 2000, 60_000);
    await pool.reset();
    await sleep(2000);
    const rssConnected = rssKb(herald.connectionPid);
    console.info(
      `bench: herald:   every subscription live after ${warmUps} warm-up broadcast(s), ${((live - opened) / 1000).toFixed(1)} s; ` +
        `subscribe RSS ${(rssBefore / 1024).toFixed(0)} → ${(rssConnected / 1024).toFixed(0)} MB; one COMPANY broadcast`,
    );

    const started = now();
    await postGraphQL(herald.publishUrl, BROADCAST, { to: TENANT, text: String(started) }, herald.serviceToken);
    await countUntil(pool, (stats) => stats.received >= connections, 10_000, 120_000);
    // A second copy to any connection would come right behind the first.
    await sleep(1000);
    const stats = await pool.stats();
    // The measured broadcast's text is its send time; a warm-up's is not a number, so it has no latency.
    const arrivals = stats.latenciesMs.sort((a, b) => a - b);
    const rssAfterBroadcast = rssKb(herald.connectionPid);
    return {
      asked,
      connections,
      ...(limitedBy === undefined ? {} : { limitedBy }),
      subscribeFileLimit: subscribe.limit,
      sourceAddresses,
      openSeconds: (opened - opening) / 1000,
      liveSeconds: (live - opened) / 1000,
      warmUps,
      received: stats.received,
      lost: connections - stats.reached,
      notTheBroadcast: stats.received - arrivals.length,
      minPerConnection: stats.minPerConnection,
      maxPerConnection: stats.maxPerConnection,
      closed: stats.closedUnexpectedly,
      broadcastSeconds: ((stats.lastAt || now()) - started) / 1000,
      broadcastP50Seconds: percentile(arrivals, 50) / 1000,
      rssBeforeMb: rssBefore / 1024,
      rssConnectedMb: rssConnected / 1024,
      rssAfterBroadcastMb: rssAfterBroadcast / 1024,
      rssPerConnectionKb: (rssConnected - rssBefore) / connections,
    };
  } finally {
    await pool.close();
  }
}

// ---------------------------------------------------------------- the table

type Better = 'lower' | 'higher';
type Values = Partial<Record<SystemName, number>>;

interface Row {
  label: string;
  better: Better;
  digits: number;
  values: Values;
}

/** The better of the references that ran, for `better`: its name, or undefined when none ran. */
function bestReference(values: Values, better: Better): SystemName | undefined {
  const ran = REFERENCES.filter((name) => values[name] !== undefined && Number.isFinite(values[name]));
  if (ran.length === 0) return undefined;
  return ran.reduce((best, name) => {
    const value = values[name] as number;
    const bestValue = values[best] as number;
    return (better === 'lower' ? value < bestValue : value > bestValue) ? name : best;
  });
}

function ratio(values: Values, better: Better): number | undefined {
  const best = bestReference(values, better);
  const herald = values.herald;
  return best === undefined || herald === undefined ? undefined : herald / (values[best] as number);
}

function renderRow(row: Row): string {
  const cell = (name: SystemName) => (row.values[name] === undefined ? '—' : (row.values[name] as number).toFixed(row.digits));
  const best = bestReference(row.values, row.better);
  const r = ratio(row.values, row.better);
  const floor = FLOOR ? ` ${cell('floor')} |` : '';
  return `| ${row.label} (${row.better} is better) | ${cell('herald')} | ${cell('yoga')} | ${cell('mercurius')} |${floor} ${best ? TITLES[best] : '—'} | ${r === undefined ? '—' : r.toFixed(2)} |`;
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  build();
  const redis = await startRedisServer();
  redisPid = redis.pid;
  redisPort = redis.port;
  const results: Record<string, unknown> = {
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    date: new Date().toISOString(),
    scale: SCALE,
    rounds: ROUNDS,
  };
  try {
    const all: SystemName[] = PROFILE ? ['herald'] : ['herald', ...REFERENCES, 'floor'];
    const names = all.filter((name) => PROFILE || SYSTEMS.has(name));
    const systems: System[] = [];
    for (const name of names) {
      systems.push(name === 'herald' ? await startHerald(redis) : await startReference(name, redis, { yoga: PORT + 10, mercurius: PORT + 20, floor: PORT + 30 }[name]));
    }
    const herald = systems.find((system) => system.name === 'herald');
    // The driver yields too, once Redis and the servers have started at normal priority.
    if (NICE) setPriority(LOAD_PRIORITY);
    const rows: Row[] = [];
    /** Herald's publish rates with `BENCH_PUBLISH_WORKERS`: throughput per machine, apart from the ratios. */
    const perMachine: string[] = [];
    const row = (label: string, values: Values, digits = 1, better: Better = 'lower') => {
      if (Object.keys(values).length > 0) rows.push({ label, better, digits, values });
    };
    const targets: string[] = [];
    /** A target: against the better reference (`maxRatio`/`minRatio`) or absolute (`under`). */
    const target = (text: string, values: Values, better: Better, check: { maxRatio?: number; minRatio?: number; under?: number }) => {
      const herald = values.herald;
      const best = bestReference(values, better);
      const r = ratio(values, better);
      let met: boolean | undefined;
      let figure = herald === undefined ? 'not measured' : `Herald ${herald.toFixed(2)}`;
      if (check.under !== undefined && herald !== undefined) met = herald < check.under;
      if (check.maxRatio !== undefined || check.minRatio !== undefined) {
        if (r === undefined || best === undefined) met = undefined;
        else {
          figure += ` vs ${TITLES[best]} ${(values[best] as number).toFixed(2)} (${r.toFixed(2)}×)`;
          // How far the stack itself goes: a target beyond the floor's ratio is beyond any implementation on it.
          if (values.floor !== undefined) figure += `; the floor ${values.floor.toFixed(2)} (${(values.floor / (values[best] as number)).toFixed(2)}×)`;
          met = check.maxRatio !== undefined ? r <= check.maxRatio : r >= (check.minRatio as number);
        }
      }
      targets.push(`- ${text}: ${figure} — **${met === undefined ? 'not measured' : met ? 'met' : 'not met'}**`);
    };
    const each = async (run: (system: System) => Promise<number | undefined>): Promise<Values> => {
      const values: Values = {};
      for (const system of systems) {
        const value = await run(system);
        if (value !== undefined) values[system.name] = value;
      }
      return values;
    };

    // RSS before any connection, on fresh processes.
    await sleep(2000);
    const startRss = await each(async (system) => rssKb(system.connectionPid) / 1024);
    results['rssBeforeMb'] = startRss;
    row('RSS before any connection, MB (the connection-holding process)', startRss, 0);

    // Idle memory next, before other scenarios leave garbage behind.
    const idleConnections = scaled(5000, 200);
    if (wanted('idle')) {
      const idle = await each(async (system) => {
        console.info(`bench: ${system.name}: ${idleConnections} idle connections`);
        return idleRss(system, idleConnections);
      });
      results['idle'] = idle;
      row(`idle RSS per subscribed connection, KB (${idleConnections})`, idle);
      target('Idle RSS per subscribed connection ≤ 0.5× the better reference', idle, 'lower', { maxRatio: 0.5 });
    }

    // Publishing, while every system is quiet (no connections).
    if (wanted('publish') && !PROFILE) {
      await sleep(2000);
      const seconds = 5 * Math.min(1, SCALE * 2);
      const rate = async (system: System, query: string) => {
        const load = { url: system.publishUrl, token: system.serviceToken, query, targets: ['nobody'], concurrency: CONCURRENCY };
        // Unmeasured first, as long as a round: each system's compiler and heap settle
        // (a server serves for hours; the first seconds of a process say how it starts).
        await drive({ ...load, seconds });
        const rates: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const report = await drive({ ...load, seconds });
          rates.push(report.accepted / (report.elapsedMs / 1000));
        }
        console.info(`bench: ${system.name}: ${rates.map((perSecond) => perSecond.toFixed(0)).join(', ')} mutations/s`);
        return median(rates);
      };
      const single = await each(async (system) => {
        console.info(`bench: ${system.name}: single mutations, ${CONCURRENCY} in flight`);
        return rate(system, SEND_RECEIVED);
      });
      // With several publish processes, Herald's rate is the machine's: listed apart, the references' rows keep theirs.
      const publishRow = (label: string, values: Values): void => {
        const { herald: machine, ...references } = values;
        if (PUBLISH_WORKERS === '1' || machine === undefined) return row(label, values, 0, 'higher');
        perMachine.push(`- ${label}: Herald ${machine.toFixed(0)}`);
        row(label, references, 0, 'higher');
      };
      publishRow(`single mutations / s at concurrency ${CONCURRENCY}, { receivedUsers }`, single);
      // A ratio against one process's references means nothing for the machine's rate.
      if (PUBLISH_WORKERS === '1') target('Single mutations per second with { receivedUsers } ≥ 1.3× the better reference', single, 'higher', { minRatio: 1.3 });
      const publish: Record<string, Values> = { single };
      if (herald) {
        const heraldId = await rate(herald, SEND_ID);
        publish['heraldId'] = { herald: heraldId };
        publishRow(`single mutations / s at concurrency ${CONCURRENCY}, Herald { id } vs the references' { receivedUsers }`, { ...single, herald: heraldId });
        // Herald's batch mutation, 500 a call, 4 in flight: an earlier issue's target (≥ 5× a reference's single mutations).
        const batchSize = 500;
        let accepted = 0;
        const started = now();
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (now() < started + seconds * 1000) {
              const batch = Array.from({ length: batchSize }, (_, n) => ({ to: `nobody${n}`, text: 'x' }));
              await postGraphQL(herald.publishUrl, 'mutation B($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }', { n: batch }, herald.serviceToken);
              accepted += batchSize;
            }
          }),
        );
        publish['heraldBatch'] = { herald: accepted / ((now() - started) / 1000) };
        publishRow('notifications accepted / s, Herald sendNotifications batch (500) vs the references\' single mutations', { ...single, herald: accepted / ((now() - started) / 1000) });
      }
      results['publish'] = publish;
    }

    const measured: Record<string, Record<string, DeliveryResult>> = {};
    results['measured'] = measured;
    const record = (scenario: string, system: System, result: DeliveryResult) => {
      measured[scenario] ??= {};
      measured[scenario][system.name] = result;
    };
    const pick = (scenario: string, get: (result: DeliveryResult) => number): Values =>
      Object.fromEntries(Object.entries(measured[scenario] ?? {}).map(([name, result]) => [name, get(result)]));
    const rates: Record<string, number> = {};
    results['steadyRates'] = rates;

    /**
     * One shape on every system in turn, Herald first: its capacity (closed loop), the
     * extra steady rows, and the steady rate of half of Herald's highest steady rate,
     * which is found on Herald's connections before the references run at it.
     */
    const shapeRuns = async (
      shape: Shape,
      saturation: { scenario: 'fanout' | 'many'; perUser: number },
      half: 'halfFanout' | 'halfMany',
      extra: (audience: Audience) => Promise<void>,
      defaultStart: number,
    ) => {
      const runSaturation = wanted(saturation.scenario);
      const runHalf = wanted(half) && herald !== undefined;
      for (const system of systems) {
        await sleep(SETTLE_MS);
        console.info(`bench: ${system.name}: ${shape.users} users × ${shape.devices} devices`);
        const audience = await openAudience(system, shape);
        try {
          if (runSaturation || (runHalf && system === herald)) {
            console.info(`bench: ${system.name}: ${saturation.scenario} at capacity (${CONCURRENCY} in flight), { receivedUsers }`);
            record(saturation.scenario, system, await measureRounds(audience, { concurrency: CONCURRENCY, perUser: saturation.perUser }));
            if (system === herald && saturation.scenario === 'fanout') {
              console.info('bench: herald: fan-out at capacity, { id }');
              record('fanoutId', system, await measureRounds(audience, { concurrency: CONCURRENCY, perUser: saturation.perUser }, SEND_ID));
            }
          }
          await extra(audience);
          if (runHalf) {
            if (system === herald) {
              const capacity = measured[saturation.scenario]?.['herald']?.deliveriesPerSecond;
              const start = capacity ? capacity / shape.devices / 2 : defaultStart;
              console.info(`bench: herald: highest steady rate, ${shape.users} × ${shape.devices}, from ${Math.round(start)} events/s`);
              rates[half] = await highestSteadyRate(audience, start);
            }
            const rate = Math.max(1, Math.round((rates[half] ?? defaultStart) / 2));
            console.info(`bench: ${system.name}: steady ${rate} events/s (half of Herald's highest steady rate)`);
            record(half, system, await measureRounds(audience, { ratePerSecond: rate, seconds: STEADY_SECONDS }));
          }
        } finally {
          await audience.close();
        }
      }
    };

    // Fan-out: 10 users × 200 devices.
    const fanout: Shape = { users: 10, devices: scaled(200, 10), prefix: 'fan' };
    if (wanted('fanout') || wanted('halfFanout')) {
      await shapeRuns(fanout, { scenario: 'fanout', perUser: scaled(100, 5) }, 'halfFanout', async () => undefined, 400);
    }
    // One device per user: 2,000 users.
    const many: Shape = { users: scaled(2000, 50), devices: 1, prefix: 'many' };
    if (wanted('many') || wanted('steadyMany') || wanted('halfMany')) {
      await shapeRuns(
        many,
        { scenario: 'many', perUser: 5 },
        'halfMany',
        async (audience) => {
          if (!wanted('steadyMany')) return;
          const load = { ratePerSecond: STEADY_MANY_RATE, seconds: STEADY_SECONDS };
          console.info(`bench: ${audience.system.name}: steady ${STEADY_MANY_RATE}/s open loop, { receivedUsers }`);
          record('steadyMany', audience.system, await measureRounds(audience, load));
          if (audience.system === herald) {
            console.info(`bench: herald: steady ${STEADY_MANY_RATE}/s open loop, { id }`);
            record('steadyManyId', audience.system, await measureRounds(audience, load, SEND_ID));
          }
        },
        4000,
      );
    }

    const fanoutLabel = `fan-out ${fanout.users} × ${fanout.devices} at capacity`;
    const manyLabel = `${many.users} users × 1 device`;
    const withId = (scenario: string, base: string, get: (result: DeliveryResult) => number): Values => ({ ...pick(base, get), ...pick(scenario, get) });
    if (measured['fanout']) {
      const cpu = pick('fanout', (result) => result.cpuUsPerDelivery);
      row(`${fanoutLabel}: server CPU µs / delivery`, cpu);
      if (measured['fanoutId']) row(`${fanoutLabel}: server CPU µs / delivery, Herald { id }`, withId('fanoutId', 'fanout', (result) => result.cpuUsPerDelivery));
      row(`${fanoutLabel}: deliveries / s`, pick('fanout', (result) => result.deliveriesPerSecond), 0, 'higher');
      target('Fan-out stays ≤ 0.2× CPU per delivery with { receivedUsers }', cpu, 'lower', { maxRatio: 0.2 });
    }
    if (measured['steadyMany']) {
      const label = `${manyLabel}, steady ${STEADY_MANY_RATE}/s open loop`;
      const cpu = pick('steadyMany', (result) => result.cpuUsPerDelivery);
      const p99 = pick('steadyMany', (result) => result.p99);
      row(`${label}: server CPU µs / delivery`, cpu);
      row(`${label}: latency p50 ms`, pick('steadyMany', (result) => result.p50), 2);
      row(`${label}: latency p99 ms`, p99, 2);
      if (measured['steadyManyId']) {
        row(`${label}: server CPU µs / delivery, Herald { id }`, withId('steadyManyId', 'steadyMany', (result) => result.cpuUsPerDelivery));
        row(`${label}: latency p99 ms, Herald { id }`, withId('steadyManyId', 'steadyMany', (result) => result.p99), 2);
      }
      target(`One device per user, steady open-loop ${STEADY_MANY_RATE}/s: server CPU per delivery ≤ 0.8×`, cpu, 'lower', { maxRatio: 0.8 });
      target(`One device per user, steady open-loop ${STEADY_MANY_RATE}/s: p99 ≤ the better reference's p99`, p99, 'lower', { maxRatio: 1 });
    }
    if (measured['many']) {
      const perSecond = pick('many', (result) => result.deliveriesPerSecond);
      row(`${manyLabel} at capacity: deliveries / s`, perSecond, 0, 'higher');
      row(`${manyLabel} at capacity: server CPU µs / delivery`, pick('many', (result) => result.cpuUsPerDelivery));
      target('One device per user at capacity: deliveries per second ≥ 1.3×', perSecond, 'higher', { minRatio: 1.3 });
    }
    for (const [scenario, shape, name] of [
      ['halfFanout', fanout, 'fan-out'],
      ['halfMany', many, 'one device per user'],
    ] as const) {
      if (!measured[scenario]) continue;
      const rate = Math.round((rates[scenario] ?? 0) / 2);
      const label = `${name}, steady ${rate} events/s = ${rate * shape.devices} deliveries/s (half of Herald's highest steady ${rates[scenario] ?? '?'}/s)`;
      const p50 = pick(scenario, (result) => result.p50);
      const p99 = pick(scenario, (result) => result.p99);
      row(`${label}: latency p50 ms`, p50, 2);
      row(`${label}: latency p99 ms`, p99, 2);
      row(`${label}: server CPU µs / delivery`, pick(scenario, (result) => result.cpuUsPerDelivery));
      target(`Latency at half of Herald's highest steady rate, ${name}: p50 < 2 ms`, p50, 'lower', { under: 2 });
      target(`Latency at half of Herald's highest steady rate, ${name}: p99 < 10 ms`, p99, 'lower', { under: 10 });
    }

    if (PROFILE) {
      console.info(JSON.stringify(measured, null, 2));
      return;
    }
    const notes: string[] = [];
    if (wanted('connections') && herald) {
      const asked = scaled(100_000, 500);
      const where = SUBSCRIBE_WORKERS === '1' ? 'one subscribe process' : `${SUBSCRIBE_WORKERS} subscribe processes`;
      console.info(`bench: herald: ${asked} idle subscribed connections on ${where}, then one COMPANY broadcast`);
      const held = await manyConnections(herald, asked);
      results['connections'] = held;
      const label = `${held.connections} idle connections on ${where}`;
      const connectionRows: Row[] = [
        { label: `${label}: RSS per connection, KB`, better: 'lower', digits: 1, values: { herald: held.rssPerConnectionKb } },
        { label: `${label}: RSS, MB`, better: 'lower', digits: 0, values: { herald: held.rssConnectedMb } },
        { label: `${label}: one COMPANY broadcast, s from the send to the last connection`, better: 'lower', digits: 2, values: { herald: held.broadcastSeconds } },
        { label: `${label}: time to open them all, s`, better: 'lower', digits: 1, values: { herald: held.openSeconds } },
      ];
      rows.push(...connectionRows);
      const addresses = `${held.sourceAddresses[0] ?? ''}–${held.sourceAddresses.at(-1) ?? ''}`;
      const once = held.minPerConnection === 1 && held.maxPerConnection === 1 && held.notTheBroadcast === 0;
      const note =
        (held.limitedBy === undefined ? '' : `**Not ${held.asked}: ${held.limitedBy}.** `) +
        `${label} (open-file limit ${held.subscribeFileLimit}; ${held.sourceAddresses.length} load clients from ${addresses}): open in ${held.openSeconds.toFixed(1)} s, ` +
        `every subscription live after ${held.warmUps} warm-up broadcast(s); one COMPANY broadcast reached ${held.connections - held.lost} ` +
        `(${once ? 'each exactly once' : `NOT once each: ${held.minPerConnection}–${held.maxPerConnection} per connection, ${held.notTheBroadcast} other messages`}), ` +
        `${held.lost} lost, ${held.closed} closed, the last ${held.broadcastSeconds.toFixed(2)} s after the send (half by ${held.broadcastP50Seconds.toFixed(2)} s); ` +
        `subscribe RSS ${held.rssBeforeMb.toFixed(0)} → ${held.rssConnectedMb.toFixed(0)} MB, ${held.rssPerConnectionKb.toFixed(1)} KB per connection (${held.rssAfterBroadcastMb.toFixed(0)} MB after the broadcast).`;
      notes.push(note);
      console.info(`bench: herald:   ${note}`);
      // The scenario is Herald's alone and measures capacity, not a ratio: a run at full
      // scale in the default configuration keeps its own files, whatever else it ran.
      if (SCALE === 1 && SUBSCRIBE_WORKERS === '1' && HERALD_NODE_ARGS.length === 0 && CATEGORY === undefined && !COUNT) {
        mkdirSync(new URL('results/', import.meta.url), { recursive: true });
        const markdown = [
          `Machine: ${String(results['machine'])}; ${String(results['date'])}.`,
          '',
          '| measure | Herald |',
          '|---|---|',
          ...connectionRows.map((row) => `| ${row.label} | ${(row.values.herald as number).toFixed(row.digits)} |`),
          '',
          note,
        ].join('\n');
        writeFileSync(new URL('results/connections.md', import.meta.url), `${markdown}\n`);
        writeFileSync(new URL('results/connections.json', import.meta.url), `${JSON.stringify({ machine: results['machine'], date: results['date'], ...held }, null, 2)}\n`);
      }
    }
    const lost = Object.entries(measured).flatMap(([scenario, bySystem]) => Object.entries(bySystem).map(([name, result]) => `${scenario} ${name}: ${result.lost}`));
    notes.push(`Lost in delivery scenarios (expected − received): ${lost.join(', ')}.`);
    results['targets'] = targets;

    const lines = [
      `Machine: ${String(results['machine'])}; ${String(results['date'])}; scale ${SCALE}; medians of ${ROUNDS} rounds per row (the connections scenario: one)` +
        `${SUBSCRIBE_WORKERS === '1' ? '' : `; ${SUBSCRIBE_WORKERS} subscribe workers`}${PUBLISH_WORKERS === '1' ? '' : `; ${PUBLISH_WORKERS} publish workers`}${ONLY ? `; only ${[...ONLY].join(', ')}` : ''}.`,
      '',
      `| measure | Herald | plain Yoga | Mercurius |${FLOOR ? ' floor (no GraphQL) |' : ''} better reference | Herald ÷ better reference |`,
      `|---|---|---|---|${FLOOR ? '---|' : ''}---|---|`,
      ...rows.map(renderRow),
      ...(perMachine.length === 0
        ? []
        : ['', `Throughput per machine: Herald's publish server as ${PUBLISH_WORKERS} processes (PUBLISH_WORKERS), so no ratio against the references' one process each:`, '', ...perMachine]),
      '',
      'Targets, in this run:',
      '',
      ...targets,
      '',
      ...notes,
    ];
    const markdown = lines.join('\n');
    console.info(`\n${markdown}\n`);
    // A partial or reconfigured run (BENCH_ONLY, BENCH_SYSTEMS, BENCH_SUBSCRIBE_WORKERS, BENCH_PUBLISH_WORKERS,
    // BENCH_PROFILE, BENCH_COUNT, BENCH_STEADY_RATE, BENCH_STEADY_SECONDS, BENCH_HERALD_NODE_ARGS, BENCH_LATENCY_DIR) prints its
    // figures but keeps the last full run's files.
    const reconfigured = process.env['BENCH_STEADY_RATE'] !== undefined || process.env['BENCH_STEADY_SECONDS'] !== undefined || HERALD_NODE_ARGS.length > 0 || LATENCY_DIR !== undefined;
    if (!ONLY && systems.length === 4 && SUBSCRIBE_WORKERS === '1' && PUBLISH_WORKERS === '1' && !COUNT && !reconfigured) {
      mkdirSync(new URL('results/', import.meta.url), { recursive: true });
      writeFileSync(new URL('results/latest.md', import.meta.url), `${markdown}\n`);
      writeFileSync(new URL('results/latest.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
    }
  } finally {
    await stopChildren();
    await redis.stop();
  }
}

/**
 * SIGTERMs every server and waits (5 s at most; 60 s with `BENCH_PROFILE`, as a server
 * writes its profile only once it has drained) for each to exit, before Redis goes.
 */
async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, PROFILE ? 60_000 : 5000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed:', error);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  },
);
