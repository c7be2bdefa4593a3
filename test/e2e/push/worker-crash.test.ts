/**
 * A worker killed mid-batch (SIGKILL, sends in flight): the others finish its entries
 * (XAUTOCLAIM after the idle time), no device gets a push twice, and the pushes whose
 * outcome died with it are dead-lettered, not lost and not resent blindly.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createFcmSender } from '../../../src/push/senders/fcm.js';
import { localNetworkPolicy, startFcmStandIn, type FcmStandIn } from '../../support/push-servers.js';
import { createPushRig, duplicates, eventually, quietLogger, type PushRig, theStream } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const WORKER = fileURLToPath(new URL('../../support/push-worker-process.ts', import.meta.url));
const FOLLOWERS = 1200;

let server: RedisServer;
let fcm: FcmStandIn;
let rig: PushRig;
let victim: ChildProcess | undefined;
const closing: Array<() => Promise<void>> = [];
beforeAll(async () => {
  [server, fcm] = await Promise.all([startRedisServer(), startFcmStandIn({ delayMs: 20 })]);
  rig = createPushRig(server, 'crash');
});
afterAll(async () => {
  victim?.kill('SIGKILL');
  await rig.stopAll();
  await Promise.all(closing.map((close) => close()));
  await fcm.close();
  await server.stop();
});

it('finishes a killed worker\'s entries on the others, with no duplicate and nothing lost silently', async () => {
  const users = Array.from({ length: FOLLOWERS }, (_, i) => `u${i}`);
  await rig.redis.sadd(rig.keys.followers('acme', 'live'), ...users);
  for (const user of users) await rig.devices.register('acme', user, { kind: 'FCM', token: `tok-${user}` });

  victim = fork(WORKER, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      REDIS_URL: server.url,
      PUSH_TEST_PREFIX: 'crash',
      PUSH_TEST_FCM_URL: fcm.url,
      PUSH_TEST_TOKEN_URL: fcm.tokenUrl,
      PUSH_TEST_SERVICE_ACCOUNT: JSON.stringify(fcm.serviceAccount),
      PUSH_TEST_CONSUMER: 'victim',
      PUSH_CONCURRENCY: '64',
      PUSH_CLAIM_IDLE_MS: '30000',
    },
  });
  const exited = new Promise((resolve) => victim?.once('exit', (code, signal) => resolve(signal ?? code)));
  await new Promise<void>((resolve, reject) => {
    victim?.once('message', () => resolve());
    victim?.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  });
  const killedAfter = 300;
  const killed = new Promise<void>((resolve) => {
    fcm.onMessage = () => {
      if (fcm.messages.length === killedAfter) {
        victim?.kill('SIGKILL'); // 64 sends in flight, the rest of its pages untouched
        resolve();
      }
    };
  });
  await rig.queue.enqueue({ id: 'e1_1-1', tenant: 'acme', audience: 'TOPIC', to: 'live', text: 'on air', timestamp: 1, sender: 'radio' }, 'ALWAYS');
  await killed;
  expect(await exited).toBe('SIGKILL');
  fcm.onMessage = () => undefined;
  const pendingOfVictim = (await rig.redis.xpending(theStream(rig.keys), rig.keys.group)) as [number, string, string, Array<[string, string]> | null];
  expect(pendingOfVictim[3]).toEqual([['victim', expect.any(String)]]); // it died holding entries

  const sender = () => {
    const fcmSender = createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: fcm.url, tokenUrl: fcm.tokenUrl, dryRun: false, logger: quietLogger, networkPolicy: localNetworkPolicy });
    closing.push(() => fcmSender.close());
    return { FCM: fcmSender };
  };
  const takers = await Promise.all([rig.startWorker(sender(), { claimIdleMs: 500 }), rig.startWorker(sender(), { claimIdleMs: 500 })]);
  await eventually(async () => (await rig.backlog()) === 0, 'every entry done', 20_000);

  const tokens = fcm.messages.map((message) => message.token);
  expect(duplicates(tokens)).toEqual({});
  const letters = await rig.deadLetters.list(1000);
  expect(letters.every((letter) => letter.reason.startsWith('outcome unknown'))).toBe(true);
  const unknown = new Set(letters.map((letter) => `tok-${letter.user}`));
  const received = new Set(tokens);
  // every device got its push, or its push is dead-lettered as unknown — none simply missing
  expect(users.filter((user) => !received.has(`tok-${user}`) && !unknown.has(`tok-${user}`))).toEqual([]);
  // at most the sends in flight at the kill are unknown
  expect(unknown.size).toBeGreaterThan(0);
  expect(unknown.size).toBeLessThanOrEqual(64);
  expect(takers.reduce((sum, worker) => sum + worker.counters.outcomeUnknown, 0)).toBe(unknown.size);
});
