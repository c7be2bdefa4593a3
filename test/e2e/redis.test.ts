/**
 * Several servers on one Redis, and Redis going away and coming back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, send, SEND } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';

let redis: RedisServer;
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});
beforeAll(async () => {
  redis = await startRedisServer();
});

const textOf = (result: { data?: Record<string, unknown> | null | undefined }) =>
  (result.data?.['onNotificationReceived'] as { text: string }).text;

describe('two subscribe servers and two publish servers on one Redis', () => {
  it('every publish server reaches every subscribe server, and receivedUsers sums their subscriptions', async () => {
    const subscribeA = await startSubscribeServer((await createTestBroker(redis.url)).broker);
    const subscribeB = await startSubscribeServer((await createTestBroker(redis.url)).broker);
    const publishA = await startPublishServer((await createTestBroker(redis.url)).broker);
    const publishB = await startPublishServer((await createTestBroker(redis.url)).broker);

    const token = userToken('bob');
    const listeners = [subscribeA, subscribeA, subscribeB].map((server) =>
      collect(wsClient(server.wsUrl, { token }), ON_NOTIFICATION, { userName: 'bob' }),
    );
    const channel = channels.audienceChannel('acme', 'USER', 'bob');
    await waitFor(async () => (await redis.numsub(channel)) === 2, 'one SUBSCRIBE per subscribe server');
    await waitFor(
      () => subscribeA.server.observers.observerCount(channel) === 2 && subscribeB.server.observers.observerCount(channel) === 1,
      'three observers',
    );

    expect(await send(publishA.url, serviceToken(), 'bob', 'from A')).toBe(3);
    expect(await send(publishB.url, serviceToken(), 'bob', 'from B')).toBe(3);
    for (const events of listeners) {
      expect([textOf(await events.nth(0)), textOf(await events.nth(1))]).toEqual(['from A', 'from B']);
    }
  });
});

describe('delivery reports', () => {
  it('are sent only when the publisher selects receivedUsers', async () => {
    const subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker);
    const publish = await startPublishServer((await createTestBroker(redis.url)).broker);
    const reports: string[] = [];
    const watcher = redis.client();
    await watcher.psubscribe(channels.deliveryReportChannel('any').replace(/any$/, '*'));
    watcher.on('pmessage', (_pattern: string, channel: string) => reports.push(channel));

    const events = collect(wsClient(subscribe.wsUrl, { token: userToken('rita') }), ON_NOTIFICATION, { userName: 'rita' });
    await waitFor(() => subscribe.server.observers.observerCount(channels.audienceChannel('acme', 'USER', 'rita')) === 1, 'the observer');

    const uncounted = await postGraphQL(publish.url, 'mutation { sendNotification(to: "rita", text: "no count") { id } }', { token: serviceToken() });
    expect(uncounted.body.data?.['sendNotification']).toEqual({ id: expect.any(String) });
    expect(textOf(await events.nth(0))).toBe('no count');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(reports).toEqual([]); // delivered, and within 300 ms of it no subscribe server reported

    expect(await send(publish.url, serviceToken(), 'rita', 'counted')).toBe(1);
    expect(textOf(await events.nth(1))).toBe('counted');
    await waitFor(() => reports.length === 1, 'the report of the counted publish');
  });
});

describe('Redis goes away and comes back', () => {
  it('fails fast while down, says not ready, and resubscribes every open channel when back', async () => {
    const subscribeBroker = await createTestBroker(redis.url);
    const publishBroker = await createTestBroker(redis.url);
    const subscribe = await startSubscribeServer(subscribeBroker.broker);
    const publish = await startPublishServer(publishBroker.broker);
    const readyz = async (url: string) => (await fetch(url.replace('/graphql', '/readyz'))).status;

    const alice = collect(wsClient(subscribe.wsUrl, { token: userToken('alice', { stores: ['s1'] }) }), ON_NOTIFICATION, {
      userName: 'alice',
    });
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'STORE', 's1'))) === 1, 'the subscription');
    expect(await send(publish.url, serviceToken(), 'alice', 'before')).toBe(1);

    await redis.kill();
    await waitFor(() => !publishBroker.broker.isReady() && !subscribeBroker.broker.isReady(), 'both brokers to notice');
    expect(await readyz(publish.url)).toBe(503);
    expect(await readyz(subscribe.httpUrl)).toBe(503);

    const started = Date.now();
    const refused = await postGraphQL(publish.url, SEND, { token: serviceToken(), variables: { to: 'alice', text: 'lost' } });
    expect(errorCode(refused)).toBe('SERVICE_UNAVAILABLE');
    expect(refused.body.errors?.[0]?.message).toMatch(/Redis is unavailable/);
    // Fails fast: no request waits for Redis, which stays down for as long as this test wants.
    expect(Date.now() - started).toBeLessThan(5000);

    const newcomer = collect(wsClient(subscribe.wsUrl, { token: userToken('zoe') }), ON_NOTIFICATION, { userName: 'zoe' });
    await newcomer.ended();
    expect(newcomer.results[0]?.errors?.[0]).toMatchObject({ extensions: { code: 'SERVICE_UNAVAILABLE' } });
    expect(subscribe.server.observers.observerCount(channels.audienceChannel('acme', 'USER', 'zoe'))).toBe(0);

    await redis.restart();
    await waitFor(async () => (await readyz(publish.url)) === 200 && (await readyz(subscribe.httpUrl)) === 200, 'both servers ready again', 10_000);
    expect(await redis.numsub(channels.audienceChannel('acme', 'USER', 'alice'))).toBe(1);
    expect(await redis.numsub(channels.audienceChannel('acme', 'STORE', 's1'))).toBe(1);

    expect(await send(publish.url, serviceToken(), 'alice', 'after')).toBe(1);
    expect(await send(publish.url, serviceToken(), 's1', 'store after', 'STORE')).toBe(1);
    // Redis came back empty: what was published while alice's channels were not heard is
    // gone with the history, so she is told so (not silence), then live ones follow.
    expect(textOf(await alice.nth(0))).toBe('before');
    expect((await alice.nth(1)).errors?.[0]).toMatchObject({ extensions: { code: 'HISTORY_GAP' } });
    expect([textOf(await alice.nth(2)), textOf(await alice.nth(3))]).toEqual(['after', 'store after']);
    expect(alice.completed).toBe(false);
  });

  it('a subscription released while Redis was down is not subscribed again when it returns', async () => {
    const subscribeBroker = await createTestBroker(redis.url);
    const subscribe = await startSubscribeServer(subscribeBroker.broker);
    const client = wsClient(subscribe.wsUrl, { token: userToken('yara') });
    collect(client, ON_NOTIFICATION, { userName: 'yara' });
    const channel = channels.audienceChannel('acme', 'USER', 'yara');
    await waitFor(async () => (await redis.numsub(channel)) === 1, 'the subscription');

    await redis.kill();
    await waitFor(() => !subscribeBroker.broker.isReady(), 'the broker to notice');
    await client.dispose();
    await waitFor(() => subscribe.server.observers.observerCount(channel) === 0, 'the observer to leave');

    await redis.restart();
    await waitFor(() => subscribeBroker.broker.isReady(), 'the broker to reconnect', 10_000);
    expect(await redis.numsub(channel)).toBe(0);
  });
});
