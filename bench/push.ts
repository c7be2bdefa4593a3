/**
 * `npx tsx bench/push.ts`: 10,000 pushes through the push worker to a local FCM stand-in
 * that answers every message after 20 ms: how fast a topic reaches its followers' phones.
 *
 * One topic notification to 10,000 followers with one FCM device each — the Radiotalk
 * case — run serially, 10 in flight (the original design's setting), at Herald's default
 * concurrency, and with three workers at the default. Each worker is its own process, so
 * its CPU is measured apart from the stand-in and Redis. Every run checks that every
 * device got exactly one push: no duplicate, nothing lost.
 *
 *   npx tsx bench/push.ts                        # every run (the serial one takes ~4 minutes)
 *   BENCH_PUSH_RUNS=10,default,three npx tsx bench/push.ts
 *   BENCH_PUSH_COUNT=2000 npx tsx bench/push.ts  # fewer pushes
 *   BENCH_PUSH_PROFILE=/tmp/push-prof npx tsx bench/push.ts  # CPU profiles of the workers
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Redis } from 'ioredis';
import { createDeviceStore } from '../src/push/devices.js';
import { createPushKeys } from '../src/push/keys.js';
import { createPushQueue, ensurePushGroup } from '../src/push/queue.js';
import type { PushCounters } from '../src/push/counters.js';
import { startFcmStandIn } from '../test/support/push-servers.js';
import { startRedisServer } from '../test/support/redis-server.js';

const COUNT = Number(process.env['BENCH_PUSH_COUNT'] ?? '10000');
const DELAY_MS = 20;
const DEFAULT_CONCURRENCY = 256;
const RUNS = [
  { name: 'serial', label: 'serial (1 in flight)', workers: 1, concurrency: 1 },
  { name: '10', label: '10 in flight (the original design)', workers: 1, concurrency: 10 },
  { name: 'default', label: `Herald default (${DEFAULT_CONCURRENCY} in flight), one worker`, workers: 1, concurrency: DEFAULT_CONCURRENCY },
  { name: 'three', label: `Herald default, three workers (${DEFAULT_CONCURRENCY} each)`, workers: 3, concurrency: DEFAULT_CONCURRENCY },
];
const wanted = new Set((process.env['BENCH_PUSH_RUNS'] ?? RUNS.map((run) => run.name).join(',')).split(','));
const WORKER = new URL('../test/support/push-worker-process.ts', import.meta.url).pathname;
const PREFIX = 'bench';
/** `BENCH_PUSH_PROFILE=<dir>` writes a V8 CPU profile of each worker process there. */
const PROFILE_DIR = process.env['BENCH_PUSH_PROFILE'];

interface Stopped {
  counters: PushCounters;
  cpuMicros: number;
}

const redisServer = await startRedisServer();
const fcm = await startFcmStandIn({ delayMs: DELAY_MS });
const redis = new Redis(redisServer.url);
const keys = createPushKeys(PREFIX);
const devices = createDeviceStore({ redis, keys });
const queue = createPushQueue({ redis, keys });

const users = Array.from({ length: COUNT }, (_, i) => `listener${i}`);
for (let i = 0; i < users.length; i += 500) {
  const slice = users.slice(i, i + 500);
  await Promise.all(slice.map((user) => devices.register('acme', user, { kind: 'FCM', token: `fcm-${user}` })));
  await redis.sadd(keys.followers('acme', 'programme'), ...slice);
}
for (const stream of keys.streams) await ensurePushGroup(redis, stream, keys.group);

const startWorker = (index: number, concurrency: number): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx', ...(PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        REDIS_URL: redisServer.url,
        PUSH_TEST_PREFIX: PREFIX,
        PUSH_TEST_FCM_URL: fcm.url,
        PUSH_TEST_TOKEN_URL: fcm.tokenUrl,
        PUSH_TEST_SERVICE_ACCOUNT: JSON.stringify(fcm.serviceAccount),
        PUSH_TEST_CONSUMER: `bench-${index}-${Date.now()}`,
        PUSH_CONCURRENCY: String(concurrency),
      },
    });
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
const stopWorker = (child: ChildProcess): Promise<Stopped> =>
  new Promise((resolve) => {
    child.on('message', (message: { type: string } & Stopped) => message.type === 'stopped' && resolve(message));
    child.send({ type: 'stop' });
  });

const results: Array<{ label: string; seconds: number; perSecond: number; cpuMicrosPerPush: number; duplicates: number; missing: number; deadLettered: number }> = [];
for (const [index, run] of RUNS.entries()) {
  if (!wanted.has(run.name)) continue;
  const workers = await Promise.all(Array.from({ length: run.workers }, (_, i) => startWorker(i, run.concurrency)));
  const id = `bench_${index}-1`;
  fcm.messages.length = 0;
  const done = new Promise<void>((resolve) => {
    fcm.onMessage = () => {
      if (fcm.messages.length >= COUNT) resolve();
    };
  });
  const started = performance.now();
  await queue.enqueue({ id, tenant: 'acme', audience: 'TOPIC', to: 'programme', text: 'A new talk is on air', timestamp: Math.floor(Date.now() / 1000), sender: 'radiotalk' }, 'ALWAYS');
  await done;
  while ((await redis.xlen(keys.streams[0] ?? '')) > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const seconds = (performance.now() - started) / 1000;
  const stopped = await Promise.all(workers.map(stopWorker));
  const tokens = fcm.messages.map((message) => message.token);
  const distinct = new Set(tokens);
  const sent = stopped.reduce((sum, s) => sum + s.counters.sent, 0);
  const cpuMicros = stopped.reduce((sum, s) => sum + s.cpuMicros, 0);
  const result = {
    label: run.label,
    seconds,
    perSecond: COUNT / seconds,
    cpuMicrosPerPush: cpuMicros / COUNT,
    duplicates: tokens.length - distinct.size,
    missing: users.filter((user) => !distinct.has(`fcm-${user}`)).length,
    deadLettered: stopped.reduce((sum, s) => sum + s.counters.deadLettered, 0),
  };
  if (sent !== COUNT) console.error(`${run.label}: workers counted ${sent} sent, expected ${COUNT}`);
  results.push(result);
  console.log(`${run.label}: ${seconds.toFixed(2)} s, ${result.perSecond.toFixed(0)} pushes/s, ${result.cpuMicrosPerPush.toFixed(0)} µs CPU/push, duplicates ${result.duplicates}, missing ${result.missing}`);
}

const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}`;
const markdown = [
  `${COUNT.toLocaleString('en')} pushes (one topic, ${COUNT.toLocaleString('en')} followers × 1 FCM device) to a local FCM v1 stand-in answering after ${DELAY_MS} ms (HTTP/2, 100 streams per connection); ${machine}; ${new Date().toISOString()}.`,
  '',
  '| run | time, s | pushes / s | worker CPU µs / push | duplicates | missing | dead-lettered |',
  '|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.label} | ${r.seconds.toFixed(2)} | ${r.perSecond.toFixed(0)} | ${r.cpuMicrosPerPush.toFixed(0)} | ${r.duplicates} | ${r.missing} | ${r.deadLettered} |`),
].join('\n');
console.log(`\n${markdown}`);
if (COUNT === 10_000 && results.length === RUNS.length) {
  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('results/push.md', import.meta.url), `${markdown}\n`);
}
redis.disconnect();
await fcm.close();
await redisServer.stop();
