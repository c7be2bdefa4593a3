/**
 * Subscriptions over the real graphql-ws client, notifications sent through the real
 * publish server, both on a private redis-server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, startHeraldPair, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, send, SEND } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';

let redis: RedisServer;
let herald: Awaited<ReturnType<typeof startHeraldPair>>;

beforeAll(async () => {
  redis = await startRedisServer();
  herald = await startHeraldPair(redis.url);
});
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});

const aliceChannel = channels.audienceChannel('acme', 'USER', 'alice');
const numsub = (channel: string) => redis.numsub(channel);
const subscribed = (channel: string, count = 1) => waitFor(async () => (await numsub(channel)) === count, `NUMSUB ${channel} = ${count}`);

describe('the seed operations', () => {
  it('delivers `sendNotification` to `onNotificationReceived`, verbatim', async () => {
    const client = wsClient(herald.subscribe.wsUrl, { token: userToken('bob') });
    const events = collect(client, 'subscription { onNotificationReceived(userName: "bob") { text timestamp } }');
    await subscribed(channels.audienceChannel('acme', 'USER', 'bob'));

    const before = Math.floor(Date.now() / 1000);
    const response = await postGraphQL(herald.publish.url, 'mutation { sendNotification(to: "bob", text: "hi") { receivedUsers } }', {
      token: serviceToken(),
    });
    expect(response.body).toEqual({ data: { sendNotification: { receivedUsers: 1 } } });

    const event = await events.nth(0);
    expect(event.data).toEqual({ onNotificationReceived: { text: 'hi', timestamp: expect.any(Number) } });
    const { timestamp } = event.data?.['onNotificationReceived'] as { timestamp: number };
    expect(timestamp).toBeGreaterThanOrEqual(before);
    expect(timestamp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });
});

describe('audiences', () => {
  it('a subscriber hears its user, its stores and its company, each marked with its audience', async () => {
    const client = wsClient(herald.subscribe.wsUrl, { token: userToken('alice', { stores: ['s1', 's2'] }) });
    const events = collect(client, ON_NOTIFICATION, { userName: 'alice' });
    await subscribed(channels.audienceChannel('acme', 'STORE', 's2'));

    const service = serviceToken();
    expect(await send(herald.publish.url, service, 'alice', 'to alice')).toBe(1);
    expect(await send(herald.publish.url, service, 's2', 'to store s2', 'STORE')).toBe(1);
    expect(await send(herald.publish.url, service, 'acme', 'to everyone', 'COMPANY')).toBe(1);

    const received = await Promise.all([0, 1, 2].map((n) => events.nth(n)));
    expect(received.map((event) => event.data?.['onNotificationReceived'])).toEqual([
      { text: 'to alice', timestamp: expect.any(Number), audience: 'USER', sender: 'billing' },
      { text: 'to store s2', timestamp: expect.any(Number), audience: 'STORE', sender: 'billing' },
      { text: 'to everyone', timestamp: expect.any(Number), audience: 'COMPANY', sender: 'billing' },
    ]);
  });

  it('a store or company notification reaches only that store and that company', async () => {
    const inStore = collect(wsClient(herald.subscribe.wsUrl, { token: userToken('carol', { stores: ['s1'] }) }), ON_NOTIFICATION, {
      userName: 'carol',
    });
    const otherStore = collect(wsClient(herald.subscribe.wsUrl, { token: userToken('dave', { stores: ['s9'] }) }), ON_NOTIFICATION, {
      userName: 'dave',
    });
    const otherCompany = collect(
      wsClient(herald.subscribe.wsUrl, { token: userToken('erin', { tenant: 'globex', stores: ['s1'] }) }),
      ON_NOTIFICATION,
      { userName: 'erin' },
    );
    await subscribed(channels.audienceChannel('acme', 'STORE', 's9'));
    await subscribed(channels.audienceChannel('globex', 'STORE', 's1'));
    await subscribed(channels.audienceChannel('acme', 'STORE', 's1'));

    expect(await send(herald.publish.url, serviceToken(), 's1', 'store s1 only', 'STORE')).toBe(1);
    // Then a notification every one of them hears: delivery on one Redis connection is in
    // order, so anything misrouted before it would have arrived before it.
    expect(await send(herald.publish.url, serviceToken(), 'acme', 'acme sentinel', 'COMPANY')).toBe(2);
    expect(await send(herald.publish.url, serviceToken({ tenant: 'globex' }), 'globex', 'globex sentinel', 'COMPANY')).toBe(1);

    expect((await inStore.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'store s1 only' });
    expect((await otherStore.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'acme sentinel' });
    expect((await otherCompany.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'globex sentinel' });
  });
});

describe('tenants and permissions', () => {
  it('a publisher of another tenant cannot reach a user of the same name', async () => {
    const events = collect(wsClient(herald.subscribe.wsUrl, { token: userToken('alice') }), ON_NOTIFICATION, { userName: 'alice' });
    await subscribed(aliceChannel);

    expect(await send(herald.publish.url, serviceToken({ tenant: 'globex' }), 'alice', 'cross-tenant')).toBe(0);
    expect(await send(herald.publish.url, serviceToken(), 'alice', 'sentinel')).toBe(1);
    expect((await events.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'sentinel' });
    expect(events.results).toHaveLength(1);
  });

  it('a COMPANY notification to another tenant is refused', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, {
      token: serviceToken(),
      variables: { to: 'globex', text: 'x', audience: 'COMPANY' },
    });
    expect(errorCode(response)).toBe('FORBIDDEN');
    expect(response.body.errors?.[0]?.message).toContain('your own tenant "acme"');
  });

  it('subscribing as another user is FORBIDDEN and sends no SUBSCRIBE', async () => {
    const monitor = await redis.monitor();
    const { commands } = monitor;

    const events = collect(wsClient(herald.subscribe.wsUrl, { token: userToken('mallory') }), ON_NOTIFICATION, { userName: 'alice' });
    await events.ended();
    expect(events.results[0]?.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(events.results[0]?.errors?.[0]?.message).toContain('your own notifications ("mallory")');

    // A legitimate subscription afterwards: its SUBSCRIBE shows up, the forbidden one never did.
    const probe = collect(wsClient(herald.subscribe.wsUrl, { token: userToken('trent') }), ON_NOTIFICATION, { userName: 'trent' });
    await waitFor(() => commands.some((command) => command.includes(':user:trent')), 'the SUBSCRIBE of trent');
    // An UNSUBSCRIBE of alice's channel may still arrive from an earlier test's release: only a SUBSCRIBE counts.
    expect(commands.filter((command) => /^"s?subscribe"/i.test(command) && command.includes(':user:alice'))).toEqual([]);
    expect(commands.filter((command) => command.includes(':user:mallory'))).toEqual([]);
    expect(await numsub(aliceChannel)).toBe(0);
    probe.unsubscribe();
    monitor.stop();
  });

  it('publishing without the notifications:publish scope is FORBIDDEN', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, {
      token: userToken('alice'),
      variables: { to: 'alice', text: 'x' },
    });
    expect(errorCode(response)).toBe('FORBIDDEN');
    expect(response.body.errors?.[0]?.message).toContain('notifications:publish');
  });

  it('publishing without a token is UNAUTHENTICATED', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, { variables: { to: 'alice', text: 'x' } });
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
  });

  it.each([
    ['a glob', 'al*ce'],
    ['a channel separator', 'alice:admin'],
    ['a space', 'ali ce'],
    ['a control character', 'alice\n'],
    ['an empty name', ''],
    ['a name over 128 characters', 'a'.repeat(129)],
  ])('a `to` with %s is BAD_USER_INPUT', async (_what, to) => {
    const response = await postGraphQL(herald.publish.url, SEND, { token: serviceToken(), variables: { to, text: 'x' } });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toMatch(/user name/);
  });
});

describe('receivedUsers and clean-up', () => {
  it('counts live subscriptions, not Redis connections: three listeners count 3', async () => {
    const token = userToken('frank');
    const collected = [0, 1, 2].map(() => collect(wsClient(herald.subscribe.wsUrl, { token }), ON_NOTIFICATION, { userName: 'frank' }));
    const channel = channels.audienceChannel('acme', 'USER', 'frank');
    await waitFor(() => herald.subscribe.server.observers.observerCount(channel) === 3, 'three observers');
    expect(await numsub(channel)).toBe(1); // one SUBSCRIBE for the process, however many listen
    expect(await send(herald.publish.url, serviceToken(), 'frank', 'x')).toBe(3);
    await Promise.all(collected.map((events) => events.nth(0)));
  });

  it('the last `complete` unsubscribes the channel', async () => {
    const token = userToken('gina');
    const channel = channels.audienceChannel('acme', 'USER', 'gina');
    const first = collect(wsClient(herald.subscribe.wsUrl, { token }), ON_NOTIFICATION, { userName: 'gina' });
    const second = collect(wsClient(herald.subscribe.wsUrl, { token }), ON_NOTIFICATION, { userName: 'gina' });
    await waitFor(() => herald.subscribe.server.observers.observerCount(channel) === 2, 'two observers');

    first.unsubscribe();
    await waitFor(() => herald.subscribe.server.observers.observerCount(channel) === 1, 'one observer left');
    expect(await numsub(channel)).toBe(1);
    second.unsubscribe();
    await subscribed(channel, 0);
    expect(await numsub(channels.audienceChannel('acme', 'COMPANY', 'acme'))).toBe(0);
  });

  it('closing the socket unsubscribes every channel of the subscription', async () => {
    const client = wsClient(herald.subscribe.wsUrl, { token: userToken('hank', { stores: ['s7'] }) });
    collect(client, ON_NOTIFICATION, { userName: 'hank' });
    const store = channels.audienceChannel('acme', 'STORE', 's7');
    await subscribed(store);
    await client.dispose();
    await subscribed(store, 0);
    await subscribed(channels.audienceChannel('acme', 'USER', 'hank'), 0);
  });

  it('a socket closed while its SUBSCRIBE is in flight leaves nothing behind', async () => {
    const channel = channels.audienceChannel('acme', 'USER', 'ivan');
    for (let attempt = 0; attempt < 10; attempt++) {
      const client = wsClient(herald.subscribe.wsUrl, { token: userToken('ivan') });
      collect(client, ON_NOTIFICATION, { userName: 'ivan' });
      await new Promise((resolve) => setTimeout(resolve, attempt));
      await client.dispose();
    }
    await waitFor(() => herald.subscribe.server.observers.channelCount === 0, 'no channel held');
    await subscribed(channel, 0);
  });
});
