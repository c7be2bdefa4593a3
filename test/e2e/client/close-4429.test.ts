/**
 * @herald/client and a real Herald's 4429. Herald closes with 4429 only on a second
 * `connection_init` (src/transports/websocket/protocol.ts), which the client never sends:
 * here a WebSocket wrapper sends the first socket's `connection_init` twice, as a broken
 * proxy replaying a frame would. The client's documented reaction (docs/client.md): resume,
 * backing off harder — no new socket for at least 4 s (the plain backoff waits 0.5–1 s) —
 * then goes live and hands over what is sent once each, in order (it had no position yet,
 * so nothing sent before it was live is owed to it).
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHeraldClient, createHeraldPublisher, type HeraldClient } from '../../../packages/client/src/index.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { createWaiters } from '../../support/waiters.js';

const USER = 'twice-init';
/** The overload backoff's floor (packages/client/src/backoff.ts: 8 × 500 ms). */
const OVERLOAD_FLOOR_MS = 4_000;

let redis: RedisServer;
let subscribePort: number;
let publishUrl: string;
let client: HeraldClient | undefined;
const waiters = createWaiters();
/** Each socket the client opened: when, and how it closed. */
const sockets: { openedAt: number; closed?: { code: number; at: number } }[] = [];

/** `ws`, recording every socket, sending the first socket's `connection_init` twice. */
class TwiceInitWebSocket extends WebSocket {
  readonly #record: (typeof sockets)[number];
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    this.#record = { openedAt: Date.now() };
    const first = sockets.length === 0;
    sockets.push(this.#record);
    this.on('close', (code: number) => {
      this.#record.closed = { code, at: Date.now() };
      waiters.wake();
    });
    if (first) this.twice = true;
  }
  twice = false;
  override send(data: unknown, ...rest: unknown[]): void {
    (super.send as (...args: unknown[]) => void)(data, ...rest);
    if (this.twice && typeof data === 'string' && data.includes('"connection_init"')) (super.send as (...args: unknown[]) => void)(data, ...rest);
  }
}

beforeAll(async () => {
  redis = await startRedisServer();
  const herald = await startHeraldProcess('all', { env: { REDIS_URL: redis.url } });
  subscribePort = herald.subscribePort ?? 0;
  publishUrl = `http://127.0.0.1:${herald.publishPort}/graphql`;
});

afterAll(async () => {
  client?.close();
  await stopAllProcesses();
  await redis?.stop();
});

it('4429 from the real server: the client backs off at least 4 s, then goes live and delivers once each, in order', { timeout: 120_000 }, async () => {
  const delivered: string[] = [];
  const errors: string[] = [];
  client = createHeraldClient({ url: `ws://127.0.0.1:${subscribePort}/graphql`, token: () => userToken(USER), webSocketImpl: TwiceInitWebSocket });
  client.onNotification((notification) => {
    delivered.push(notification.id);
    waiters.wake();
  });
  client.onError((error) => errors.push(error.code));
  client.onStatus(() => waiters.wake());
  const closed = await waiters.until(() => sockets[0]?.closed, 'the first socket closed', PATIENCE_MS);
  expect(closed.code).toBe(4429);

  const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken() });
  const live = client;
  await waiters.until(() => sockets.length >= 2 || undefined, 'a second socket', PATIENCE_MS);
  const reopenedAfter = (sockets[1]?.openedAt ?? 0) - closed.at;
  expect(reopenedAfter).toBeGreaterThanOrEqual(OVERLOAD_FLOOR_MS - 50);
  await waiters.until(() => live.status === 'live' || undefined, 'live on the second socket', PATIENCE_MS);
  const sent: string[] = [];
  for (let n = 0; n < 3; n++) sent.push((await publisher.send({ to: USER, text: `after ${n}`, push: 'NEVER' })).id);
  await waiters.until(() => delivered.length >= 3 || undefined, 'the 3 notifications', PATIENCE_MS, () => `${delivered.length}`);
  const marker = (await publisher.send({ to: USER, text: 'marker', push: 'NEVER' })).id;
  await waiters.until(() => delivered.includes(marker) || undefined, 'the marker', PATIENCE_MS);
  expect(delivered).toEqual([...sent, marker]);
  expect(errors).toEqual([]);
  expect(sockets.map((socket) => socket.closed?.code)).toEqual([4429, undefined]);
});
