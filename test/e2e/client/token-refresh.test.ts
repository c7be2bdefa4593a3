/**
 * @herald/client refreshes its token on the live connection: with 15 s tokens a client
 * keeps ONE TCP connection (counted by a proxy in front of the subscribe server) for two
 * minutes with its subscription live; a refresh with another user's token is refused and
 * the session ends — loudly, and without a reconnect.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHeraldClient, createHeraldPublisher, type HeraldClient, type HeraldSessionError, type HeraldStatus } from '../../../packages/client/src/index.js';
import { closeAllFaultProxies, startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { createWaiters } from '../../support/waiters.js';

let redis: RedisServer;
let publishUrl: string;
let subscribePort: number;
const clients: HeraldClient[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url };
  const [subscriber, publisher] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
  subscribePort = subscriber.subscribePort ?? 0;
  publishUrl = `http://127.0.0.1:${publisher.publishPort}/graphql`;
});

afterAll(async () => {
  for (const client of clients) client.close();
  await closeAllFaultProxies();
  await stopAllProcesses();
  await redis?.stop();
});

/** A client through its own proxy, recording what it sees. */
async function watchedClient(token: () => string) {
  const proxy: FaultProxy = await startFaultProxy(subscribePort);
  const waiters = createWaiters();
  const texts: string[] = [];
  const statuses: HeraldStatus[] = [];
  const errors: HeraldSessionError[] = [];
  const client = createHeraldClient({ url: `ws://127.0.0.1:${proxy.port}/graphql`, token, webSocketImpl: WebSocket });
  clients.push(client);
  client.onNotification((notification) => (texts.push(notification.text), waiters.wake()));
  client.onStatus((status) => (statuses.push(status), waiters.wake()));
  client.onError((error) => (errors.push(error), waiters.wake()));
  return { proxy, client, texts, statuses, errors, waiters };
}

describe('in-band token refresh', () => {
  it('a refresh with another user\'s token is refused: the session ends with FORBIDDEN and does not reconnect', async () => {
    // 12 s tokens: the first refresh is due 10 s before exp, 2 s after the first connect.
    let minted = 0;
    const watched = await watchedClient(() => userToken(++minted === 1 ? 'dave' : 'mallory', {}, 12));
    await watched.waiters.until(() => watched.statuses.includes('live') || undefined, 'dave live', PATIENCE_MS);
    const error = await watched.waiters.until(() => watched.errors[0], 'the refused refresh', PATIENCE_MS, () => `statuses ${watched.statuses.join(',')}`);
    expect(error.code).toBe('FORBIDDEN');
    expect(error.message).toMatch(/refresh refused/);
    expect(watched.client.status).toBe('offline');
    // Never a downgrade, never a retry with the other token: no second connection within a bound
    // well past the first reconnect backoff (0.5–1 s) and the old token's expiry (12 s).
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    expect(watched.proxy.accepted).toBe(1);
    expect(watched.statuses.at(-1)).toBe('offline');
    expect(watched.errors).toHaveLength(1);
  });

  it('a client with 15 s tokens stays on one TCP connection for 2 minutes with its subscription live', { timeout: 240_000 }, async () => {
    let minted = 0;
    const watched = await watchedClient(() => (minted++, userToken('carol', {}, 15)));
    await watched.waiters.until(() => watched.statuses.includes('live') || undefined, 'carol live', PATIENCE_MS);
    const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken() });
    const sent: string[] = [];
    const started = Date.now();
    // One notification every 10 s for 2 minutes: each must arrive on the one connection.
    for (let n = 0; Date.now() - started < 120_000; n++) {
      const text = `tick ${n}`;
      await publisher.send({ to: 'carol', text });
      sent.push(text);
      await watched.waiters.until(() => watched.texts.includes(text) || undefined, `${text} delivered`, PATIENCE_MS);
      await new Promise((resolve) => setTimeout(resolve, 10_000));
    }
    expect(watched.texts).toEqual(sent);
    expect(watched.errors).toEqual([]);
    expect(watched.statuses).toEqual(['connecting', 'live']);
    expect(watched.proxy.accepted).toBe(1);
    // 2 minutes of 15 s tokens: refreshed every 5 s (10 s before exp), so ~24 tokens minted.
    expect(minted).toBeGreaterThanOrEqual(20);
  });
});
