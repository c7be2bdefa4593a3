/**
 * The subscribe server's Redis subscriber connection drops while notifications are being
 * sent (Redis killing it over its Pub/Sub output-buffer limit, a proxy reset, a
 * failover, a restart): every notification the publish server acknowledged still reaches
 * every connected subscriber — over WebSocket, SSE and gRPC — exactly once and in order,
 * with no resubscribe by the client. Real processes, real Redis, real clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGrpcClients, bearer, feedClient, readFeed } from '../../support/grpc.js';
import { waitFor } from '../../support/herald.js';
import { postGraphQL, readEvents } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../../support/ws.js';

const SEND_ID = `mutation Send($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { id } }`;
const ON_TEXT = `subscription On($userName: String!, $since: ID) { onNotificationReceived(userName: $userName, since: $since) { id text } }`;

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;
beforeAll(async () => {
  redis = await startRedisServer({ appendOnly: true });
  [subscribe, publish] = await Promise.all([
    startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url } }),
    startHeraldProcess('publish', { env: { REDIS_URL: redis.url } }),
  ]);
});
afterAll(async () => {
  await closeAllClients();
  closeGrpcClients();
  await stopAllProcesses();
  await redis.stop();
});

/** Sends `count` notifications to `to`, `gapMs` apart, calling `at(n)` before the nth; resolves with the acknowledged ids. */
async function sendSeries(to: string, count: number, gapMs: number, at: (n: number) => Promise<void>): Promise<string[]> {
  const acknowledged: string[] = [];
  for (let n = 0; n < count; n++) {
    await at(n);
    const { body } = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND_ID, {
      token: serviceToken(),
      variables: { to, text: `n${n}` },
    });
    const id = (body.data?.['sendNotification'] as { id?: string } | undefined)?.id;
    if (id !== undefined) acknowledged.push(id);
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  return acknowledged;
}

/** Kills the subscribe server's subscriber connection once `channel` is heard on it. */
const killSubscriberConnection = async (channel: string): Promise<void> => {
  await waitFor(async () => (await redis.numsub(channel)) === 1, `${channel} to be subscribed`);
  const list = String(await redis.client().call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
  const ids = list
    .split('\n')
    // The subscribe server's: its report channel and at least the user's (a publish server's holds one).
    .filter((line) => line.includes('name=herald-subscriber') && Number(/ sub=(\d+)/.exec(line)?.[1]) > 1)
    .map((line) => /id=(\d+)/.exec(line)?.[1]);
  expect(ids.length).toBeGreaterThan(0);
  for (const id of ids) await redis.client().call('CLIENT', 'KILL', 'ID', id ?? '');
};

describe('the subscriber connection is killed mid-stream', () => {
  it('every acknowledged notification reaches WebSocket, SSE and gRPC subscribers exactly once, in order', async () => {
    const user = 'reconnect-all';
    const token = userToken(user);
    const ws = collect(wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token }), ON_TEXT, { userName: user });

    const sseResponse = await fetch(`http://127.0.0.1:${subscribe.subscribePort}/graphql`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: ON_TEXT, variables: { userName: user } }),
    });
    const sse = readEvents(sseResponse);
    const grpc = readFeed(feedClient(subscribe.grpcPort ?? 0).feed({ userName: user, since: '' }, bearer(token)));
    await waitFor(async () => (await redis.numsub(`herald:{acme}:user:${user}`)) === 1, 'the subscriptions');

    const acknowledged = await sendSeries(user, 300, 5, async (n) => {
      if (n === 150) await killSubscriberConnection(`herald:{acme}:user:${user}`);
    });
    // A send may be refused while the publish server's own report connection reconnects:
    // refused is not acknowledged, and the publisher knows to retry.
    expect(acknowledged.length).toBeGreaterThanOrEqual(250);

    const last = acknowledged.length - 1;
    await ws.nth(last, 15_000);
    const wsIds = ws.results.map((result) => (result.data?.['onNotificationReceived'] as { id: string }).id);
    expect(wsIds).toEqual(acknowledged);
    expect(ws.completed).toBe(false);

    const sseIds: string[] = [];
    while (sseIds.length < acknowledged.length) {
      const event = await sse.next(15_000);
      expect(event.event).toBe('next');
      const data = JSON.parse(event.data) as { data?: { onNotificationReceived?: { id: string } }; errors?: unknown };
      expect(data.errors).toBeUndefined();
      sseIds.push(data.data?.onNotificationReceived?.id ?? '');
    }
    expect(sseIds).toEqual(acknowledged);

    await grpc.nth(last, 15_000);
    expect(grpc.events.map((event) => ('notification' in event ? event.notification.id : 'gap'))).toEqual(acknowledged);

    // Nothing more than what was acknowledged: a sentinel is the next thing each one gets.
    const [sentinel] = await sendSeries(user, 1, 0, async () => undefined);
    expect((await ws.nth(acknowledged.length)).data?.['onNotificationReceived']).toMatchObject({ id: sentinel });
    expect(JSON.parse((await sse.next()).data)).toMatchObject({ data: { onNotificationReceived: { id: sentinel } } });
    expect(await grpc.nth(acknowledged.length)).toMatchObject({ notification: { id: sentinel } });
  });

  it('a subscription that had received nothing yet still gets what was published while its channel was not heard', async () => {
    const user = 'reconnect-quiet';
    const ws = collect(wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken(user) }), ON_TEXT, { userName: user });
    await waitFor(async () => (await redis.numsub(`herald:{acme}:user:${user}`)) === 1, 'the subscription');
    // Killed again and again while sending: some sends land while the channel is not heard.
    const acknowledged = await sendSeries(user, 40, 3, async (n) => {
      if (n % 10 === 0) await killSubscriberConnection(`herald:{acme}:user:${user}`);
    });
    await ws.nth(acknowledged.length - 1, 15_000);
    expect(ws.results.map((result) => (result.data?.['onNotificationReceived'] as { id: string }).id)).toEqual(acknowledged);
  });
});
