/**
 * A push worker in a process of its own, for the crash test (SIGKILL mid-batch) and the
 * bench (CPU per push, measured apart from the FCM stand-in). Spawned with an IPC channel:
 * it sends `{ type: 'ready' }` once reading; on `{ type: 'stop' }` it stops, drains, and
 * answers `{ type: 'stopped', counters, cpuMicros }` before exiting.
 *
 * Environment: REDIS_URL, PUSH_TEST_PREFIX, PUSH_TEST_FCM_URL, PUSH_TEST_TOKEN_URL,
 * PUSH_TEST_SERVICE_ACCOUNT (JSON), PUSH_TEST_CONSUMER, PUSH_CONCURRENCY, PUSH_CLAIM_IDLE_MS,
 * PUSH_RETRY_WINDOW_MS, PUSH_RETRY_POLL_MS, and PUSH_TEST_CLOCK_OFFSET_MS (the worker's clock
 * runs this far ahead of the real one: a test makes scheduled retries due without waiting).
 */
import { Redis } from 'ioredis';
import { redisClientOptions } from '../../src/redis/connection.js';
import { createPushKeys } from '../../src/push/keys.js';
import { createFcmSender, type ServiceAccountKey } from '../../src/push/senders/fcm.js';
import { localNetworkPolicy } from './push-servers.js';
import { createPushWorker } from '../../src/push/worker.js';

const env = process.env;
const required = (name: string): string => {
  const value = env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const quiet = { info: () => undefined, warn: () => undefined, error: (...args: unknown[]) => console.error(...args) };

// the options every Herald connection uses (auto-pipelining among them); the reader's
// command timeout must outlast its blocking read (the worker's blockMs, 5000 by default)
const redis = new Redis(required('REDIS_URL'), redisClientOptions(2000));
const reader = new Redis(required('REDIS_URL'), redisClientOptions(2000 + 5000));
// no offline queue: nothing may be sent before the connections are ready
await Promise.all([redis, reader].map((client) => new Promise((resolve) => client.once('ready', resolve))));
const fcm = createFcmSender({
  serviceAccount: JSON.parse(required('PUSH_TEST_SERVICE_ACCOUNT')) as ServiceAccountKey,
  baseUrl: required('PUSH_TEST_FCM_URL'),
  tokenUrl: required('PUSH_TEST_TOKEN_URL'),
  dryRun: false,
  logger: quiet,
  networkPolicy: localNetworkPolicy, // the FCM stand-in listens on 127.0.0.1
});
const worker = createPushWorker({
  redis,
  readers: [reader],
  keys: createPushKeys(required('PUSH_TEST_PREFIX')),
  senders: { FCM: fcm },
  consumer: required('PUSH_TEST_CONSUMER'),
  concurrency: Number(env['PUSH_CONCURRENCY'] ?? 256),
  claimIdleMs: Number(env['PUSH_CLAIM_IDLE_MS'] ?? 30_000),
  offlineGraceMs: 0,
  ...(env['PUSH_RETRY_WINDOW_MS'] === undefined ? {} : { retryWindowMs: Number(env['PUSH_RETRY_WINDOW_MS']) }),
  ...(env['PUSH_RETRY_POLL_MS'] === undefined ? {} : { retryPollMs: Number(env['PUSH_RETRY_POLL_MS']) }),
  now: () => Date.now() + Number(env['PUSH_TEST_CLOCK_OFFSET_MS'] ?? 0),
  logger: quiet,
});
const cpuAtStart = process.cpuUsage();
await worker.start();
process.send?.({ type: 'ready' });
process.on('message', (message: { type?: string }) => {
  if (message.type !== 'stop') return;
  void (async () => {
    await worker.stop();
    const cpu = process.cpuUsage(cpuAtStart);
    await fcm.close();
    redis.disconnect();
    reader.disconnect();
    process.send?.({ type: 'stopped', counters: worker.counters, cpuMicros: cpu.user + cpu.system }, undefined, {}, () => process.exit(0));
  })();
});
