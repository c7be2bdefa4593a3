/**
 * `npm run bench`: Herald beside a plain GraphQL Yoga server, in one run, on one Redis.
 *
 * Starts its own redis-server, Herald's subscribe and publish servers, and the reference
 * (bench/reference/server.ts), each as its own process; forks lean load clients
 * (bench/load-client.ts) that speak graphql-transport-ws directly; publishes through each
 * system's own publish path; reads server CPU and RSS from /proc. Prints one table and
 * writes bench/results/latest.json and latest.md.
 *
 *   npm run bench                 # the full run (a few minutes)
 *   BENCH_SCALE=0.25 npm run bench  # a quick, smaller run
 *   BENCH_ONLY=fanout,steadyFanout npm run bench  # some scenarios only
 */
import { execSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, setPriority, totalmem } from 'node:os';
import jwt from 'jsonwebtoken';
import { startRedisServer, type RedisServer } from '../test/support/redis-server.js';
import type { ClientCommand, ClientStats } from './load-client.js';

const SCALE = Number(process.env['BENCH_SCALE'] ?? '1');
/** Rounds of each delivery scenario (`BENCH_ROUNDS`); figures are their medians. */
const ROUNDS = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? '3'));
/**
 * `BENCH_PROFILE=1` runs Herald alone (with BENCH_ONLY, the scenarios it names) and
 * writes a V8 CPU profile of its subscribe server to bench/results/profiles/.
 */
const PROFILE = process.env['BENCH_PROFILE'] === '1';
/**
 * `BENCH_ONLY=fanout,steadyMany` runs only those scenarios (idle, publish, fanout, many,
 * burst, steadyFanout, steadyFanoutEighth, steadyMany, connections) and writes no result
 * files.
 */
const ONLY = process.env['BENCH_ONLY'] ? new Set(process.env['BENCH_ONLY'].split(',').map((name) => name.trim())) : undefined;
const wanted = (scenario: string): boolean => ONLY === undefined || ONLY.has(scenario);
/** `BENCH_SYSTEMS=herald` measures Herald alone, for a quicker look (no ratios). */
const SYSTEMS = new Set((process.env['BENCH_SYSTEMS'] ?? 'herald,reference').split(',').map((name) => name.trim()));
/**
 * Publishes in flight in the fan-out scenario: enough to keep each system's subscribe
 * side busy, so the scenario measures capacity (with 16, Herald's subscribe server sat
 * partly idle and the run measured the publishers).
 */
const FANOUT_CONCURRENCY = 32;
/**
 * `BENCH_SUBSCRIBE_WORKERS=2` runs Herald's subscribe server as that many processes
 * (`SUBSCRIBE_WORKERS`); its CPU and RSS are then those of the whole process tree.
 */
const SUBSCRIBE_WORKERS = process.env['BENCH_SUBSCRIBE_WORKERS'] ?? '1';
/** Niceness of the load clients and of this driver (`setpriority`), below the servers'. */
const LOAD_PRIORITY = 10;
const NICE = process.env['BENCH_NICE'] !== '0';
/** Quiet time before each delivery scenario, in ms. */
const SETTLE_MS = 3000;
const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const ROOT = new URL('..', import.meta.url).pathname;
const QUERY = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { text } }';
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE));

// ---------------------------------------------------------------- processes and /proc

const children: ChildProcess[] = [];
/** The run's own redis-server, whose CPU each round reports (`countCpu`). */
let redisPid = 0;

function startNode(script: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[${script}] ${chunk.toString()}`));
  child.stdout?.resume();
  return child;
}

/** A process and its descendants (a subscribe server's cluster workers). */
function processTree(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return [pid, ...children.flatMap(processTree)];
}

/** User + system CPU time of a process and its descendants so far, in ms. */
function cpuMs(pid: number): number {
  return processTree(pid).reduce((sum, member) => {
    const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return sum + ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  }, 0);
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

// ---------------------------------------------------------------- the two systems

interface System {
  readonly name: 'herald' | 'reference';
  readonly wsUrl: string;
  /** Processes whose CPU counts as the server's. */
  readonly pids: number[];
  /** The process that holds the connections (RSS per connection). */
  readonly connectionPid: number;
  token(user: string): string | undefined;
  /** Publishes one notification with `text`, through the system's own publish path. */
  publish(to: string, text: string): Promise<void>;
}

/**
 * Publishers keep their connections open, as services do: node:http with a keep-alive
 * agent, lighter than `fetch`, so the driver spends less of the shared cores than the
 * servers it measures. The same for both systems.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function postGraphQL(url: string, query: string, variables: object, token?: string, retried = false): Promise<unknown> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
      },
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
    request.once('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive connection the server closed just as it was reused: send again, once
      // (what Node's docs advise for an agent with keepAlive).
      if (request.reusedSocket && error.code === 'ECONNRESET' && !retried) {
        postGraphQL(url, query, variables, token, true).then(resolve, reject);
        return;
      }
      reject(error);
    });
    request.end(body);
  });
}

const sign = (claims: object) => jwt.sign(claims, SECRET, { algorithm: 'HS256', expiresIn: 3600 });

async function startHerald(redis: RedisServer): Promise<System & { publishUrl: string; serviceToken: string }> {
  const env = {
    REDIS_URL: redis.url,
    JWT_SECRET: SECRET,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    CHANNEL_PREFIX: 'bench',
    SUBSCRIBE_PORT: '4600',
    PUBLISH_PORT: '4601',
    GRPC_PORT: '4602',
    PUBLISH_GRPC_PORT: '4603',
    KEEPALIVE_MS: '600000',
    HISTORY_MAX_LENGTH: '100',
  };
  const subscribe = startNode('src/main.ts', ['subscribe'], { ...env, SUBSCRIBE_WORKERS }, PROFILE ? ['--cpu-prof', '--cpu-prof-dir=bench/results/profiles'] : []);
  const publish = startNode('src/main.ts', ['publish'], env, PROFILE ? ['--cpu-prof', '--cpu-prof-dir=bench/results/profiles'] : []);
  await waitReady('http://127.0.0.1:4600/readyz');
  await waitReady('http://127.0.0.1:4601/readyz');
  const serviceToken = sign({ sub: 'bench', tenant: 'acme', scope: 'notifications:publish' });
  const publishUrl = 'http://127.0.0.1:4601/graphql';
  return {
    name: 'herald',
    wsUrl: 'ws://127.0.0.1:4600/graphql',
    pids: [subscribe.pid ?? 0, publish.pid ?? 0],
    connectionPid: subscribe.pid ?? 0,
    publishUrl,
    serviceToken,
    token: (user) => sign({ sub: user, tenant: 'acme' }),
    publish: async (to, text) => {
      await postGraphQL(publishUrl, 'mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { id } }', { to, text }, serviceToken);
    },
  };
}

async function startReference(redis: RedisServer): Promise<System & { url: string }> {
  const child = startNode('bench/reference/server.ts', [], { REDIS_URL: redis.url, PORT: '4610' });
  const url = 'http://127.0.0.1:4610/graphql';
  await waitReady(`${url}?query=${encodeURIComponent('{ __typename }')}`);
  return {
    name: 'reference',
    wsUrl: 'ws://127.0.0.1:4610/graphql',
    pids: [child.pid ?? 0],
    connectionPid: child.pid ?? 0,
    url,
    token: () => undefined,
    publish: async (to, text) => {
      await postGraphQL(url, 'mutation S($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { id } }', { to, text });
    },
  };
}

// ---------------------------------------------------------------- load clients

interface ClientPool {
  open(system: System, users: string[], devices: number): Promise<void>;
  reset(): Promise<void>;
  /** Counts only, for polling while a scenario runs (latencies stay in the clients). */
  count(): Promise<ClientStats>;
  /** Counts and every latency, once a scenario is over. */
  stats(): Promise<ClientStats>;
  close(): Promise<void>;
  /** The load clients' process ids. */
  readonly pids: number[];
}

async function clientPool(size: number): Promise<ClientPool> {
  const clients = Array.from({ length: size }, () => {
    const client = fork(new URL('load-client.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'] });
    // Load generators stand in for other machines: they yield the cores to the servers.
    if (NICE && client.pid !== undefined) setPriority(client.pid, LOAD_PRIORITY);
    return client;
  });
  const ask = <T>(client: ChildProcess, command: ClientCommand, key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if ('error' in message) return reject(new Error(String(message['error'])));
        if (!(key in message)) return;
        client.off('message', onMessage);
        resolve(message[key] as T);
      };
      client.on('message', onMessage);
      client.send(command);
    });
  const gather = async (cmd: 'count' | 'stats'): Promise<ClientStats> => {
    const all = await Promise.all(clients.map((client) => ask<ClientStats>(client, { cmd }, cmd)));
    return {
      received: all.reduce((sum, stats) => sum + stats.received, 0),
      minPerConnection: Math.min(...all.map((stats) => stats.minPerConnection)),
      latenciesMs: all.flatMap((stats) => stats.latenciesMs),
      lastAt: Math.max(...all.map((stats) => stats.lastAt)),
      closedUnexpectedly: all.reduce((sum, stats) => sum + stats.closedUnexpectedly, 0),
    };
  };
  return {
    pids: clients.map((client) => client.pid ?? 0),
    async open(system, users, devices) {
      const connections = users.flatMap((user) => {
        const token = system.token(user);
        return Array.from({ length: devices }, () => ({ user, token }));
      });
      // Dealt out in turn, so each user's devices are spread over every client process and
      // one event's deliveries are read in parallel.
      await Promise.all(
        clients.map((client, n) =>
          ask(client, { cmd: 'open', url: system.wsUrl, connections: connections.filter((_, index) => index % clients.length === n), query: QUERY }, 'opened'),
        ),
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
    await inParallel(users, 32, (user) => system.publish(user, 'warm-up'));
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

/**
 * Opens `devices` connections for each of `users`, publishes `perUser` notifications to
 * each user (at `eventsPerSecond`, or as fast as `concurrency` allows) and measures.
 */
interface DeliveryOptions {
  users: number;
  devices: number;
  perUser: number;
  /** Publishes in flight at once. */
  concurrency: number;
  /** A steady rate; unset publishes as fast as `concurrency` allows. */
  eventsPerSecond?: number;
  /** Prefix of the user names, so no scenario hears another's notifications. */
  prefix: string;
}

async function deliveries(system: System, options: DeliveryOptions): Promise<DeliveryResult> {
  const users = Array.from({ length: options.users }, (_, n) => `${options.prefix}${n}`);
  const pool = await clientPool(2);
  try {
    await pool.open(system, users, options.devices);
    await warmUp(system, pool, users);
    // Quiet again before measuring, as before each scenario: opening thousands of
    // connections is not what the rounds measure.
    await sleep(SETTLE_MS);
    const events = Array.from({ length: options.perUser }, () => users).flat();
    const expected = events.length * options.devices;
    /** Publishes `list` (paced, or as fast as `concurrency` allows) and waits until all arrived. */
    const publishAll = async (list: readonly string[]) => {
      await pool.reset();
      const cpu = countCpu(system, pool);
      const started = now();
      if (options.eventsPerSecond) {
        const interval = 1000 / options.eventsPerSecond;
        await inParallel(
          list.map((user, n) => [user, n] as const),
          options.concurrency,
          async ([user, n]) => {
            const wait = started + n * interval - now();
            if (wait > 0) await sleep(wait);
            await system.publish(user, String(now()));
          },
        );
      } else {
        await inParallel(list, options.concurrency, (user) => system.publish(user, String(now())));
      }
      const arriving = list.length * options.devices;
      let counted = await pool.count();
      const deadline = Date.now() + 60_000;
      while (counted.received < arriving && Date.now() < deadline) {
        await sleep(50);
        counted = await pool.count();
      }
      const { serversMs, shares } = cpu(now() - started);
      const stats = await pool.stats();
      // Up to the last delivery, as the clients saw it, not to when polling noticed it.
      const elapsed = (stats.lastAt || now()) - started;
      return { stats, serversMs, elapsed, shares };
    };
    if (options.eventsPerSecond) {
      // A steady rate is measured in steady state: two seconds of it first, not counted,
      // so code is compiled and heaps have grown (the first seconds are always the slowest).
      await publishAll(events.slice(0, Math.max(1, Math.round(options.eventsPerSecond * 2))));
    }
    const rounds: DeliveryResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const { stats, serversMs, elapsed, shares } = await publishAll(events);
      const sorted = stats.latenciesMs.sort((a, b) => a - b);
      console.info(
        `bench:   round ${round + 1}: p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms, ` +
          `${Math.round(stats.received / (elapsed / 1000))} deliveries/s; cores busy: ${shares}`,
      );
      rounds.push({
        deliveries: stats.received,
        lost: expected - stats.received,
        cpuUsPerDelivery: (serversMs * 1000) / Math.max(1, stats.received),
        deliveriesPerSecond: stats.received / (elapsed / 1000),
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? NaN,
      });
    }
    // The machine is shared and noisy: each figure is the median of the rounds.
    const median = (pick: (result: DeliveryResult) => number) => percentile(rounds.map(pick).sort((a, b) => a - b), 50);
    return {
      deliveries: rounds.reduce((sum, result) => sum + result.deliveries, 0),
      lost: rounds.reduce((sum, result) => sum + result.lost, 0),
      cpuUsPerDelivery: median((result) => result.cpuUsPerDelivery),
      deliveriesPerSecond: median((result) => result.deliveriesPerSecond),
      p50: median((result) => result.p50),
      p99: median((result) => result.p99),
      max: median((result) => result.max),
    };
  } finally {
    await pool.close();
  }
}

/**
 * Starts counting the CPU time of every process in the run: the system's servers, Redis,
 * the load clients and this driver. The function it returns reads them all at once: the
 * servers' total in ms, and each process's share of a core over `elapsedMs` (to show what
 * the shared cores were doing).
 */
function countCpu(system: System, pool: ClientPool): (elapsedMs: number) => { serversMs: number; shares: string } {
  const processes: Array<[string, number]> = [
    ...system.pids.map((pid, n): [string, number] => [`${system.name}${system.pids.length > 1 ? ` ${n + 1}` : ''}`, pid]),
    ['redis', redisPid],
    ...pool.pids.map((pid, n): [string, number] => [`client ${n + 1}`, pid]),
  ];
  const before = processes.map(([, pid]) => cpuMs(pid));
  const driverBefore = process.cpuUsage();
  return (elapsedMs) => {
    const used = processes.map(([, pid], n) => cpuMs(pid) - (before[n] ?? 0));
    const driver = process.cpuUsage(driverBefore);
    const shares = processes.map(([name], n) => `${name} ${((used[n] ?? 0) / elapsedMs).toFixed(2)}`);
    shares.push(`driver ${((driver.user + driver.system) / 1000 / elapsedMs).toFixed(2)}`);
    return { serversMs: used.slice(0, system.pids.length).reduce((sum, ms) => sum + ms, 0), shares: shares.join(', ') };
  };
}

/** RSS the server gains per idle subscribed connection, in KB. */
async function idleRss(system: System, connections: number): Promise<number> {
  const users = Array.from({ length: connections }, (_, n) => `idle${n}`);
  const pool = await clientPool(2);
  try {
    await sleep(1000);
    const before = rssKb(system.connectionPid);
    await pool.open(system, users, 1);
    await warmUp(system, pool, users);
    await sleep(2000);
    return (rssKb(system.connectionPid) - before) / connections;
  } finally {
    await pool.close();
    await sleep(1000);
  }
}

/** Notifications accepted per second by one publish process, for `seconds`. */
async function publishRate(send: () => Promise<number>, concurrency: number, seconds: number): Promise<number> {
  let accepted = 0;
  const started = now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (now() < until) {
        // Not `accepted += await send()`: that reads `accepted` before the await and
        // loses the other workers' counts.
        const sent = await send();
        accepted += sent;
      }
    }),
  );
  return accepted / ((now() - started) / 1000);
}

/** Herald only: `count` connections on one subscribe process, a broadcast to each user, nothing lost. */
async function manyConnections(herald: Awaited<ReturnType<typeof startHerald>>, count: number): Promise<{ connections: number; received: number; lost: number; closed: number; seconds: number }> {
  const users = Array.from({ length: count }, (_, n) => `m${n}`);
  const pool = await clientPool(3);
  try {
    await pool.open(herald, users, 1);
    await sleep(1000);
    const started = now();
    const batch = 1000;
    for (let round = 0; round < 2; round++) {
      // round 0 warms up (proves every subscription live); round 1 is the broadcast
      for (let n = 0; n < users.length; n += batch) {
        await postGraphQL(
          herald.publishUrl,
          'mutation B($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }',
          { n: users.slice(n, n + batch).map((to) => ({ to, text: String(now()) })) },
          herald.serviceToken,
        );
      }
      if (round === 0) {
        const deadline = Date.now() + 60_000;
        while ((await pool.count()).minPerConnection < 1 && Date.now() < deadline) await sleep(200);
        await pool.reset();
      }
    }
    let stats = await pool.count();
    const deadline = Date.now() + 60_000;
    while (stats.received < count && Date.now() < deadline) {
      await sleep(100);
      stats = await pool.count();
    }
    return { connections: count, received: stats.received, lost: count - stats.received, closed: stats.closedUnexpectedly, seconds: (now() - started) / 1000 };
  } finally {
    await pool.close();
  }
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const redis = await startRedisServer();
  redisPid = redis.pid;
  const results: Record<string, unknown> = {
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    date: new Date().toISOString(),
    scale: SCALE,
  };
  try {
    const herald = await startHerald(redis);
    const reference = await startReference(redis);
    // The publisher yields too, once Redis and the servers have started at normal priority.
    if (NICE) setPriority(LOAD_PRIORITY);
    // A profiling run (BENCH_PROFILE=1) measures Herald alone.
    const systems: readonly System[] = PROFILE ? [herald] : [herald, reference].filter((system) => SYSTEMS.has(system.name));
    const table: Array<[string, string, string]> = [];
    const row = (label: string, h: number | undefined, r: number | undefined, digits = 1, better: 'lower' | 'higher' = 'lower') => {
      if (h === undefined) return; // a scenario that did not run
      // The reference is missing from a run that measures Herald alone (BENCH_PROFILE, BENCH_SYSTEMS).
      if (r === undefined) return void table.push([`${label} (${better} is better)`, `${h.toFixed(digits)} / —`, '—']);
      table.push([`${label} (${better} is better)`, `${h.toFixed(digits)} / ${r.toFixed(digits)}`, `${(h / r).toFixed(2)}`]);
    };
    const fanout = { users: 10, devices: scaled(200, 10), perUser: scaled(100, 5), concurrency: FANOUT_CONCURRENCY, prefix: 'fan' };
    const many = { users: scaled(2000, 50), devices: 1, perUser: 5, concurrency: 32, prefix: 'many' };
    const burst = { users: scaled(1000, 50), devices: 1, perUser: 2, concurrency: 64, prefix: 'burst' };
    const notes: string[] = [];

    // Idle memory first, on fresh processes, before other scenarios leave garbage behind.
    const idleConnections = scaled(4000, 200);
    if (wanted('idle')) {
      const idle: Record<string, number> = {};
      for (const system of systems) {
        console.info(`bench: ${system.name}: ${idleConnections} idle connections`);
        idle[system.name] = await idleRss(system, idleConnections);
      }
      results['idle'] = idle;
      row(`idle RSS per subscribed connection, KB (${idleConnections})`, idle['herald'], idle['reference'], 1);
    }

    // Publishing next, while both systems are quiet (no connections yet).
    if (wanted('publish') && !PROFILE) {
      await sleep(2000);
      console.info('bench: publish throughput');
      const batchSize = 500;
      const publishSeconds = 5 * Math.min(1, SCALE * 2);
      const heraldBatch = await publishRate(
        async () => {
          await postGraphQL(
            herald.publishUrl,
            'mutation B($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }',
            { n: Array.from({ length: batchSize }, (_, n) => ({ to: `nobody${n}`, text: 'x' })) },
            herald.serviceToken,
          );
          return batchSize;
        },
        4,
        publishSeconds,
      );
      const heraldSingle = await publishRate(async () => {
        await herald.publish('nobody', 'x');
        return 1;
      }, 32, publishSeconds);
      const referenceSingle = systems.includes(reference)
        ? await publishRate(async () => {
            await reference.publish('nobody', 'x');
            return 1;
          }, 32, publishSeconds)
        : undefined;
      results['publish'] = { heraldBatch, heraldSingle, referenceSingle };
      row('publish: notifications accepted / s, Herald batch vs reference single mutation', heraldBatch, referenceSingle, 0, 'higher');
      row('publish: notifications accepted / s, single mutation each', heraldSingle, referenceSingle, 0, 'higher');
    }

    const measured: Record<string, Record<string, DeliveryResult>> = {};
    results['measured'] = measured;
    const measure = async (scenario: string, label: string, options: DeliveryOptions, on: readonly System[] = systems) => {
      measured[scenario] ??= {};
      for (const system of on) {
        // A few quiet seconds first, so what the last scenario left running (a backlog,
        // a garbage collection) does not count against this one.
        await sleep(SETTLE_MS);
        console.info(`bench: ${system.name}: ${label}`);
        measured[scenario]![system.name] = await deliveries(system, options);
      }
    };
    const fanoutLabel = `fan-out (${fanout.users} users × ${fanout.devices} devices)`;
    const manyLabel = `many users (${many.users} × 1 device)`;
    const burstLabel = `burst (${burst.users * burst.perUser} at once)`;
    if (wanted('fanout')) await measure('fanout', fanoutLabel, fanout);
    if (wanted('many')) await measure('many', manyLabel, many);
    if (wanted('burst')) await measure('burst', burstLabel, burst);
    for (const [scenario, label] of [
      ['fanout', fanoutLabel],
      ['many', manyLabel],
      ['burst', burstLabel],
    ] as const) {
      const h = measured[scenario]?.['herald'];
      const r = measured[scenario]?.['reference'];
      row(`${label}: server CPU µs / delivery`, h?.cpuUsPerDelivery, r?.cpuUsPerDelivery);
      row(`${label}: deliveries / s`, h?.deliveriesPerSecond, r?.deliveriesPerSecond, 0, 'higher');
      row(`${label}: latency p50 ms`, h?.p50, r?.p50, 2);
      row(`${label}: latency p99 ms`, h?.p99, r?.p99, 2);
    }

    // Steady rates: half of Herald's capacity in each shape, the same rate for both systems;
    // and, for fan-out, an eighth of it for Herald alone (the reference is past its own
    // capacity even there), to show the rate at which Herald's fan-out meets the target.
    for (const [scenario, base, shape, share, on] of [
      ['steadyFanout', 'fanout', fanout, 2, systems],
      ['steadyFanoutEighth', 'fanout', fanout, 8, [herald]],
      ['steadyMany', 'many', many, 2, systems],
    ] as const) {
      if (!wanted(scenario)) continue;
      if (!measured[base]?.['herald']) await measure(base, `${base} (Herald's capacity, for the steady rate)`, shape, [herald]);
      const capacity = measured[base]!['herald']!.deliveriesPerSecond;
      const eventsPerSecond = Math.max(1, Math.round(capacity / share / shape.devices));
      const steady = { ...shape, perUser: Math.max(5, Math.round((eventsPerSecond * 5) / shape.users)), eventsPerSecond, prefix: scenario };
      const part = share === 2 ? 'half' : `1/${share}`;
      const label =
        shape.devices > 1
          ? `steady fan-out, ${eventsPerSecond * shape.devices} deliveries/s (${part} of Herald's capacity)`
          : `steady, ${eventsPerSecond} notifications/s to ${shape.users} users (${part} of Herald's capacity)`;
      await measure(scenario, label, steady, on);
      const h = measured[scenario]!['herald']!;
      const r = measured[scenario]!['reference'];
      row(`${label}: latency p50 ms`, h.p50, r?.p50, 2);
      row(`${label}: latency p99 ms`, h.p99, r?.p99, 2);
      row(`${label}: latency max ms`, h.max, r?.max, 2);
      row(`${label}: server CPU µs / delivery`, h.cpuUsPerDelivery, r?.cpuUsPerDelivery);
    }

    if (PROFILE) {
      console.info(JSON.stringify(measured, null, 2));
      return;
    }
    if (wanted('connections')) {
      const manyCount = scaled(18_000, 500);
      const where = SUBSCRIBE_WORKERS === '1' ? 'one subscribe process' : `${SUBSCRIBE_WORKERS} subscribe processes`;
      console.info(`bench: herald: ${manyCount} connections on ${where}`);
      const connections = await manyConnections(herald, manyCount);
      results['connections'] = connections;
      notes.push(
        `${connections.connections} connections on ${where}: ${connections.received} received a broadcast to their user, ${connections.lost} lost, ${connections.closed} closed, in ${connections.seconds.toFixed(1)} s.`,
      );
    }
    const lost = Object.entries(measured).flatMap(([scenario, bySystem]) =>
      Object.entries(bySystem).map(([name, result]) => `${scenario} ${name}: ${result.lost}`),
    );
    notes.push(`Lost in delivery scenarios (expected − received): ${lost.join(', ')}.`);

    const lines = [
      `Machine: ${String(results['machine'])}; ${String(results['date'])}; scale ${SCALE}; medians of ${ROUNDS} rounds per scenario` +
        `${SUBSCRIBE_WORKERS === '1' ? '' : `; ${SUBSCRIBE_WORKERS} subscribe workers`}${ONLY ? `; only ${[...ONLY].join(', ')}` : ''}.`,
      '',
      '| measure | Herald / reference | Herald ÷ reference |',
      '|---|---|---|',
      ...table.map(([label, values, ratio]) => `| ${label} | ${values} | ${ratio} |`),
      '',
      ...notes,
    ];
    const markdown = lines.join('\n');
    console.info(`\n${markdown}\n`);
    // A partial or reconfigured run (BENCH_ONLY, BENCH_SYSTEMS, BENCH_SUBSCRIBE_WORKERS,
    // BENCH_PROFILE) prints its figures but keeps the last full run's files.
    if (!ONLY && systems.length === 2 && SUBSCRIBE_WORKERS === '1') {
      mkdirSync(new URL('results/', import.meta.url), { recursive: true });
      writeFileSync(new URL('results/latest.md', import.meta.url), `${markdown}\n`);
      writeFileSync(new URL('results/latest.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
    }
  } finally {
    await stopChildren();
    await redis.stop();
  }
}

/** SIGTERMs every server and waits (5 s at most) for each to exit, before Redis goes. */
async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, 5000);
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
