/**
 * @herald/client under chaos: 200 clients in 4 processes, 50 users with 4 clients each,
 * 1,000 notifications published at a steady rate to the users while the subscribe server
 * is SIGKILLed and restarted twice (same port), the network to it is cut for 5 s by a TCP
 * proxy, and tokens live 20 s (a token function mints fresh ones, refreshed in-band).
 * Every client's `onNotification` — the only app code — gets every acknowledged
 * notification of its user exactly once, in id order.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHeraldPublisher, type SendResult } from '../../../packages/client/src/index.js';
import { compareNotificationIds } from '../../../packages/client/src/position.js';
import { startClientRunner, stopAllClientRunners, type ClientRunner, type RunnerReport } from '../../support/client-runners.js';
import { closeAllFaultProxies, startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { freePort, startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken } from '../../support/tokens.js';

const RUNNERS = 4;
const USERS = Array.from({ length: 50 }, (_, n) => `chaos-user-${n}`);
const NOTIFICATIONS = 1000;
const PUBLISH_SECONDS = 50;
const TOKEN_SECONDS = 20;
/** How long after the last send every client must have caught up: reconnects back off up to 20 s. */
const CATCH_UP_MS = 60_000;

let redis: RedisServer;
let subscriber: HeraldProcess;
let proxy: FaultProxy;
let publishUrl: string;
let subscribePort: number;
const runners: ClientRunner[] = [];
const env = (): Record<string, string> => ({ REDIS_URL: redis.url });

beforeAll(async () => {
  redis = await startRedisServer();
  subscribePort = await freePort();
  const [started, publisher] = await Promise.all([
    startHeraldProcess('subscribe', { env: { ...env(), SUBSCRIBE_PORT: String(subscribePort) } }),
    startHeraldProcess('publish', { env: env() }),
  ]);
  subscriber = started;
  publishUrl = `http://127.0.0.1:${publisher.publishPort}/graphql`;
  proxy = await startFaultProxy(subscribePort);
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.close()));
  stopAllClientRunners();
  await closeAllFaultProxies();
  await stopAllProcesses();
  await redis?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function reports(): Promise<RunnerReport['clients']> {
  return (await Promise.all(runners.map((runner) => runner.report()))).flatMap((report) => report.clients);
}

async function restartSubscriber(): Promise<void> {
  await subscriber.stop('SIGKILL');
  subscriber = await startHeraldProcess('subscribe', { env: { ...env(), SUBSCRIBE_PORT: String(subscribePort) } });
}

async function cutNetwork(ms: number): Promise<void> {
  proxy.fault({ kind: 'drop' });
  await sleep(ms);
  proxy.fault({ kind: 'cut' }); // what was dropped left the streams out of step: those connections are dead
  proxy.forward();
}

it('200 clients get every acknowledged notification exactly once, in order, through 2 SIGKILLs, a 5 s cut and 20 s tokens', { timeout: 300_000 }, async () => {
  const url = `ws://127.0.0.1:${proxy.port}/graphql`;
  for (let n = 0; n < RUNNERS; n++) runners.push(startClientRunner({ url, users: USERS, tokenSeconds: TOKEN_SECONDS }));
  const liveBy = Date.now() + 60_000;
  while ((await reports()).filter((client) => client.live).length < RUNNERS * USERS.length) {
    if (Date.now() > liveBy) throw new Error(`not all ${RUNNERS * USERS.length} clients went live within 60 s`);
    await sleep(500);
  }

  const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken(), deadlineMs: 60_000 });
  const acknowledged = new Map<string, string[]>(USERS.map((user) => [user, []]));
  const failures: unknown[] = [];
  const sends: Promise<void>[] = [];
  const started = Date.now();
  const chaos = (async () => {
    await sleep(8_000);
    await restartSubscriber();
    await sleep(10_000);
    await cutNetwork(5_000);
    await sleep(10_000);
    await restartSubscriber();
  })();
  for (let n = 0; n < NOTIFICATIONS; n++) {
    const due = started + (n * PUBLISH_SECONDS * 1000) / NOTIFICATIONS;
    if (due > Date.now()) await sleep(due - Date.now());
    const user = USERS[n % USERS.length] ?? '';
    sends.push(
      publisher.send({ to: user, text: `chaos ${n}`, push: 'NEVER' }).then(
        (result: SendResult) => void acknowledged.get(user)?.push(result.id),
        (error: unknown) => void failures.push(error),
      ),
    );
  }
  await Promise.all(sends);
  await chaos;
  expect(failures).toEqual([]);
  for (const ids of acknowledged.values()) ids.sort((a, b) => compareNotificationIds(a, b) ?? 0);

  // Everyone catches up; then nothing more (no repeat) arrives on top.
  const expectedFor = (user: string): string[] => acknowledged.get(user) ?? [];
  const caughtUpBy = Date.now() + CATCH_UP_MS;
  let clients = await reports();
  while (clients.some((client) => client.ids.length < expectedFor(client.user).length)) {
    if (Date.now() > caughtUpBy) break;
    await sleep(1_000);
    clients = await reports();
  }
  await sleep(2_000);
  clients = await reports();
  const wrong = clients.filter((client) => JSON.stringify(client.ids) !== JSON.stringify(expectedFor(client.user)));
  console.log(`client chaos: ${clients.length} clients, ${NOTIFICATIONS} notifications acknowledged, ${proxy.accepted} connections accepted by the proxy, ${wrong.length} clients wrong, in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  expect(clients).toHaveLength(RUNNERS * USERS.length);
  expect(clients.flatMap((client) => client.errors)).toEqual([]);
  expect(wrong.map((client) => ({ user: client.user, got: client.ids.length, expected: expectedFor(client.user).length, firstDifference: client.ids.findIndex((id, index) => id !== expectedFor(client.user)[index]) }))).toEqual([]);
});
