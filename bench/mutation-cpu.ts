/**
 * What one `sendNotification` costs a publish server, in CPU, when nothing else is
 * running: `npx tsx bench/mutation-cpu.ts [herald|mercurius|floor …]` (run
 * `npm run build` first; the references from dist-bench/, as `npm run bench` compiles
 * them). For each system in turn it starts a `redis-server` of its own and the system's
 * publish server alone (no subscribe server: nobody hears the notifications, as in
 * `npm run bench`'s single-mutation row), sends for 2 s unmeasured, then measures
 * `ROUNDS` rounds of `SECONDS` s, 32 requests in flight, each a mutation with
 * `{ receivedUsers }` to a user nobody listens for. Per round it prints mutations per
 * second, the server's CPU µs per mutation and Redis' (from /proc, user + system), this
 * driver's own (what reading the answers costs a client), and the median of the rounds.
 *
 * CPU per mutation is the figure to compare: it is the server's own work, while the rate
 * also depends on the load driver (this process) and Redis sharing the machine's cores.
 *
 * `RATE=<n>` sends open loop at n mutations per second instead (as `npm run bench`'s
 * steady rows do, where a mutation has a turn of the event loop to itself): the cost of a
 * mutation that wakes the server on its own, against the closed loop's batched one.
 *
 *   npx tsx bench/mutation-cpu.ts                   # Herald, Mercurius and the floor
 *   ROUNDS=5 SECONDS=4 npx tsx bench/mutation-cpu.ts herald
 *   CONCURRENCY=128 npx tsx bench/mutation-cpu.ts herald mercurius   # another number in flight (default 32)
 *   HERALD_ROOT=/path/to/another/checkout npx tsx bench/mutation-cpu.ts herald   # another build's dist/
 *   NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/profiles' npx tsx bench/mutation-cpu.ts herald   # node flags for the server
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { freePort, startRedisServer } from '../test/support/redis-server.js';
import { post } from './publisher.js';

const ROOT = new URL('..', import.meta.url).pathname;
const HERALD_ROOT = process.env['HERALD_ROOT'] ?? ROOT;
const ROUNDS = Number(process.env['ROUNDS'] ?? '3');
const SECONDS = Number(process.env['SECONDS'] ?? '4');
const CONCURRENCY = Number(process.env['CONCURRENCY'] ?? '32');
/** Open loop at this many mutations per second; unset: closed loop, `CONCURRENCY` in flight. */
const RATE = process.env['RATE'] === undefined ? undefined : Number(process.env['RATE']);
const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const QUERY = 'mutation Send($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { receivedUsers } }';
/** Flags for the server's `node` (profiling, GC tracing), split on spaces. */
const NODE_ARGS = (process.env['NODE_ARGS'] ?? '').split(' ').filter((flag) => flag !== '');
const SYSTEMS = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['herald', 'mercurius', 'floor'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const token = jwt.sign({ sub: 'bench', tenant: 'acme', scope: 'notifications:publish' }, SECRET, { algorithm: 'HS256', expiresIn: 3600 });

/** User + system CPU of `pid` so far, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Round {
  perSecond: number;
  serverUs: number;
  redisUs: number;
  /** This process's (the driver's) CPU per mutation: what the server's answers cost a client. */
  driverUs: number;
}

async function drive(url: string, seconds: number, server: number, redis: number): Promise<Round> {
  let sent = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  const [serverBefore, redisBefore, driverBefore] = [cpuMs(server), cpuMs(redis), process.cpuUsage()];
  const send = () => post(url, token, JSON.stringify({ query: QUERY, variables: { to: 'nobody', text: String(Date.now()) } }));
  if (RATE === undefined) {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < until) {
          await send();
          sent += 1;
        }
      }),
    );
  } else {
    const answered: Array<Promise<void>> = [];
    for (let at = started; at < until; at = started + (sent * 1000) / RATE) {
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      answered.push(send());
      sent += 1;
    }
    await Promise.all(answered);
  }
  const elapsed = (performance.now() - started) / 1000;
  const driver = process.cpuUsage(driverBefore);
  return {
    perSecond: sent / elapsed,
    serverUs: ((cpuMs(server) - serverBefore) * 1000) / sent,
    redisUs: ((cpuMs(redis) - redisBefore) * 1000) / sent,
    driverUs: (driver.user + driver.system) / sent,
  };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

async function measure(system: string): Promise<void> {
  const redis = await startRedisServer();
  const port = await freePort();
  const env = { ...process.env, REDIS_URL: redis.url, JWT_SECRET: SECRET, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), PUBLISH_PORT: String(port), PUBLISH_GRPC_PORT: String(await freePort()) };
  const server: ChildProcess =
    system === 'herald'
      ? spawn(process.execPath, [...NODE_ARGS, 'dist/main.js', 'publish'], { cwd: HERALD_ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] })
      : spawn(process.execPath, [...NODE_ARGS, `dist-bench/reference/${system}.js`], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}/graphql`;
  try {
    for (let tries = 0; ; tries++) {
      try {
        await post(url, token, JSON.stringify({ query: QUERY, variables: { to: 'nobody', text: 'ready?' } }));
        break;
      } catch (error) {
        if (tries > 100) throw error;
        await sleep(100);
      }
    }
    await drive(url, 2, server.pid ?? 0, redis.pid);
    const rounds: Round[] = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await drive(url, SECONDS, server.pid ?? 0, redis.pid));
    for (const { perSecond, serverUs, redisUs, driverUs } of rounds) {
      console.info(`${system}: ${perSecond.toFixed(0)} mutations/s, server ${serverUs.toFixed(1)} CPU µs per mutation, Redis ${redisUs.toFixed(1)}, driver ${driverUs.toFixed(1)}`);
    }
    console.info(
      `${system}, median of ${ROUNDS}: ${median(rounds.map((round) => round.perSecond)).toFixed(0)} mutations/s, ` +
        `server ${median(rounds.map((round) => round.serverUs)).toFixed(1)} CPU µs per mutation, Redis ${median(rounds.map((round) => round.redisUs)).toFixed(1)}, ` +
        `driver ${median(rounds.map((round) => round.driverUs)).toFixed(1)}`,
    );
  } finally {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
    await redis.stop();
  }
}

for (const system of SYSTEMS) await measure(system);
