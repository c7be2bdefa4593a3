/**
 * @herald/client's inbox across two devices of one user: unread counts follow live
 * notifications; `markRead` made while one device is offline applies there at once,
 * reaches the server when it is back, and the other device's badge follows through
 * `onInboxEvent`'s `ReadStateChange`.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHeraldClient, createHeraldPublisher, type HeraldClient } from '../../../packages/client/src/index.js';
import { closeAllFaultProxies, startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { createWaiters } from '../../support/waiters.js';

let redis: RedisServer;
let proxy: FaultProxy;
let subscribePort: number;
let publishUrl: string;
const clients: HeraldClient[] = [];
const waiters = createWaiters();

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url };
  const [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
  subscribePort = subscribe.subscribePort ?? 0;
  publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;
  proxy = await startFaultProxy(subscribePort);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await closeAllFaultProxies();
  await stopAllProcesses();
  await redis?.stop();
});

function device(port: number): HeraldClient {
  const client = createHeraldClient({ url: `ws://127.0.0.1:${port}/graphql`, token: () => userToken('ines'), webSocketImpl: WebSocket });
  client.onStatus(() => waiters.wake());
  client.inbox.onChange(() => waiters.wake());
  clients.push(client);
  return client;
}

it('markRead made offline is sent when back, and the other device follows', async () => {
  const laptop = device(proxy.port);
  const phone = device(subscribePort);
  await waiters.until(() => (laptop.status === 'live' && phone.status === 'live') || undefined, 'both devices live', PATIENCE_MS);
  const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken() });
  for (const text of ['one', 'two', 'three']) await publisher.send({ to: 'ines', text, push: 'NEVER' });
  await waiters.until(() => (laptop.inbox.unreadCount === 3 && phone.inbox.unreadCount === 3) || undefined, '3 unread on both', PATIENCE_MS, () => `${laptop.inbox.unreadCount}, ${phone.inbox.unreadCount}`);
  expect(laptop.inbox.recent.map((notification) => notification.text)).toEqual(['three', 'two', 'one']);

  // The laptop loses its network: its connection is dead and new ones hang.
  proxy.fault({ kind: 'drop' });
  proxy.fault({ kind: 'cut' });
  await waiters.until(() => laptop.status !== 'live' || undefined, 'the laptop offline', PATIENCE_MS);
  const marked = laptop.inbox.markRead();
  expect(laptop.inbox.unreadCount).toBe(0);
  // Not sent while offline: the phone still shows 3 a while later.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  expect(phone.inbox.unreadCount).toBe(3);

  proxy.forward();
  await marked;
  await waiters.until(() => phone.inbox.unreadCount === 0 || undefined, 'the phone\'s badge to follow', PATIENCE_MS, () => `${phone.inbox.unreadCount}`);
  expect(phone.inbox.readUpTo).toBe(laptop.inbox.readUpTo);
});
